// The dashboard in a real headless Chromium, drawing the run history of a real sandbox cluster
// written by the real CLI (init, backups, verify, restore-test).

import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type BrowserContext, chromium } from "playwright-core";
import { serve } from "../../src/commands/serve.ts";
import { loadConfig, parseConfigText } from "../../src/config/load.ts";
import { catalogPathOf, monitorSettingsOf } from "../../src/config/monitoring.ts";
import type { ConfigError, StrongboxError } from "../../src/errors.ts";
import { openCatalog } from "../../src/monitor/catalog.ts";
import { loadDataset } from "../../src/sandbox/dataset.ts";
import { MemoryOutput } from "../../src/terminal/output.ts";
import { readToken } from "../../src/web/auth.ts";
import { type RunningServer, startServer } from "../../src/web/server.ts";
import { cli, editConfig } from "../helpers/cli.ts";
import { useCluster } from "../helpers/cluster.ts";

const ARTIFACTS = new URL("../../test-artifacts/", import.meta.url).pathname;
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

describe("dashboard (serve) in headless Chromium", () => {
  const cluster = useCluster({ nodes: 1 });
  const profile = mkdtempSync(join(tmpdir(), "strongbox-chromium-"));
  let browser: BrowserContext | undefined;
  let server: RunningServer | undefined;

  before(async () => {
    // A fresh profile per run: launchPersistentContext passes it as --user-data-dir.
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: "/usr/bin/chromium",
      args: CHROMIUM_ARGS,
      headless: true,
      viewport: { width: 1360, height: 1000 },
      timeout: 60_000,
    });
  });
  after(async () => {
    await server?.close();
    await browser?.close();
    rmSync(profile, { recursive: true, force: true });
  });

  const run = async (...args: string[]) => {
    const r = await cli(["--config", cluster.configPath, ...args]);
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    return r;
  };

  it("records a real history: init, backups, verify, restore-test", { timeout: 600_000 }, async () => {
    await run("init");
    const c = await cluster.connect(1);
    await loadDataset(c, { sizeBytes: 2_000_000, seed: 7 });
    await c.end();
    await run("backup", "--full");
    const w = await cluster.connect(1);
    // Grow the data so the second full is visibly larger than the first on the size chart.
    await w.query(
      `CREATE TABLE logs.growth (id INT PRIMARY KEY, pad TEXT);
       INSERT INTO logs.growth SELECT seq, CONCAT(SHA2(RAND(), 512), SHA2(RAND(), 512), SHA2(RAND(), 512))
       FROM logs.seq_1_to_20000`,
    );
    await w.end();
    await run("backup", "--full");
    await run("backup", "--incremental");
    await run("verify");
    await run("restore-test");
    await run("binlog", "archive");
  });

  it("draws one point per backup in the catalog, the record and the status, without errors", async () => {
    const loaded = await loadConfig(cluster.configPath);
    const catalog = openCatalog(catalogPathOf(loaded));
    const backups = catalog.runs({ command: "backup", result: "ok" });
    const checks = catalog.runs().filter((r) => r.command === "verify" || r.command === "restore-test");
    const passes = catalog.runs({ command: "binlog-archive" });
    const tests = catalog.runs({ command: "restore-test", result: "ok" });
    catalog.close();
    assert.equal(backups.length, 3);
    assert.equal(checks.length, 2);
    assert.equal(passes.length, 1);

    server = await startServer({ monitor: monitorSettingsOf(loaded), host: "127.0.0.1", port: 0 });
    const page = await browser!.newPage();
    const problems: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()}`));
    const outside: string[] = [];
    page.on("request", (r) => {
      if (!r.url().startsWith(server!.url) && !r.url().startsWith("data:")) outside.push(r.url());
    });

    const response = await page.goto(server.url, { waitUntil: "load" });
    assert.equal(response?.status(), 200);
    const headers = response!.headers();
    assert.match(headers["content-security-policy"] ?? "", /script-src 'nonce-/);
    assert.doesNotMatch(headers["content-security-policy"] ?? "", /unsafe-eval|unsafe-inline/);
    assert.equal(headers["x-content-type-options"], "nosniff");
    await page.locator("body[data-rendered=true]").waitFor({ timeout: 10_000 });

    const ids = backups.map((b) => String(b.id)).sort();
    for (const chart of ["#chart-duration", "#chart-size"]) {
      const points = page.locator(`${chart} circle.point`);
      assert.equal(await points.count(), backups.length, `${chart} plots every backup`);
      const plotted = (
        await points.evaluateAll((els) => els.map((e) => e.getAttribute("data-run-id")))
      ).sort();
      assert.deepEqual(plotted, ids);
    }
    const sizes = await page
      .locator("#chart-size circle.point")
      .evaluateAll((els) => els.map((e) => Number(e.getAttribute("data-value"))));
    assert.deepEqual(sizes.sort(), backups.map((b) => b.bytes).sort());
    assert.equal(
      await page.locator("#timeline circle.tl-run").count(),
      backups.length + checks.length + passes.length,
    );
    assert.equal(await page.locator("#record-body tr.check-run[data-result=ok]").count(), 2);
    // The record names the repository of each check.
    assert.deepEqual(await page.locator("#record-body tr.check-run td.repo").allTextContents(), [
      "local",
      "local",
    ]);
    // RTO over time: one point per passing restore-test, at its measured value.
    const rto = page.locator("#chart-rto circle.point");
    assert.equal(await rto.count(), tests.length);
    assert.deepEqual(
      await rto.evaluateAll((els) => els.map((e) => Number(e.getAttribute("data-value")))),
      tests.map((t) => t.details!.rtoSeconds as number),
    );
    // Point-in-time recovery: the window from the pass, no gaps.
    const pitr = page.locator("#pitr-body tr.pitr[data-repository=local]");
    assert.match(
      (await pitr.locator("td.window").textContent()) ?? "",
      /^\d{4}-\d\d-\d\d \d\d:\d\d \.\. \d{4}-/,
    );
    assert.equal(await pitr.locator("td.gaps").textContent(), "0");
    // The status table shows the other commands' last runs too.
    assert.match(
      (await page.locator("#checks-body tr.other-run[data-command=binlog-archive]").textContent()) ?? "",
      /binlog-archive.*ok/,
    );
    assert.match(
      (await page.locator("#record-body").textContent()) ?? "",
      /restore-test[\s\S]*PASS[\s\S]*\d s/,
    );
    assert.match((await page.locator("#overall").textContent()) ?? "", /^(OK|WARNING|CRITICAL)$/);
    assert.match((await page.locator("#checks-body").textContent()) ?? "", /backup.*ok/);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "dashboard.png"), fullPage: true });
    await page.close();
    assert.deepEqual(problems, []);
    assert.deepEqual(outside, []);
  });

  it("serves the JSON API and Prometheus metrics", async () => {
    const base = server!.url;
    const status = (await (await fetch(`${base}api/status`)).json()) as {
      level: string;
      repositories: unknown[];
    };
    assert.match(status.level, /^(OK|WARNING|CRITICAL)$/);
    assert.equal(status.repositories.length, 1);
    const runs = (await (await fetch(`${base}api/runs?limit=2`)).json()) as { command: string }[];
    assert.equal(runs.length, 2);
    assert.equal(runs[0]!.command, "binlog-archive");
    const future = (await (
      await fetch(`${base}api/runs?since=${Date.now() + 3_600_000}`)
    ).json()) as unknown[];
    assert.deepEqual(future, []);
    const bad = await fetch(`${base}api/runs?limit=lots`);
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: string }).error, /limit/);
    assert.ok(Array.isArray(await (await fetch(`${base}api/incidents`)).json()));
    const metrics = await fetch(`${base}metrics`);
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers.get("content-type") ?? "", /^text\/plain/);
    const text = await metrics.text();
    assert.match(text, /^# TYPE strongbox_\w+/m);
    assert.match(text, /^strongbox_\w+\{[^}]*repository="[^"]+"[^}]*\} \d/m);
    assert.equal((await fetch(`${base}nope`)).status, 404);
    assert.equal((await fetch(`${base}api/status`, { method: "POST" })).status, 405);
    // A page elsewhere rebinding its DNS name to 127.0.0.1 gets nothing without a token.
    const rebound = await new Promise<number | undefined>((resolve, reject) =>
      request(`${base}api/status`, { headers: { Host: "evil.example:80" } }, (res) => {
        res.resume();
        resolve(res.statusCode);
      })
        .once("error", reject)
        .end(),
    );
    assert.equal(rebound, 421);
  });

  it("enforces the token: 401 without, bearer or basic auth with it; refuses a public bind without one", async () => {
    const tokenFile = join(cluster.dir, "dashboard.token");
    const token = "0123456789abcdef0123456789abcdef";
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    const cfg = editConfig(cluster.configPath, join(cluster.dir, "serve.yaml"), (c) => {
      c.serve = { bind: "127.0.0.1", port: 0, tokenFile };
    });
    const loaded = await loadConfig(cfg);
    const secured = await startServer({
      monitor: monitorSettingsOf(loaded),
      host: "127.0.0.1",
      port: 0,
      token: await readToken(tokenFile),
    });
    try {
      const none = await fetch(`${secured.url}api/status`);
      assert.equal(none.status, 401);
      assert.match(none.headers.get("www-authenticate") ?? "", /^Basic/);
      assert.equal((await fetch(`${secured.url}metrics`)).status, 401);
      const wrong = await fetch(`${secured.url}metrics`, { headers: { Authorization: `Bearer ${token}x` } });
      assert.equal(wrong.status, 401);
      const bearer = await fetch(`${secured.url}metrics`, { headers: { Authorization: `Bearer ${token}` } });
      assert.equal(bearer.status, 200);
      const basic = Buffer.from(`admin:${token}`).toString("base64");
      assert.equal((await fetch(secured.url, { headers: { Authorization: `Basic ${basic}` } })).status, 200);

      const page = await browser!.newPage();
      await page.setExtraHTTPHeaders({ Authorization: `Bearer ${token}` });
      await page.goto(secured.url);
      await page.locator("body[data-rendered=true]").waitFor({ timeout: 10_000 });
      assert.equal(await page.locator("#chart-duration circle.point").count(), 3);
      await page.close();
    } finally {
      await secured.close();
    }

    await assert.rejects(
      serve(
        { config: cluster.configPath, json: true, verbose: false },
        { bind: "0.0.0.0", port: 0 },
        new MemoryOutput(true),
      ),
      (e: StrongboxError) => e.code === "SERVE_NEEDS_TOKEN",
    );
    const base = readFileSync(cluster.configPath, "utf8");
    assert.throws(
      () => parseConfigText(`${base}\nserve: { bind: 0.0.0.0 }\n`, "t.yaml"),
      (e: ConfigError) => e.problems.some((p) => /^serve\.tokenFile: binding to 0\.0\.0\.0/.test(p)),
    );
  });
});
