// Which manifests a backup reads to plan itself: only the chain it may continue, not the repository.
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { planBackup, planningHistory } from "../../src/backup/plan.ts";
import type { StrongboxError } from "../../src/errors.ts";
import type { NodeHealth } from "../../src/galera/health.ts";
import { MANIFEST_FORMAT, type Manifest } from "../../src/repository/manifest.ts";
import { BackupVerifier } from "../../src/repository/trusted.ts";
import { tempRepository } from "../helpers/repo.ts";

// One backup a day, in order: ids sort by time as real ones do.
const backup = (day: number, type: Manifest["type"]): Manifest =>
  ({
    format: MANIFEST_FORMAT,
    id: `202611${String(day).padStart(2, "0")}T020000Z-00000${day}`,
    type,
    startedAt: `2026-11-${String(day).padStart(2, "0")}T02:00:00.000Z`,
    parts: [],
  }) as unknown as Manifest;

describe("planning history", () => {
  it("reads the newest backups back to the last full, oldest first, and nothing for --full or --logical", async () => {
    const { repo, dir, signing, commit } = await tempRepository("plan");
    const chain = [
      backup(1, "full"),
      backup(2, "incremental"),
      backup(3, "logical"),
      backup(4, "full"),
      backup(5, "incremental"),
      backup(6, "logical"),
      backup(7, "incremental"),
    ];
    for (const m of chain) await commit(m);
    // A manifest older than the last full is not read: damage there does not stop tonight's backup.
    await writeFile(join(dir, "backups", chain[1]!.id, "manifest.json"), "{ not json");
    const verifier = await BackupVerifier.load(repo, signing.publicKey);

    const ids = (ms: Manifest[]) => ms.map((m) => m.id);
    const expected = ids(chain.slice(3));
    assert.deepEqual(ids(await planningHistory(verifier, undefined, undefined)), expected);
    assert.deepEqual(ids(await planningHistory(verifier, undefined, "incremental")), expected);
    const { committed } = await repo.scan();
    assert.deepEqual(
      ids(await planningHistory(verifier, committed, undefined)),
      expected,
      "from the caller's scan",
    );
    assert.deepEqual(await planningHistory(verifier, committed, "full"), []);
    // A full or logical backup does not wait for the caller's scan at all.
    const never = new Promise<readonly string[]>(() => {});
    assert.deepEqual(await planningHistory(verifier, never, "full"), []);
    assert.deepEqual(await planningHistory(verifier, never, "logical"), []);
    assert.deepEqual(await planningHistory(verifier, committed, "logical"), []);
  });

  it("reads every backup when there is no full, and none in an empty repository", async () => {
    const { repo, signing, commit } = await tempRepository("plan");
    assert.deepEqual(
      await planningHistory(await BackupVerifier.load(repo, signing.publicKey), undefined, undefined),
      [],
    );
    await commit(backup(1, "logical"));
    await commit(backup(2, "logical"));
    assert.deepEqual(
      (await planningHistory(await BackupVerifier.load(repo, signing.publicKey), undefined, undefined)).map(
        (m) => m.type,
      ),
      ["logical", "logical"],
    );
  });

  it("skips a damaged manifest in the chain: reported, never a parent", async () => {
    const { repo, dir, signing, commit } = await tempRepository("plan");
    await commit(backup(1, "full"));
    await commit(backup(2, "incremental"));
    await writeFile(join(dir, "backups", backup(1, "full").id, "manifest.json"), "{ not json");
    const untrusted: string[] = [];
    const history = await planningHistory(
      await BackupVerifier.load(repo, signing.publicKey),
      undefined,
      undefined,
      (d) => untrusted.push(`${d.id} ${d.code}`),
    );
    assert.deepEqual(
      history.map((m) => m.id),
      [backup(2, "incremental").id],
    );
    assert.deepEqual(untrusted, [`${backup(1, "full").id} MANIFEST_CORRUPT`]);
  });
});

describe("backup plan", () => {
  const healthy = (name: string): NodeHealth => ({
    node: { name, host: "127.0.0.1", port: 3306 },
    reachable: true,
    clusterStatus: "Primary",
    state: "Synced",
    ready: true,
    clusterSize: 2,
    clusterUuid: "u",
    lastCommitted: 1,
    desynced: false,
  });

  it("--node with a name that is not configured says so, whatever the kind of backup", () => {
    const history = [{ ...backup(1, "full"), donor: "db1" } as Manifest];
    for (const kind of [undefined, "incremental", "full", "logical"] as const) {
      assert.throws(
        () =>
          planBackup(
            { fullEvery: "7d" },
            [healthy("db1"), healthy("db2")],
            history,
            { kind, node: "nosuch" },
            Date.parse("2026-11-02T00:00:00Z"),
          ),
        (e: StrongboxError) =>
          e.code === "NODE_UNKNOWN" &&
          e.oneLine() === 'no node named "nosuch" in the configuration (configured: db1, db2)',
        String(kind),
      );
    }
  });
});
