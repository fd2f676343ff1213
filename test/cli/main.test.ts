// The command line as a new user meets it: unknown commands, usage errors, the configuration's exit
// status, one error line per failure. Runs the real bin/strongbox.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ExitCode } from "../../src/error-codes/spec.ts";
import { BIN, cli } from "../helpers/cli.ts";

const CONFIG = `version: 1
cluster:
  nodes: [{ name: db1, host: 127.0.0.1, port: 1 }]
  credentials: { backup: { user: b, passwordFile: pw } }
repositories: [{ name: local, storage: { type: local, path: repo } }]
keys: { recipients: [age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p], signingKey: signing.key }
`;

/** The lines of stderr that report an error (not the help printed after a usage error). */
function errorLines(stderr: string): string[] {
  return stderr.split("\n").filter((l) => l.startsWith("strongbox: error:"));
}

describe("command line", () => {
  let dir: string;
  let config: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "sb-cli-"));
    config = join(dir, "strongbox.yaml");
    await writeFile(config, CONFIG, { mode: 0o600 });
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("an unknown command with --help (or after help) is an unknown command, exit 64", async () => {
    for (const args of [
      ["nosuch", "--help"],
      ["nosuch", "-h"],
      ["help", "nosuch"],
      ["--config", "x.yaml", "nosuch", "--help"],
      ["sandbox", "nosuch", "--help"],
      ["sandbox", "help", "nosuch"],
      ["nosuch"],
    ]) {
      const r = await cli(args);
      assert.equal(r.code, ExitCode.usage, `${args.join(" ")}: ${r.stderr}`);
      assert.deepEqual(errorLines(r.stderr), ["strongbox: error: unknown command 'nosuch'"], args.join(" "));
    }
  });

  it("help for commands that exist still exits 0; a missing subcommand is a usage error", async () => {
    for (const args of [
      ["--help"],
      ["help", "sandbox"],
      ["sandbox", "help", "up"],
      ["sandbox", "up", "--help"],
    ]) {
      const r = await cli(args);
      assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stdout, /^Usage: strongbox/);
    }
    // --config's value is not taken for a command name.
    const r = await cli(["--config", "sandbox", "key", "--help"]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^Usage: strongbox key/);
    const missing = await cli(["sandbox"]);
    assert.equal(missing.code, ExitCode.usage);
    assert.match(missing.stderr, /Usage: strongbox sandbox/);
  });

  it("a usage error with --json is also one JSON document on stdout", async () => {
    const r = await cli(["backup", "--nosuch", "--json"]);
    assert.equal(r.code, ExitCode.usage);
    assert.deepEqual(JSON.parse(r.stdout), {
      error: { code: "USAGE", message: "unknown option '--nosuch'" },
    });
    assert.deepEqual(errorLines(r.stderr), ["strongbox: error: unknown option '--nosuch'"]);
  });

  it("a configuration file readable by others, or a missing one, exits with the config status 78", async () => {
    await chmod(config, 0o644);
    try {
      for (const json of [false, true]) {
        const r = await cli(["--config", config, "list", ...(json ? ["--json"] : [])]);
        assert.equal(r.code, ExitCode.config, r.stderr);
        assert.deepEqual(errorLines(r.stderr), [
          `strongbox: error: config file ${config} is accessible by group or others (mode 644) (chmod 600 ${config})`,
        ]);
        if (json)
          assert.equal((JSON.parse(r.stdout) as { error: { code: string } }).error.code, "CONFIG_TOO_OPEN");
      }
    } finally {
      await chmod(config, 0o600);
    }
    const r = await cli(["--config", join(dir, "missing.yaml"), "list"]);
    assert.equal(r.code, ExitCode.config);
    assert.match(r.stderr, /^strongbox: error: config file .*missing\.yaml not found \(pass --config FILE/);
  });

  it("with --json every failure is one JSON document on stdout and one error line on stderr", async () => {
    for (const args of [
      ["list"],
      ["show", "nosuch"],
      ["verify", "nosuch"],
      ["restore", "x"],
      ["backup", "--full", "--logical"],
      ["user", "grants", "--method", "x"],
      ["sandbox", "status", "--dir", join(dir, "none")],
    ]) {
      const r = await cli(["--config", config, ...args, "--json"]);
      assert.notEqual(r.code, 0, args.join(" "));
      const doc = JSON.parse(r.stdout) as { error?: { code: string } };
      assert.ok(doc.error?.code, `${args.join(" ")}: ${r.stdout}`);
      assert.equal(errorLines(r.stderr).length, 1, `${args.join(" ")}: ${r.stderr}`);
      assert.equal(r.stderr.split("\n").filter(Boolean).length, 1, `${args.join(" ")}: ${r.stderr}`);
    }
  });

  it("values are checked before any work: a port out of range, a bad --to-gtid or --to-time", async () => {
    for (const [args, message] of [
      [["serve", "--port", "99999"], "--port must be a TCP port, 0 to 65535 (got 99999)"],
      [
        ["restore", "--to-gtid", "bogus", "--target-dir", join(dir, "never")],
        '"bogus" is not a GTID (expected domain-server-sequence, e.g. 1-1-194)',
      ],
      [["restore-test", "--to-time", "tomorrow"], '--to-time "tomorrow" is not a valid time'],
      [
        ["restore", "--to-time", "2026-11-26T15:01:00Z", "--to-gtid", "1-1-1", "--target-dir", "x"],
        "give exactly one",
      ],
    ] as const) {
      const r = await cli(["--config", config, ...args]);
      assert.equal(r.code, ExitCode.usage, `${args.join(" ")}: ${r.stderr}`);
      assert.equal(errorLines(r.stderr).length, 1, r.stderr);
      assert.ok(r.stderr.includes(message), `${args.join(" ")}: ${r.stderr}`);
    }
  });

  it("a reader that goes away (| head) is no crash: help and output to a closed pipe exit 0", async () => {
    for (const args of [["--help"], ["daemon", "--help"]]) {
      const child = spawn(BIN, args, {
        env: { ...process.env, STRONGBOX_NODE: process.execPath },
        stdio: ["ignore", "pipe", "pipe"],
      });
      // Closed before the CLI has started: its first write meets a pipe without a reader.
      child.stdout.destroy();
      let stderr = "";
      child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
      const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
      assert.equal(code, 0, stderr);
      assert.doesNotMatch(stderr, /EPIPE|Unhandled/);
    }
  });

  it("key generate --force replaces a file readable by others with a private one; a missing directory is named", async () => {
    const open = join(dir, "open-identity.txt");
    await writeFile(open, "old\n", { mode: 0o644 });
    await chmod(open, 0o644);
    const r = await cli(["key", "generate", "--out", open, "--force"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await stat(open)).mode & 0o777, 0o600);
    assert.match(await readFile(open, "utf8"), /^AGE-SECRET-KEY-1/m);
    const missing = await cli(["key", "generate", "--out", join(dir, "no-such-dir", "id.txt")]);
    assert.equal(missing.code, 2);
    assert.deepEqual(errorLines(missing.stderr), [
      `strongbox: error: cannot write ${join(dir, "no-such-dir", "id.txt")}: directory ${join(dir, "no-such-dir")} does not exist`,
    ]);
  });
});
