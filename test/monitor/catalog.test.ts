import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { StrongboxError } from "../../src/errors.ts";
import { openCatalog } from "../../src/monitor/catalog.ts";
import { CATALOG_SCHEMA_VERSION } from "../../src/monitor/catalog-schema.ts";
import { recordRun } from "../../src/monitor/record-run.ts";
import { pidAlive } from "../../src/util/liveness.ts";
import { oneLineError, redact } from "../../src/util/redact.ts";
import { Clock, seedRun, tempCatalog, tempDir } from "./helpers.ts";

const CATALOG_MODULE = new URL("../../src/monitor/catalog.ts", import.meta.url).href;

describe("catalog: file, schema, pragmas", () => {
  let t: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    t = await tempDir();
  });
  after(() => t.cleanup());

  it("creates the file 0600 in a new 0700 directory, in WAL mode, at the current schema version", () => {
    const path = join(t.dir, "state", "nested", "catalog.db");
    const c = openCatalog(path);
    c.startRun({ command: "backup", repository: "main" });
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(statSync(join(t.dir, "state", "nested")).mode & 0o777, 0o700);
    assert.equal(statSync(join(t.dir, "state")).mode & 0o777, 0o700);
    // The WAL and shared-memory files carry the same private mode as the database.
    for (const f of [`${path}-wal`, `${path}-shm`]) {
      assert.ok(existsSync(f), f);
      assert.equal(statSync(f).mode & 0o077, 0, f);
    }
    assert.equal(c.schemaVersion(), CATALOG_SCHEMA_VERSION);
    c.close();
    const raw = new DatabaseSync(path);
    assert.equal(raw.prepare("PRAGMA journal_mode").get()!.journal_mode, "wal");
    raw.close();
  });

  it("tightens an existing catalog that others could read", () => {
    const path = join(t.dir, "loose.db");
    writeFileSync(path, "", { mode: 0o644 });
    openCatalog(path).close();
    assert.equal(statSync(path).mode & 0o777, 0o600);
  });

  it("reopening keeps the data and does not migrate twice", () => {
    const path = join(t.dir, "reopen.db");
    const a = openCatalog(path);
    const id = a.startRun({ command: "verify", repository: "main" });
    a.close();
    const b = openCatalog(path);
    assert.equal(b.getRun(id)?.command, "verify");
    assert.equal(b.schemaVersion(), CATALOG_SCHEMA_VERSION);
    b.close();
  });

  it("refuses a catalog from a newer strongbox, and a file that is not a database", () => {
    const path = join(t.dir, "newer.db");
    openCatalog(path).close();
    const raw = new DatabaseSync(path);
    raw.exec(`UPDATE schema_version SET version = ${CATALOG_SCHEMA_VERSION + 1}`);
    raw.close();
    assert.throws(
      () => openCatalog(path),
      (e: StrongboxError) => e.code === "CATALOG_TOO_NEW",
    );
    const junk = join(t.dir, "junk.db");
    writeFileSync(
      junk,
      "this is not sqlite, just a text file that is long enough to have a header".repeat(20),
      {
        mode: 0o600,
      },
    );
    assert.throws(
      () => openCatalog(junk),
      (e: StrongboxError) => e.code === "CATALOG_OPEN",
    );
  });
});

