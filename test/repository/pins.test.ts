// backup pin / unpin, forget and keepYearly through the CLI, on a real local repository whose
// backups are signed manifests made here (prune, pin and forget read only manifests). Includes the
// attacker's moves on pins: a forged or garbage pin keeps its backup (and is reported), it never
// makes prune delete more.
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { canonicalJson, generateSigningKey, sign } from "../../src/crypto/sign.ts";
import { type Manifest, signManifest } from "../../src/repository/manifest.ts";
import { Repository } from "../../src/repository/repository.ts";
import { LocalStorage } from "../../src/storage/local.ts";
import { cli } from "../helpers/cli.ts";
import { commitAsBackupHost } from "../helpers/forge.ts";

const CONFIG = `
version: 1
cluster:
  nodes: [{ name: db1, host: 127.0.0.1, port: 1 }]
  credentials: { backup: { user: backup } }
repositories:
  - name: main
    storage: { type: local, path: main }
    retention: { keepLast: 1 }
  - name: vault
    storage: { type: local, path: vault }
    appendOnly: true
keys:
  recipients: [age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq]
  signingKey: signing.key
`;

function manifest(
  id: string,
  parent: string | null,
  key: { privateKeyPem: string; publicKey: string },
): Manifest {
  const m: Manifest = {
    format: 1,
    id,
    type: parent ? "incremental" : "full",
    parent,
    chainRoot: parent ?? id,
    cluster: { name: "galera", uuid: null, seqno: null, size: 1 },
    donor: "db1",
    serverVersion: null,
    gtid: null,
    binlog: null,
    lsn: null,
    startedAt: `${id.slice(0, 4)}-${id.slice(4, 6)}-${id.slice(6, 8)}T${id.slice(9, 11)}:${id.slice(11, 13)}:${id.slice(13, 15)}Z`,
    finishedAt: "",
    durations: {},
    bytes: { raw: 0, compressed: 0, stored: 0 },
    compression: { algorithm: "zstd", level: 1 },
    encryption: { format: "age-v1", recipients: [], passphrase: false },
    parts: [],
    details: "",
    tool: { name: "strongbox", version: "test", backupTool: "none" },
  };
  return signManifest(m, key.privateKeyPem, key.publicKey);
}

