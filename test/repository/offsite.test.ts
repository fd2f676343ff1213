// copy to a second (append-only) repository and prune, on real backups.
import assert from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { loadDataset } from "../../src/sandbox/dataset.ts";
import { cli, editConfig } from "../helpers/cli.ts";
import { useCluster } from "../helpers/cluster.ts";

describe("copy and prune", () => {
  const cluster = useCluster({ nodes: 1 });
  let cfg = "";
  const run = (...args: string[]) => cli(["--config", cfg, ...args]);
  const ids = async (repo: string) => {
    const r = await run("list", "--repo", repo, "--json");
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout).backups as { id: string }[]).map((b) => b.id);
  };
  let full = "";
  let inc = "";

  it("a backup with copyTo lands in the offsite repository too, checked on arrival", async () => {
    cfg = editConfig(cluster.configPath, join(cluster.dir, "two.yaml"), (c) => {
      c.repositories.push({ name: "offsite", storage: { type: "local", path: "offsite" }, appendOnly: true });
      c.repositories[0].retention = { keepLast: 1 };
      c.backup.copyTo = ["offsite"];
    });
    const conn = await cluster.connect(1);
    await loadDataset(conn, { sizeBytes: 3_000_000, seed: 9 });
    await conn.end();
    assert.equal((await run("init")).code, 0);
    const r = await run("backup", "--full", "--json");
    assert.equal(r.code, 0, r.stderr);
    full = JSON.parse(r.stdout).id;
    assert.match(r.stderr, new RegExp(`copied ${full} to offsite`));
    assert.deepEqual(await ids("offsite"), [full]);
    const v = await run("verify", "--repo", "offsite", "--read-data");
    assert.equal(v.code, 0, v.stderr);
  });

  it("copy --missing brings a chain over parents first; a second copy has nothing to do", async () => {
    const noAuto = editConfig(cfg, join(cluster.dir, "noauto.yaml"), (c) => {
      c.backup.copyTo = [];
    });
    let r = await cli(["--config", noAuto, "backup", "--incremental", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    inc = JSON.parse(r.stdout).id;
    assert.deepEqual(await ids("offsite"), [full]);
    r = await run("copy", "--to", "offsite", "--missing", "--json");
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).copied, [inc]);
    r = await run("copy", "--to", "offsite", "--json");
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).copied, []);
    r = await run("restore-test", inc, "--repo", "offsite");
    assert.equal(r.code, 0, r.stderr);
  });

  it("a part corrupted at the source is not copied and nothing is committed at the destination", async () => {
    const noAuto = join(cluster.dir, "noauto.yaml");
    const r0 = await cli(["--config", noAuto, "backup", "--full", "--json"]);
    assert.equal(r0.code, 0, r0.stderr);
    const id = JSON.parse(r0.stdout).id;
    const dir = join(cluster.dir, "repository/backups", id);
    const part = join(dir, readdirSync(dir).find((f) => f.startsWith("part-"))!);
    const bytes = readFileSync(part);
    bytes[100] = bytes[100]! ^ 0xff;
    writeFileSync(part, bytes);
    const r = await run("copy", id, "--to", "offsite");
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^strongbox: error: backup .* part 0 .* (fails its SHA-256 check|corrupted)/m);
    assert.ok(!(await ids("offsite")).includes(id));
    // Put it right again for the rest of the file.
    bytes[100] = bytes[100]! ^ 0xff;
    writeFileSync(part, bytes);
  });

  it("prune refuses an append-only repository and one without a policy", async () => {
    let r = await run("prune", "--repo", "offsite");
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      /repository offsite is append-only: prune refuses to delete there \(run prune from a separate configuration/,
    );
    const none = editConfig(cfg, join(cluster.dir, "nopolicy.yaml"), (c) => {
      delete c.repositories[0].retention;
    });
    r = await cli(["--config", none, "prune"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /has no retention policy; prune would delete everything/);
  });

  it("prune --dry-run lists what would go and why; prune keeps the chain of what it keeps", async () => {
    const all = await ids("local");
    assert.equal(all.length, 3);
    let r = await run("prune", "--dry-run", "--json");
    assert.equal(r.code, 0, r.stderr);
    let out = JSON.parse(r.stdout);
    assert.deepEqual(
      out.kept.map((k: { id: string }) => k.id),
      [all[2]],
    );
    assert.deepEqual(out.removed.sort(), [full, inc].sort());
    assert.deepEqual(await ids("local"), all, "dry run deletes nothing");

    // Keep the incremental: its full must stay too.
    const keepInc = editConfig(cfg, join(cluster.dir, "keepinc.yaml"), (c) => {
      c.repositories[0].retention = { keepWithin: "1h" };
    });
    r = await cli(["--config", keepInc, "prune", "--dry-run", "--json"]);
    out = JSON.parse(r.stdout);
    assert.equal(out.removed.length, 0);
    r = await run("prune", "--json");
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await ids("local"), [all[2]]);
    assert.deepEqual(readdirSync(join(cluster.dir, "repository/backups")), [all[2]], "parts removed too");
    // The offsite copy is untouched.
    assert.deepEqual(await ids("offsite"), [full, inc]);
  });
});
