// Command functions called directly — no argv, no child process — with an in-memory output: what
// each returns (exit status and result) and what it would have printed.
import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { audit } from "../../src/commands/audit.ts";
import { init } from "../../src/commands/init.ts";
import { generate, rotate } from "../../src/commands/key.ts";
import { list, show } from "../../src/commands/list.ts";
import { copy, prune } from "../../src/commands/offsite.ts";
import { openConfiguredRepository } from "../../src/commands/repo.ts";
import { status } from "../../src/commands/status.ts";
import { userGrants } from "../../src/commands/user.ts";
import { verify } from "../../src/commands/verify.ts";
import type { StrongboxError } from "../../src/errors.ts";
import { acquireLock, currentHolder } from "../../src/repository/lock.ts";
import type { GlobalOptions } from "../../src/terminal/options.ts";
import { MemoryOutput } from "../../src/terminal/output.ts";

describe("command functions, called directly", () => {
  let dir: string;
  let g: GlobalOptions;
  let recipient: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "sb-commands-"));
    // key generate: the identity whose recipient the config encrypts to.
    const out = new MemoryOutput(true);
    const r = await generate({ json: true, verbose: false }, { out: join(dir, "identity.txt") }, out);
    assert.equal(r.exitCode, 0);
    recipient = (r.result as { recipient: string }).recipient;
    await writeFile(
      join(dir, "strongbox.yaml"),
      `version: 1
cluster:
  nodes: [{ name: db1, host: 127.0.0.1, port: 1 }]
  credentials: { backup: { user: strongbox_backup } }
repositories:
  - { name: main, storage: { type: local, path: ${join(dir, "main")} } }
  - { name: offsite, storage: { type: local, path: ${join(dir, "offsite")} }, retention: { keepLast: 2 } }
keys:
  recipients: [${recipient}]
  identity: identity.txt
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

  it("key generate writes a 0600 identity and reports its recipient", () => {
    const text = readFileSync(join(dir, "identity.txt"), "utf8");
    assert.match(recipient, /^age1[0-9a-z]{58}$/);
    assert.ok(text.includes(`# public key: ${recipient}`));
    assert.equal(statSync(join(dir, "identity.txt")).mode & 0o777, 0o600);
  });

  it("init creates the signing key and both repositories, then finds them initialised", async () => {
    const first = new MemoryOutput();
    const r = await init(g, {}, first);
    assert.equal(r.exitCode, 0);
    const res = r.result as {
      createdSigningKey: boolean;
      repositories: { name: string; created: boolean }[];
    };
    assert.equal(res.createdSigningKey, true);
    assert.deepEqual(
      res.repositories.map((x) => [x.name, x.created]),
      [
        ["main", true],
        ["offsite", true],
      ],
    );
    assert.match(first.stdoutText, /^signing key created: .*signing\.key/m);
    assert.match(first.stdoutText, /^repository main: initialised at /m);
    const again = new MemoryOutput(true);
    const r2 = await init(g, {}, again);
    const res2 = JSON.parse(again.stdoutText) as typeof res;
    assert.equal(res2.createdSigningKey, false);
    assert.deepEqual(
      res2.repositories.map((x) => x.created),
      [false, false],
    );
    assert.deepEqual(r2.result, res2);
  });

  it("list of an empty repository: a result with no backups, one human line", async () => {
    const out = new MemoryOutput();
    const r = await list(g, {}, out);
    assert.equal(r.exitCode, 0);
    assert.deepEqual(r.result, {
      repository: "main",
      backups: [],
      pointInTime: null,
      unverified: [],
      missing: [],
      evidenceProblems: [],
    });
    assert.equal(out.stdoutText, "repository main: no backups yet\n");
  });

  it("show of an unknown backup throws BACKUP_NOT_FOUND and writes no result", async () => {
    const out = new MemoryOutput(true);
    await assert.rejects(show(g, { id: "20260101T000000Z-abcdef" }, out), (e: StrongboxError) => {
      assert.equal(e.code, "BACKUP_NOT_FOUND");
      return true;
    });
    assert.equal(out.emitted, false);
    assert.equal(out.stdoutText, "");
  });

  it("verify of an empty repository passes", async () => {
    const out = new MemoryOutput(true);
    const r = await verify(g, {}, out);
    assert.equal(r.exitCode, 0);
    const res = JSON.parse(out.stdoutText) as { ok: boolean; backups: unknown[] };
    assert.equal(res.ok, true);
    assert.deepEqual(res.backups, []);
  });

  it("status reports CRITICAL (never a backup) as its exit status, not through process.exitCode", async () => {
    const before = process.exitCode;
    const out = new MemoryOutput(true);
    const r = await status(g, out);
    assert.equal(r.exitCode, 2);
    assert.equal(process.exitCode, before);
    const report = JSON.parse(out.stdoutText) as { exitCode: number; repositories: { repository: string }[] };
    assert.equal(report.exitCode, 2);
    assert.deepEqual(
      report.repositories.map((x) => x.repository),
      ["main", "offsite"],
    );
  });

  it("audit --no-connect returns the worst finding as its exit status", async () => {
    const out = new MemoryOutput(true);
    const r = await audit(g, { connect: false }, out);
    const report = JSON.parse(out.stdoutText) as { exitCode: number; findings: { id: string }[] };
    assert.equal(r.exitCode, report.exitCode);
    assert.ok(r.exitCode >= 1, "a config with no TLS and no offsite copy has findings");
    assert.ok(report.findings.length > 0);
  });

  it("user grants prints the minimal GRANTs for the configured account", async () => {
    const out = new MemoryOutput();
    const r = await userGrants(g, { method: "physical" }, out);
    assert.equal(r.exitCode, 0);
    assert.match(out.stdoutText, /GRANT .*RELOAD.* TO 'strongbox_backup'@/);
    assert.deepEqual((r.result as { methods: string[] }).methods, ["physical"]);
  });

  it("copy --missing with nothing to copy, and prune --dry-run of an empty repository", async () => {
    const c = new MemoryOutput();
    const rc = await copy(g, { to: "offsite", missing: true }, c);
    assert.equal(rc.exitCode, 0);
    assert.match(c.stdoutText, /^nothing to copy: offsite already has every verified backup of main/);
    const p = new MemoryOutput(true);
    const rp = await prune(g, { repo: "offsite", dryRun: true }, p);
    assert.equal(rp.exitCode, 0);
    const res = JSON.parse(p.stdoutText) as { dryRun: boolean; kept: unknown[]; removed: unknown[] };
    assert.equal(res.dryRun, true);
    assert.deepEqual([res.kept, res.removed], [[], []]);
  });

  it("key rotate takes the writer lock: refused while another writer holds it, as copy is", async () => {
    const { repo, close } = await openConfiguredRepository(g.config, "offsite");
    const lock = await acquireLock(repo.storage, { holder: currentHolder("test writer"), ttlMs: 60_000 });
    try {
      await assert.rejects(rotate(g, { repo: "offsite" }, new MemoryOutput()), (e: StrongboxError) => {
        assert.equal(e.code, "REPO_LOCKED");
        return true;
      });
      await assert.rejects(copy(g, { to: "offsite", missing: true }, new MemoryOutput()), {
        code: "REPO_LOCKED",
      });
    } finally {
      await lock.release();
      await close();
    }
    const out = new MemoryOutput(true);
    const r = await rotate(g, { repo: "offsite" }, out);
    assert.equal(r.exitCode, 0);
    const res = JSON.parse(out.stdoutText) as { repositories: { repository: string; backups: number }[] };
    assert.deepEqual(res.repositories, [
      {
        repository: "offsite",
        appendOnly: false,
        backups: 0,
        parts: 0,
        binlogs: 0,
        leftovers: 0,
        resigned: 0,
        skipped: [],
      },
    ]);
  });
});
