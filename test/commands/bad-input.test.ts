// Bad input found on the way (issue 19): each ends with its own clear error, not "internal error".
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { init } from "../../src/commands/init.ts";
import { generate } from "../../src/commands/key.ts";
import { list } from "../../src/commands/list.ts";
import { verify } from "../../src/commands/verify.ts";
import { prepareTarget } from "../../src/restore/restore.ts";
import type { GlobalOptions } from "../../src/terminal/options.ts";
import { MemoryOutput } from "../../src/terminal/output.ts";
import { cli } from "../helpers/cli.ts";

describe("bad input gets its own error", () => {
  let dir: string;
  let g: GlobalOptions;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "sb-bad-input-"));
    const out = new MemoryOutput(true);
    await generate({ json: true, verbose: false }, { out: join(dir, "identity.txt") }, out);
    const recipient = (JSON.parse(out.stdoutText) as { recipient: string }).recipient;
    await writeFile(
      join(dir, "strongbox.yaml"),
      `version: 1
cluster:
  nodes: [{ name: db1, host: 127.0.0.1, port: 1 }]
  credentials: { backup: { user: strongbox_backup } }
repositories:
  - { name: main, storage: { type: local, path: ${join(dir, "mnt", "repository")} } }
keys:
  recipients: [${recipient}]
  signingKey: signing.key
stateDir: state
`,
      { mode: 0o600 },
    );
    g = { config: join(dir, "strongbox.yaml"), json: false, verbose: false };
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("a YAML alias bomb is a config error (exit 78), not an internal error", async () => {
    const lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 10; i++) {
      const name = String.fromCharCode(97 + i);
      const prev = String.fromCharCode(96 + i);
      lines.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(",")}]`);
    }
    const bomb = join(dir, "bomb.yaml");
    await writeFile(bomb, `${lines.join("\n")}\nversion: 1\n`, { mode: 0o600 });
    const r = await cli(["--config", bomb, "list"]);
    assert.equal(r.code, 78, r.stderr);
    assert.match(
      r.stderr,
      /^strongbox: error: .*bomb\.yaml is not a usable YAML document: Excessive alias count/m,
    );
  });

  it("a --target-dir that is a regular file (or lies under one) is TARGET_NOT_DIRECTORY", async () => {
    const file = join(dir, "a-file");
    await writeFile(file, "not a directory\n");
    await assert.rejects(prepareTarget(file, 1, false), (e: { code: string; message: string }) => {
      assert.equal(e.code, "TARGET_NOT_DIRECTORY");
      assert.match(e.message, /target directory .*a-file is not a directory/);
      return true;
    });
    await assert.rejects(prepareTarget(join(file, "data"), 1, false), { code: "TARGET_NOT_DIRECTORY" });
  });

  it("list and verify of a repository whose directory is missing: REPO_MISSING, nothing created", async () => {
    for (const run of [() => list(g, {}, new MemoryOutput()), () => verify(g, {}, new MemoryOutput())]) {
      await assert.rejects(run(), (e: { code: string; message: string }) => {
        assert.equal(e.code, "REPO_MISSING");
        assert.match(e.message, /repository main: its directory .*mnt\/repository does not exist/);
        return true;
      });
    }
    assert.ok(!existsSync(join(dir, "mnt")), "no directory was created");
    // init is the one command that creates it.
    assert.equal((await init(g, {}, new MemoryOutput())).exitCode, 0);
    assert.equal((await list(g, {}, new MemoryOutput())).exitCode, 0);
  });
});
