// Preloaded into the strongbox process by the benchmark (NODE_OPTIONS=--import): at exit it writes
// that process's own peak RSS (VmHWM), CPU time and event-loop delay, which no outside sampler can
// read exactly. Its children (mariabackup, zstd) are measured separately by the harness.
//
// Plain JavaScript on purpose: a .ts preload makes Node load its TypeScript stripper into the
// measured process, about 21 MB of RSS that the installed CLI (compiled to dist/) never has.
// The report's shape is `NodeProbe` in measure.ts.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";

const outDir = process.env.STRONGBOX_BENCH_PROBE;

if (outDir) {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  process.on("exit", () => {
    const status = readFileSync("/proc/self/status", "latin1");
    const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0);
    const usage = process.resourceUsage();
    delay.disable();
    const report = {
      pid: process.pid,
      argv: process.argv.slice(2),
      peakRssKb: kb("VmHWM"),
      userS: usage.userCPUTime / 1e6,
      sysS: usage.systemCPUTime / 1e6,
      eventLoopMaxMs: delay.max / 1e6,
      eventLoopP99Ms: delay.percentile(99) / 1e6,
    };
    writeFileSync(join(outDir, `node-${process.pid}.json`), JSON.stringify(report));
  });
}