describe("pins, forget and keepYearly", () => {
  let dir: string;
  let cfg: string;
  const run = (...args: string[]) => cli(["--config", cfg, ...args]);
  const F1 = "20240110T020000.000Z-aaaaa1";
  const I1 = "20240111T020000.000Z-aaaaa2";
  const F2 = "20250601T020000.000Z-aaaaa3";
  const F3 = "20261101T020000.000Z-aaaaa4";
  const F4 = "20261201T020000.000Z-aaaaa5";
  const ALL = [F1, I1, F2, F3, F4];
  let main: Repository;
  let vault: Repository;
  const pinFile = (repo: string, id: string) => join(dir, repo, "pins", `${id}.json`);
  const pruneDry = async () => {
    const r = await run("--json", "prune", "--dry-run");
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as {
      kept: { id: string; reasons: string[] }[];
      removed: string[];
      tamperedPins: { backup: string; why: string }[];
    };
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "sb-pins-"));
    cfg = join(dir, "strongbox.yaml");
    writeFileSync(cfg, CONFIG, { mode: 0o600 });
    const init = await run("init");
    assert.equal(init.code, 0, init.stderr);
    const pem = readFileSync(join(dir, "signing.key"), "utf8");
    const { publicKeyFromPrivate } = await import("../../src/crypto/sign.ts");
    const key = { privateKeyPem: pem, publicKey: publicKeyFromPrivate(pem) };
    main = await Repository.open("main", await LocalStorage.open(join(dir, "main")));
    vault = await Repository.open("vault", await LocalStorage.open(join(dir, "vault")));
    // Committed as the backup host does: signed, and recorded in the evidence log.
    for (const repo of [main, vault]) {
      const chain: [string, string | null][] = [
        [F1, null],
        [I1, F1],
        [F2, null],
        [F3, null],
        [F4, null],
      ];
      for (const [id, parent] of chain) await commitAsBackupHost(repo, key, manifest(id, parent, key));
    }
  });

  after(async () => {
    await Promise.all([main?.storage.close(), vault?.storage.close()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("backup pin writes a signed pin; prune keeps the pinned incremental and its full", async () => {
    const r = await run("backup", "pin", I1, "--note", "the auditors want it");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`pinned ${I1} in main`));
    const pin = JSON.parse(readFileSync(pinFile("main", I1), "utf8")) as { backup: string; note: string };
    assert.equal(pin.backup, I1);
    assert.equal(pin.note, "the auditors want it");
    assert.equal((await run("backup", "pin", I1)).stdout.trim(), `${I1} in main was already pinned`);
    const listed = JSON.parse((await run("--json", "list")).stdout) as {
      backups: { id: string; pinned: boolean }[];
    };
    assert.deepEqual(
      listed.backups.filter((b) => b.pinned).map((b) => b.id),
      [I1],
    );
    assert.match((await run("list")).stdout, new RegExp(`^${I1} .* pinned$`, "m"));
    const p = await pruneDry();
    assert.deepEqual(p.kept.map((k) => k.id).sort(), [F1, I1, F4]);
    assert.deepEqual(p.kept.find((k) => k.id === I1)?.reasons, ["pinned"]);
    assert.deepEqual(p.kept.find((k) => k.id === F1)?.reasons, [`needed by kept ${I1}`]);
    assert.deepEqual(p.removed.sort(), [F2, F3]);
    assert.deepEqual(p.tamperedPins, []);
  });

  it("a forged or garbage pin still keeps its backup and is reported: tampering never deletes more", async () => {
    const real = readFileSync(pinFile("main", I1), "utf8");
    // Signed by another key.
    const other = generateSigningKey();
    const forged = { format: 1, backup: I1, pinnedAt: "2026-01-01T00:00:00.000Z", note: "" };
    const sig = sign(other.privateKeyPem, Buffer.from(canonicalJson(forged)));
    writeFileSync(
      pinFile("main", I1),
      JSON.stringify({
        ...forged,
        signature: { algorithm: "ed25519", publicKey: other.publicKey, value: sig },
      }),
    );
    // An unsigned pin an attacker dropped for F2, and garbage for F3.
    writeFileSync(pinFile("main", F2), JSON.stringify({ format: 1, backup: F2, pinnedAt: "", note: "" }));
    writeFileSync(pinFile("main", F3), "not json");
    const p = await pruneDry();
    assert.deepEqual(p.kept.map((k) => k.id).sort(), ALL);
    assert.deepEqual(p.removed, []);
    assert.deepEqual(
      p.tamperedPins.map((t) => `${t.backup}: ${t.why}`).sort(),
      [
        `${I1}: it is not signed by the configured signing key`,
        `${F2}: it is not signed by the configured signing key`,
        `${F3}: it is not valid JSON`,
      ].sort(),
    );
    const text = await run("prune", "--dry-run");
    assert.match(
      text.stdout,
      new RegExp(
        `WARNING: the pin of ${F3} \\(pins/${F3}.json\\) fails its check: it is not valid JSON; kept anyway`,
      ),
    );
    writeFileSync(pinFile("main", I1), real);
  });

  it("forget: refused while pinned or needed by a pin, refused with dependents, then the chain goes", async () => {
    let r = await run("forget", F1);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      new RegExp(
        `error: backup ${F1} is needed by pinned backup\\(s\\) ${I1} \\(unpin first: strongbox backup unpin ${I1}\\)`,
      ),
    );
    r = await run("--json", "forget", F2);
    assert.equal(r.code, 2);
    assert.equal(JSON.parse(r.stdout).error.code, "BACKUP_PINNED");
    for (const id of [I1, F2, F3]) assert.equal((await run("backup", "unpin", id)).code, 0);
    assert.equal(existsSync(pinFile("main", I1)), false);
    assert.equal((await run("backup", "unpin", I1)).stdout.trim(), `${I1} in main was not pinned`);
    r = await run("forget", F1);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      new RegExp(`backup ${F1} is the parent of 1 incremental backup\\(s\\): ${I1} \\(add --with-dependents`),
    );
    r = await run("forget", F1, "--with-dependents");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `removed ${I1}\nremoved ${F1}\nmain: 2 backup(s) removed, 2 object(s) deleted\n`);
    const list = JSON.parse((await run("--json", "list")).stdout) as { backups: { id: string }[] };
    assert.deepEqual(
      list.backups.map((b) => b.id),
      [F2, F3, F4],
    );
    r = await run("--json", "forget", "20990101T000000.000Z-ffffff");
    assert.equal(r.code, 2);
    assert.equal(JSON.parse(r.stdout).error.code, "BACKUP_NOT_FOUND");
  });

  it("append-only: pin works, unpin and forget are refused", async () => {
    let r = await run("backup", "pin", F2, "--repo", "vault");
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(pinFile("vault", F2)));
    r = await run("--json", "backup", "unpin", F2, "--repo", "vault");
    assert.equal(r.code, 2);
    assert.equal(JSON.parse(r.stdout).error.code, "REPO_APPEND_ONLY");
    assert.ok(existsSync(pinFile("vault", F2)));
    r = await run("--json", "forget", F3, "--repo", "vault");
    assert.equal(JSON.parse(r.stdout).error.code, "REPO_APPEND_ONLY");
    r = await run("--json", "backup", "pin", "20990101T000000.000Z-ffffff", "--repo", "vault");
    assert.equal(JSON.parse(r.stdout).error.code, "BACKUP_NOT_FOUND");
  });

  it("prune keeps a pinned backup for real, and keepYearly keeps the newest of each year", async () => {
    assert.equal((await run("backup", "pin", F2)).code, 0);
    writeFileSync(
      cfg,
      CONFIG.replace("retention: { keepLast: 1 }", "retention: { keepLast: 1, keepYearly: 1 }"),
      {
        mode: 0o600,
      },
    );
    const r = await run("--json", "prune");
    assert.equal(r.code, 0, r.stderr);
    const p = JSON.parse(r.stdout) as { kept: { id: string; reasons: string[] }[]; removed: string[] };
    assert.deepEqual(p.removed, [F3]);
    assert.deepEqual(Object.fromEntries(p.kept.map((k) => [k.id, k.reasons])), {
      [F2]: ["pinned"],
      [F4]: ["keep-last 1/1", "keep-yearly 2026"],
    });
    const list = JSON.parse((await run("--json", "list")).stdout) as { backups: { id: string }[] };
    assert.deepEqual(
      list.backups.map((b) => b.id),
      [F2, F4],
    );
  });
});