describe("catalog: runs", () => {
  it("startRun writes the row at once; finishRun records end, duration, bytes, error, details", async () => {
    const clock = new Clock();
    const { catalog, cleanup } = await tempCatalog(clock);
    try {
      const id = catalog.startRun({ command: "backup", repository: "main", node: "db2", kind: "full" });
      const running = catalog.getRun(id)!;
      assert.equal(running.result, "running");
      assert.equal(running.pid, process.pid);
      assert.equal(running.startedAt, clock.t);
      assert.equal(running.endedAt, null);
      assert.equal(running.node, "db2");
      assert.equal(running.kind, "full");
      assert.deepEqual(
        catalog.runningRuns().map((r) => r.id),
        [id],
      );
      clock.advance(90_000);
      const done = catalog.finishRun(id, {
        result: "ok",
        bytes: 12345,
        details: { backupId: "20250301T000000Z" },
      });
      assert.equal(done.result, "ok");
      assert.equal(done.durationMs, 90_000);
      assert.equal(done.endedAt, clock.t);
      assert.equal(done.bytes, 12345);
      assert.equal(done.error, null);
      assert.deepEqual(done.details, { backupId: "20250301T000000Z" });
      assert.deepEqual(catalog.runningRuns(), []);
      assert.throws(
        () => catalog.finishRun(9999, { result: "ok" }),
        (e: StrongboxError) => e.code === "RUN_UNKNOWN",
      );
    } finally {
      await cleanup();
    }
  });

  it("lastRun, history and runs filter by command, repository, result and kind", async () => {
    const clock = new Clock();
    const { catalog, cleanup } = await tempCatalog(clock);
    try {
      const a = seedRun(
        catalog,
        clock,
        { command: "backup", repository: "main", kind: "full" },
        { thenMs: 1000 },
      );
      const b = seedRun(
        catalog,
        clock,
        { command: "backup", repository: "main", kind: "incremental" },
        { result: "failed", thenMs: 1000 },
      );
      const c = seedRun(
        catalog,
        clock,
        { command: "backup", repository: "offsite", kind: "full" },
        { thenMs: 1000 },
      );
      const d = seedRun(catalog, clock, { command: "verify", repository: "main" }, { thenMs: 1000 });
      const since = clock.t;
      const e = seedRun(catalog, clock, { command: "backup", repository: "main", kind: "incremental" });

      assert.equal(catalog.lastRun("backup", "main")?.id, e.id);
      assert.equal(catalog.lastRun("backup", "main", { result: "failed" })?.id, b.id);
      assert.equal(catalog.lastRun("backup", "main", { kind: "full" })?.id, a.id);
      assert.equal(catalog.lastRun("verify", "main", { kind: null })?.id, d.id);
      assert.equal(catalog.lastRun("verify", "main", { kind: "full" }), undefined);
      assert.equal(catalog.lastRun("restore-test", "main"), undefined);
      assert.deepEqual(
        catalog.history("backup", "main", 10).map((r) => r.id),
        [e.id, b.id, a.id],
      );
      assert.deepEqual(
        catalog.history("backup", "main", 2).map((r) => r.id),
        [e.id, b.id],
      );
      assert.deepEqual(
        catalog.history("backup", "main", 10, { result: "ok" }).map((r) => r.id),
        [e.id, a.id],
      );
      assert.equal(catalog.firstRun("backup", "main")?.id, a.id);
      assert.deepEqual(
        catalog.runs({ since }).map((r) => r.id),
        [e.id],
      );
      assert.deepEqual(
        catalog.runs({ limit: 2 }).map((r) => r.id),
        [e.id, d.id],
      );
      assert.deepEqual(
        catalog.runs({ repository: "offsite" }).map((r) => r.id),
        [c.id],
      );
      assert.equal(catalog.firstRunAt("main"), a.startedAt);
      assert.equal(catalog.firstRunAt("nowhere"), undefined);
    } finally {
      await cleanup();
    }
  });

  it("recordRun finishes ok, failed or aborted, keeps the work's outcome, and records a one-line redacted error", async () => {
    const { catalog, cleanup } = await tempCatalog();
    try {
      const meta = { command: "backup", repository: "main", kind: "full" };
      const value = await recordRun(catalog, meta, async (run) => {
        assert.equal(catalog.getRun(run.id!)!.result, "running", "the row exists while the work runs");
        await sleep(30);
        run.bytes = 4096;
        return "manifest-1";
      });
      assert.equal(value, "manifest-1");
      const ok = catalog.lastRun("backup", "main")!;
      assert.equal(ok.result, "ok");
      assert.equal(ok.bytes, 4096);
      assert.ok(ok.durationMs! >= 25, `duration ${ok.durationMs}`);

      await assert.rejects(
        recordRun(catalog, meta, () => {
          throw new Error(
            "mariabackup exited 1\nstderr: connect failed for user backup password=hunter2secret",
          );
        }),
        /mariabackup exited 1/,
      );
      const failed = catalog.lastRun("backup", "main")!;
      assert.equal(failed.result, "failed");
      assert.ok(!failed.error!.includes("\n"));
      assert.ok(failed.error!.includes("mariabackup exited 1 stderr: connect failed"));
      assert.ok(!failed.error!.includes("hunter2secret"), failed.error!);

      await assert.rejects(
        recordRun(catalog, meta, () => {
          throw new StrongboxError("ABORTED", "backup aborted by SIGTERM; nothing was committed");
        }),
      );
      assert.equal(catalog.lastRun("backup", "main")!.result, "aborted");

      // A time limit is a failure, not an operator's abort.
      await assert.rejects(
        recordRun(catalog, meta, async () => {
          await sleep(1000, undefined, { signal: AbortSignal.timeout(10) });
        }),
      );
      assert.equal(catalog.lastRun("backup", "main")!.result, "failed");

      // The donor and the kind may only be known once the work has run.
      await recordRun(catalog, { command: "backup", repository: "main" }, (run) => {
        run.node = "db3";
        run.kind = "incremental";
      });
      const decided = catalog.lastRun("backup", "main")!;
      assert.equal(decided.node, "db3");
      assert.equal(decided.kind, "incremental");

      // summarize derives bytes and details from the result.
      await recordRun(catalog, meta, () => ({ size: 77 }), {
        summarize: (r) => ({ bytes: r.size, details: { id: "x" } }),
      });
      const s = catalog.lastRun("backup", "main")!;
      assert.equal(s.bytes, 77);
      assert.deepEqual(s.details, { id: "x" });
    } finally {
      await cleanup();
    }
  });

  it("recordRun still runs the work when the catalog cannot be written, and reports why", async () => {
    const { catalog, cleanup } = await tempCatalog();
    catalog.close();
    const problems: unknown[] = [];
    const out = await recordRun(catalog, { command: "backup", repository: "main" }, () => 42, {
      onCatalogError: (e) => problems.push(e),
    });
    assert.equal(out, 42);
    assert.equal(problems.length, 1);
    await cleanup();
  });

  it("redacts credentials from errors", () => {
    const cases: [string, string][] = [
      ["mysql://backup:pa55word@db1:3306/x failed", "pa55word"],
      ["Authorization: Bearer abcdefghijklmnop1234", "abcdefghijklmnop1234"],
      ["--password=topsecret123 rejected", "topsecret123"],
      ['{"token":"tok-9f8e7d6c"}', "tok-9f8e7d6c"],
      [
        "identity AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQ leaked",
        "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQ",
      ],
      [
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA\n-----END PRIVATE KEY-----",
        "MC4CAQAwBQYDK2VwBCIEIA",
      ],
    ];
    for (const [text, secret] of cases) {
      assert.ok(!redact(text).includes(secret), `${text} → ${redact(text)}`);
    }
    assert.equal(redact("connect ECONNREFUSED 127.0.0.11:3306"), "connect ECONNREFUSED 127.0.0.11:3306");
    const long = oneLineError(new Error(`${"x".repeat(600)}\nsecond line`));
    assert.equal(long.length, 500);
    assert.ok(!long.includes("\n"));
  });
});

