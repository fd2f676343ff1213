// The Debian package, built once for this file (npm run package), installed into a scratch root
// (dpkg --root, maintainer scripts run with DPKG_ROOT), and run from the installed files with a
// PATH that has no node on it: --version, check against a real sandbox cluster (with a real
// webhook receiver for the alert item), a backup through the packaged part sealer, and
// systemd-analyze verify on every unit.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { cp, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { parseConfigText } from "../../src/config/load.ts";
import { editConfig } from "../helpers/cli.ts";
import { useCluster } from "../helpers/cluster.ts";
import { type HttpReceiver, startHttpReceiver } from "../monitor/receivers.ts";

const run = promisify(execFile);
const ROOT = new URL("../../", import.meta.url).pathname;
const VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function exec(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("the Debian package", () => {
  const cluster = useCluster({ nodes: 1 });
  let work: string;
  let deb: string;
  let root: string;
  /** A bin directory with every command of /usr/bin but node (and npm): "no Node installed". */
  let noNodeBin: string;
  let receiver: HttpReceiver;
  const env = (): NodeJS.ProcessEnv => ({ PATH: noNodeBin, HOME: join(work, "home"), LANG: "C.UTF-8" });
  const strongbox = (...args: string[]) => exec(join(root, "usr/bin/strongbox"), args, env());

  before(
    async () => {
      work = await mkdtemp(join(tmpdir(), "strongbox-deb-"));
      const out = join(work, "out");
      const built = await run(process.execPath, [join(ROOT, "scripts/package.ts"), "--out", out], {
        cwd: ROOT,
        maxBuffer: 16 * 1024 * 1024,
      });
      deb = built.stdout.trim();
      root = join(work, "root");
      mkdirSync(join(root, "var/lib/dpkg/info"), { recursive: true });
      mkdirSync(join(root, "var/lib/dpkg/updates"), { recursive: true });
      writeFileSync(join(root, "var/lib/dpkg/status"), "");
      // The scratch root's account database: root only (never a copy of this host's shadow file).
      mkdirSync(join(root, "etc"));
      writeFileSync(join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
      writeFileSync(join(root, "etc/group"), "root:x:0:\n");
      writeFileSync(join(root, "etc/shadow"), "root:*:20000:0:99999:7:::\n", { mode: 0o600 });
      writeFileSync(join(root, "etc/gshadow"), "root:*::\n", { mode: 0o600 });
      noNodeBin = join(work, "bin");
      mkdirSync(noNodeBin);
      mkdirSync(join(work, "home"));
      for (const name of readdirSync("/usr/bin")) {
        if (!/^(node|nodejs|npm|npx|corepack)$/.test(name))
          symlinkSync(join("/usr/bin", name), join(noNodeBin, name));
      }
      receiver = await startHttpReceiver();
    },
    { timeout: 600_000 },
  );
  after(async () => {
    await receiver?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("is named with its version and architecture, and declares what it needs", async () => {
    const arch = (await run("dpkg", ["--print-architecture"])).stdout.trim();
    assert.equal(deb, join(work, "out", `strongbox_${VERSION}_${arch}.deb`));
    const info = (await run("dpkg-deb", ["--field", deb, "Package", "Version", "Architecture", "Depends"]))
      .stdout;
    assert.match(info, /^Package: strongbox$/m);
    assert.match(info, new RegExp(`^Version: ${VERSION.replace(/\./g, "\\.")}$`, "m"));
    assert.match(info, new RegExp(`^Architecture: ${arch}$`, "m"));
    assert.match(info, /^Depends: .*libssl3.*zstd/m);
    assert.doesNotMatch(info, /nodejs/);
    const files = (await run("dpkg-deb", ["--contents", deb], { maxBuffer: 64 * 1024 * 1024 })).stdout;
    for (const path of [
      "./usr/bin/strongbox",
      "./usr/lib/strongbox/node",
      "./usr/lib/strongbox/bin/strongbox.js",
      "./usr/lib/strongbox/dist/cli/main.js",
      "./usr/lib/strongbox/native/build/strongbox-seal",
      "./usr/lib/strongbox/native/build/strongbox-open",
      "./usr/lib/strongbox/node_modules/ssh2/package.json",
      "./usr/share/man/man1/strongbox.1.gz",
      "./usr/share/bash-completion/completions/strongbox",
      "./usr/share/zsh/vendor-completions/_strongbox",
      "./usr/share/strongbox/strongbox.yaml",
      "./lib/systemd/system/strongbox-daemon.service",
      "./lib/systemd/system/strongbox-full.timer",
    ]) {
      assert.ok(files.includes(` ${path}\n`), `${path} is in the package`);
    }
  });

  it("installs: the strongbox account, 0700 directories, /etc/strongbox/strongbox.yaml (0600) from the example", async () => {
    const r = await exec(
      "dpkg",
      ["--root", root, "--force-script-chrootless", "--force-depends", "--install", deb],
      { PATH: process.env.PATH },
    );
    assert.equal(r.code, 0, r.stderr);
    const account = readFileSync(join(root, "etc/passwd"), "utf8")
      .split("\n")
      .find((l) => l.startsWith("strongbox:"));
    assert.match(account ?? "", /^strongbox:x:\d+:\d+:[^:]*:\/var\/lib\/strongbox:\/usr\/sbin\/nologin$/);
    const uid = Number(account!.split(":")[2]);
    for (const dir of ["etc/strongbox", "var/lib/strongbox", "var/backups/strongbox"]) {
      const s = statSync(join(root, dir));
      assert.equal(s.mode & 0o777, 0o700, dir);
      assert.equal(s.uid, uid, dir);
    }
    const config = statSync(join(root, "etc/strongbox/strongbox.yaml"));
    assert.equal(config.mode & 0o777, 0o600);
    assert.equal(config.uid, uid);
    const text = readFileSync(join(root, "etc/strongbox/strongbox.yaml"), "utf8");
    assert.equal(text, readFileSync(join(ROOT, "packaging/strongbox.yaml"), "utf8"));
    // The commented example is a valid configuration.
    const parsed = parseConfigText(text, "strongbox.yaml");
    assert.deepEqual(
      parsed.cluster.nodes.map((n) => n.host),
      ["db1.example", "db2.example", "db3.example"],
    );
  });

  it("runs from the installed files with no node on PATH: --version, and its runtime is Node 24", async () => {
    const which = await exec("sh", ["-c", "command -v node || echo none"], env());
    assert.equal(which.stdout.trim(), "none");
    const v = await strongbox("--version");
    assert.equal(v.code, 0, v.stderr);
    assert.equal(v.stdout.trim(), VERSION);
    const node = await exec(join(root, "usr/lib/strongbox/node"), ["--version"], env());
    assert.match(node.stdout, /^v24\./);
  });

  it("check passes against the sandbox, every item OK, the alert delivered to a real webhook", async () => {
    const config = editConfig(cluster.configPath, join(cluster.dir, "packaged.yaml"), (c) => {
      delete c.keys.identity; // the backup host holds no identity
      c.monitoring = { alerts: { webhook: { url: receiver.url }, attempts: 1 } };
    });
    const init = await strongbox("--config", config, "init");
    assert.equal(init.code, 0, init.stderr);
    const r = await strongbox("--config", config, "check");
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const lines = r.stdout.trim().split("\n");
    for (const l of lines.slice(0, -1)) assert.match(l, /^OK {4}/, l);
    for (const item of ["node node1", "grants strongbox_backup", "binlog node1", "mariabackup node1"]) {
      assert.ok(
        lines.some((l) => l.startsWith(`OK    ${item}:`)),
        item,
      );
    }
    assert.ok(lines.some((l) => /^OK {4}repository local: .*wrote, read back and deleted/.test(l)));
    assert.ok(lines.some((l) => l === "OK    alerts webhook: test message delivered"));
    assert.equal(receiver.accepted().length, 1);
    assert.match(String(receiver.accepted()[0]!.body.text), /test alert/);

    const json = await strongbox("--config", config, "--json", "check", "--no-alert");
    assert.equal(json.code, 0);
    const doc = JSON.parse(json.stdout) as { items: { item: string; status: string }[]; exitCode: number };
    assert.equal(doc.exitCode, 0);
    assert.deepEqual(
      doc.items.find((i) => i.item === "alerts"),
      {
        item: "alerts",
        status: "skip",
        detail: "--no-alert",
      },
    );
  });

  it("backs up and verifies through the packaged runtime and part sealer", async () => {
    const config = join(cluster.dir, "packaged.yaml");
    const b = await strongbox("--config", config, "--json", "backup", "--full");
    assert.equal(b.code, 0, b.stderr);
    const id = (JSON.parse(b.stdout) as { id: string }).id;
    const v = await strongbox("--config", config, "verify", id);
    assert.equal(v.code, 0, `${v.stdout}\n${v.stderr}`);
  });

  it("its systemd units pass systemd-analyze verify, each service hardened", async () => {
    const units = join(root, "lib/systemd/system");
    const ours = readdirSync(units).filter((f) => f.startsWith("strongbox-"));
    assert.ok(ours.includes("strongbox-daemon.service"));
    assert.ok(ours.includes("strongbox-serve.service"));
    assert.ok(ours.includes("strongbox-verify.timer"));
    // The units they depend on (sysinit.target, …): the host's, into the scratch root.
    for (const f of readdirSync("/lib/systemd/system")) {
      if (!f.startsWith("strongbox-"))
        await cp(join("/lib/systemd/system", f), join(units, f), {
          recursive: true,
          verbatimSymlinks: true,
        }).catch(() => {});
    }
    const r = await exec("systemd-analyze", ["verify", `--root=${root}`, ...ours], {
      PATH: process.env.PATH,
      MANPATH: join(root, "usr/share/man"),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(`${r.stdout}${r.stderr}`, "", "no warnings");
    for (const f of ours.filter((u) => u.endsWith(".service"))) {
      const text = readFileSync(join(units, f), "utf8");
      for (const line of [
        "User=strongbox",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "ReadWritePaths=/var/lib/strongbox -/var/backups/strongbox",
      ]) {
        assert.ok(text.includes(`\n${line}\n`), `${f}: ${line}`);
      }
    }
  });

  it("has a man page generated from the command help, and bash completion that completes commands and options", async () => {
    const man = await exec("man", ["-l", join(root, "usr/share/man/man1/strongbox.1.gz")], {
      PATH: process.env.PATH,
      MANWIDTH: "200",
      MAN_KEEP_FORMATTING: "",
    });
    assert.equal(man.code, 0, man.stderr);
    for (const cmd of ["backup", "restore-test", "check", "alert test", "sandbox up", "prune"]) {
      assert.match(man.stdout, new RegExp(`strongbox ${cmd}\\b`), cmd);
    }
    assert.match(man.stdout, /\/etc\/strongbox\/strongbox\.yaml/);
    const bash = join(root, "usr/share/bash-completion/completions/strongbox");
    const complete = async (...words: string[]) => {
      const script = `source ${bash}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; _strongbox; echo "\${COMPREPLY[*]}"`;
      return (await exec("bash", ["-c", script], { PATH: process.env.PATH })).stdout.trim().split(" ");
    };
    assert.deepEqual(await complete("strongbox", "che"), ["check"]);
    assert.ok((await complete("strongbox", "backup", "--f")).includes("--full"));
    assert.deepEqual(await complete("strongbox", "sandbox", "u"), ["up"]);
    const alert = await complete("strongbox", "--config", "x.yaml", "alert", "");
    assert.ok(alert.includes("test") && alert.includes("--json"), alert.join(" "));
    // zsh: the completion function run by a real zsh, with compsys's output functions stubbed to
    // print what they were given (zsh filters by the typed prefix itself).
    const zshFile = join(root, "usr/share/zsh/vendor-completions/_strongbox");
    assert.match(readFileSync(zshFile, "utf8"), /^#compdef strongbox\n/);
    assert.equal((await exec("zsh", ["-n", zshFile], { PATH: process.env.PATH })).code, 0);
    const zcomplete = async (...words: string[]) => {
      const script = `_describe() { print -l -- "\${(@P)2}" }; _values() { shift; print -l -- "$@" }; _files() { print FILES }; words=(${words.map((w) => `'${w}'`).join(" ")}); CURRENT=${words.length}; source ${zshFile}`;
      return (await exec("zsh", ["-f", "-c", script], { PATH: process.env.PATH })).stdout.trim().split("\n");
    };
    assert.deepEqual(await zcomplete("strongbox", "alert", ""), [
      "test:send a test message through every configured channel (webhook, e-mail)",
    ]);
    assert.ok(
      (await zcomplete("strongbox", "--config", "x.yaml", "backup", "--f")).includes(
        "--full[a full physical backup (mariabackup)]",
      ),
    );
    assert.ok((await zcomplete("strongbox", "")).some((l) => l.startsWith("check:")));
  });
});