describe("catalog: stale runs", () => {
  it("a run whose process was killed (kill -9) becomes 'killed'; a live one stays 'running'", async () => {
    const t = await tempDir();
    const path = join(t.dir, "catalog.db");
    const script = `
      import { openCatalog } from ${JSON.stringify(CATALOG_MODULE)};
      const c = openCatalog(${JSON.stringify(path)});
      const id = c.startRun({ command: "backup", repository: "main", kind: "full" });
      process.stdout.write(String(id) + "\\n");
      setInterval(() => {}, 1000);
    `;
    const start = async () => {
      const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      const [chunk] = (await once(child.stdout!, "data")) as [Buffer];
      return { child, id: Number(chunk.toString().trim()) };
    };
    const doomed = await start();
    const alive = await start();
    try {
      const catalog = openCatalog(path);
      // Another host's row: its pid means nothing here, so it is left alone.
      const raw = new DatabaseSync(path);
      raw
        .prepare(
          "INSERT INTO runs (command, repository, host, pid, started_at, result) VALUES ('copy', 'main', 'elsewhere', ?, ?, 'running')",
        )
        .run(doomed.child.pid!, Date.now());
      raw.close();

      assert.equal(catalog.markStaleRuns().length, 0, "both processes are alive");
      doomed.child.kill("SIGKILL");
      await once(doomed.child, "exit");
      assert.ok(!pidAlive(doomed.child.pid!));

      const marked = catalog.markStaleRuns();
      assert.deepEqual(
        marked.map((r) => r.id),
        [doomed.id],
      );
      const killed = catalog.getRun(doomed.id)!;
      assert.equal(killed.result, "killed");
      assert.ok(killed.endedAt !== null);
      assert.match(
        killed.error!,
        new RegExp(`process ${doomed.child.pid} .* ended without recording a result`),
      );
      assert.equal(catalog.getRun(alive.id)!.result, "running");
      assert.equal(catalog.runs({ command: "copy" })[0]!.result, "running");
      assert.equal(catalog.markStaleRuns().length, 0, "marking is done once");
      catalog.close();
    } finally {
      alive.child.kill("SIGKILL");
      doomed.child.kill("SIGKILL");
      await t.cleanup();
    }
  });

  it("a reused pid (same number, another process start time) does not keep a run alive", () => {
    assert.ok(pidAlive(process.pid));
    assert.ok(!pidAlive(process.pid, "1"), "this process did not start at tick 1");
  });
});
