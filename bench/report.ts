// Medians of the repetitions, the spec's targets checked against them, and the Markdown tables.

export type Op =
  | "full"
  | "incremental"
  | "restore"
  | "agent-full"
  | "agent-restore"
  | "remote"
  | "copy"
  // --decompose: where a full backup's time goes against the shell pipeline's
  | "gap";
export type Tool =
  | "floor"
  | "shell"
  | "strongbox"
  | "restic"
  | "borg"
  // remote rows (bench/remote.ts): straight to the test servers
  | "strongbox-sftp"
  | "strongbox-s3"
  | "restic-sftp"
  | "restic-s3"
  | "shell-ssh"
  // --decompose: the full backup without the donor's row counts, and into a tmpfs repository
  | "strongbox-nocount"
  | "strongbox-tmpfs";

const OPS: readonly Op[] = [
  "full",
  "incremental",
  "restore",
  "agent-full",
  "agent-restore",
  "remote",
  "copy",
  "gap",
];
const TOOLS: readonly Tool[] = [
  "floor",
  "shell",
  "strongbox",
  "restic",
  "borg",
  "strongbox-sftp",
  "strongbox-s3",
  "restic-sftp",
  "restic-s3",
  "shell-ssh",
  "strongbox-nocount",
  "strongbox-tmpfs",
];

/** One measured command. */
export interface Run {
  op: Op;
  tool: Tool;
  rep: number;
  wallS: number;
  /** user + sys of the whole process tree. */
  cpuS: number;
  /** Peak RSS of the tool's own process (strongbox: the Node process; shell: its largest filter). */
  rssMb: number;
  /** CPU seconds of the tool's own process (strongbox: the Node process alone). */
  ownCpuS: number;
  /** Peak RSS (MB) and CPU seconds of the other processes of the tree, by name. */
  others: Record<string, { rssMb: number; cpuS: number }>;
  /** CPU seconds of every process of the tree by name (strongbox's Node process as "strongbox"). */
  cpuByProcess: Record<string, number>;
  storedBytes?: number;
  rawBytes?: number;
  /** Stage times: strongbox's manifest durations or restore timings, the shell's extract/prepare. */
  stages?: Record<string, number>;
  eventLoopMaxMs?: number;
  eventLoopP99Ms?: number;
  /** Peak RSS of the node's agent process (agent-full, agent-restore). */
  nodeRssMb?: number;
  loadAvg: number;
}

export interface SizeResult {
  size: string;
  requestedBytes: number;
  /** Bytes of the mariabackup stream (strongbox's manifest bytes.raw of the first full). */
  rawStreamBytes: number;
  datadirBytes: number;
  loadSeconds: number;
  writeLoad: { seconds: number; rate: number };
  runs: Run[];
}

export interface Row {
  op: Op;
  tool: Tool;
  reps: number;
  wallS: number;
  cpuS: number;
  /** The largest over the repetitions (the spec's limit is on the peak). */
  rssMb: number;
  ownCpuS: number;
  others: Record<string, number>;
  /** Median CPU seconds by process name. */
  cpuByProcess: Record<string, number>;
  storedBytes?: number;
  stages?: Record<string, number>;
  eventLoopMaxMs?: number;
  /** The largest peak RSS of the node's agent over the repetitions. */
  nodeRssMb?: number;
}

export interface Check {
  size: string;
  name: string;
  measured: string;
  limit: string;
  pass: boolean;
}

export const LABELS: Record<Op, Partial<Record<Tool, string>>> = {
  full: {
    floor: "mariabackup > /dev/null (floor)",
    shell: "shell: mariabackup | zstd -1 -T0 | age",
    strongbox: "strongbox backup --full",
    restic: "restic backup --stdin",
    borg: "borg create --compression zstd,3 -",
  },
  incremental: {
    strongbox: "strongbox backup --incremental",
    restic: "restic: 2nd snapshot of a full stream",
    borg: "borg: 2nd archive of a full stream",
  },
  restore: {
    shell: "shell: age -d | zstd -d | mbstream -x; prepare",
    strongbox: "strongbox restore (extract + prepare)",
    restic: "restic dump | mbstream -x; prepare",
    borg: "borg extract --stdout | mbstream -x; prepare",
  },
  "agent-full": {
    shell: "shell: ssh node 'mariabackup | zstd -1 -T0 | age' > file",
    strongbox: "strongbox backup --full through the node's agent",
  },
  "agent-restore": {
    shell: "shell: ssh node 'age -d | zstd -d | mbstream -x' < file; prepare",
    strongbox: "strongbox restore --onto the node (agent)",
  },
  remote: {
    "strongbox-sftp": "strongbox backup --full to SFTP (OpenSSH sshd)",
    "strongbox-s3": "strongbox backup --full to S3 (Ceph RGW, HTTPS)",
    "restic-sftp": "restic backup --stdin, sftp backend (same sshd)",
    "restic-s3": "restic backup --stdin, s3 backend (same RGW, HTTPS)",
    "shell-ssh": "shell: mariabackup | zstd | age | ssh host 'cat > file'",
  },
  copy: {
    strongbox: "strongbox copy local → S3 (HTTPS)",
  },
  gap: {
    shell: "shell: mariabackup | zstd -1 -T0 | age",
    strongbox: "strongbox backup --full",
    "strongbox-nocount": "strongbox backup --full, backup.exactCountMaxRows: 0 (no row counts)",
    "strongbox-tmpfs": "strongbox backup --full into a repository on tmpfs (no device writes)",
  },
};

export function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function medianRecord(records: (Record<string, number> | undefined)[]): Record<string, number> | undefined {
  const keys = new Set(records.flatMap((r) => Object.keys(r ?? {})));
  if (keys.size === 0) return undefined;
  const out: Record<string, number> = {};
  for (const k of keys) out[k] = round(median(records.map((r) => r?.[k] ?? Number.NaN)), 3);
  return out;
}

function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export function summarize(runs: Run[]): Row[] {
  const rows: Row[] = [];
  for (const op of OPS) {
    for (const tool of TOOLS) {
      const rs = runs.filter((r) => r.op === op && r.tool === tool);
      if (rs.length === 0) continue;
      const others: Record<string, number> = {};
      for (const r of rs)
        for (const [k, v] of Object.entries(r.others)) others[k] = Math.max(others[k] ?? 0, v.rssMb);
      const stored = rs.map((r) => r.storedBytes).filter((x): x is number => x !== undefined);
      const stages = medianRecord(rs.map((r) => r.stages));
      const cpuByProcess = medianRecord(rs.map((r) => r.cpuByProcess)) ?? {};
      const loop = rs.map((r) => r.eventLoopMaxMs).filter((x): x is number => x !== undefined);
      const nodeRss = rs.map((r) => r.nodeRssMb).filter((x): x is number => x !== undefined);
      rows.push({
        op,
        tool,
        reps: rs.length,
        wallS: round(median(rs.map((r) => r.wallS))),
        cpuS: round(median(rs.map((r) => r.cpuS))),
        rssMb: round(Math.max(...rs.map((r) => r.rssMb)), 1),
        ownCpuS: round(median(rs.map((r) => r.ownCpuS))),
        others,
        cpuByProcess,
        ...(stored.length ? { storedBytes: Math.round(median(stored)) } : {}),
        ...(stages ? { stages } : {}),
        ...(loop.length ? { eventLoopMaxMs: round(Math.max(...loop), 1) } : {}),
        ...(nodeRss.length ? { nodeRssMb: round(Math.max(...nodeRss), 1) } : {}),
      });
    }
  }
  return rows;
}

export const TARGETS = {
  fullVsShell: 1.15,
  /** A full backup through the node's agent, against the pipeline run by ssh on the node. */
  agentFullVsShell: 1.15,
  agentRestoreVsShell: 1.2,
  fasterThanRestic: 2,
  fasterThanBorg: 2,
  restoreVsShell: 1.2,
  rssMb: 150,
  /** Flat: peak RSS at the largest size at most this much above the smallest. */
  rssGrowth: 1.2,
  /** "A small fraction of a full". */
  incrementalFraction: 0.1,
  /** Straight to S3 or SFTP: within this much of the local backup's wall time. */
  remoteVsLocal: 1.3,
};

function row(rows: Row[], op: Op, tool: Tool): Row | undefined {
  return rows.find((r) => r.op === op && r.tool === tool);
}

/**
 * Each strongbox repetition against the shell repetition next to it (same op, same rep: they ran
 * back to back), so that drift in the machine's load cancels out of each ratio.
 */
export function pairRatios(runs: readonly Run[], op: Op, tool: Tool = "strongbox"): number[] {
  const out: number[] = [];
  for (const sb of runs.filter((r) => r.op === op && r.tool === tool)) {
    const sh = runs.find((r) => r.op === op && r.tool === "shell" && r.rep === sb.rep);
    if (sh && sh.wallS > 0) out.push(sb.wallS / sh.wallS);
  }
  return out;
}

/** The targets, judged on medians; a vs-shell target on the median of the pairwise ratios. */
export function checks(size: string, rows: Row[], runs: readonly Run[] = []): Check[] {
  const out: Check[] = [];
  const vsShell = (op: Op, name: string, limit: number) => {
    const sb = row(rows, op, "strongbox");
    const sh = row(rows, op, "shell");
    if (!sb || !sh) return;
    const pairs = pairRatios(runs, op);
    const ratio = pairs.length > 0 ? median(pairs) : sb.wallS / sh.wallS;
    const spread =
      pairs.length > 0
        ? `median of ${pairs.length} pairs, ${Math.min(...pairs).toFixed(2)}–${Math.max(...pairs).toFixed(2)}; `
        : "";
    out.push({
      size,
      name: `${name} vs shell pipeline`,
      measured: `${ratio.toFixed(2)}× (${spread}${sb.wallS} s vs ${sh.wallS} s)`,
      limit: `≤ ${limit}×`,
      pass: ratio <= limit,
    });
  };
  const sbFull = row(rows, "full", "strongbox");
  vsShell("full", "full backup", TARGETS.fullVsShell);
  for (const [tool, limit] of [
    ["restic", TARGETS.fasterThanRestic],
    ["borg", TARGETS.fasterThanBorg],
  ] as const) {
    const other = row(rows, "full", tool);
    if (!sbFull || !other) continue;
    const speedup = other.wallS / sbFull.wallS;
    out.push({
      size,
      name: `full backup faster than ${tool}`,
      measured: `${speedup.toFixed(2)}× (${sbFull.wallS} s vs ${other.wallS} s)`,
      limit: `≥ ${limit}×`,
      pass: speedup >= limit,
    });
  }
  vsShell("restore", "restore", TARGETS.restoreVsShell);
  vsShell("agent-full", "full backup through the node's agent", TARGETS.agentFullVsShell);
  vsShell("agent-restore", "restore onto the node (agent)", TARGETS.agentRestoreVsShell);
  const nodeRss = rows.map((r) => r.nodeRssMb).filter((x): x is number => x !== undefined);
  if (nodeRss.length) {
    const peak = Math.max(...nodeRss);
    out.push({
      size,
      name: "peak RSS of the agent on the node (backup and restore)",
      measured: `${peak.toFixed(0)} MB`,
      limit: `< ${TARGETS.rssMb} MB`,
      pass: peak < TARGETS.rssMb,
    });
  }
  const sbIncr = row(rows, "incremental", "strongbox");
  if (sbIncr?.storedBytes !== undefined && sbFull?.storedBytes) {
    const f = sbIncr.storedBytes / sbFull.storedBytes;
    out.push({
      size,
      name: "incremental stores a small fraction of a full",
      measured: `${(f * 100).toFixed(1)}% (${mb(sbIncr.storedBytes)} MB of ${mb(sbFull.storedBytes)} MB)`,
      limit: `≤ ${TARGETS.incrementalFraction * 100}%`,
      pass: f <= TARGETS.incrementalFraction,
    });
  }
  for (const [sbTool, resticTool] of [
    ["strongbox-sftp", "restic-sftp"],
    ["strongbox-s3", "restic-s3"],
  ] as const) {
    const remote = row(rows, "remote", sbTool);
    if (!remote) continue;
    if (sbFull) {
      const ratio = remote.wallS / sbFull.wallS;
      out.push({
        size,
        name: `full backup ${sbTool.slice(10).toUpperCase()} vs local`,
        measured: `${ratio.toFixed(2)}× (${remote.wallS} s vs ${sbFull.wallS} s)`,
        limit: `≤ ${TARGETS.remoteVsLocal}×`,
        pass: ratio <= TARGETS.remoteVsLocal,
      });
    }
    const restic = row(rows, "remote", resticTool);
    if (restic) {
      const speedup = restic.wallS / remote.wallS;
      out.push({
        size,
        name: `full backup to ${sbTool.slice(10).toUpperCase()} faster than ${resticTool}`,
        measured: `${speedup.toFixed(2)}× (${remote.wallS} s vs ${restic.wallS} s)`,
        limit: `≥ ${TARGETS.fasterThanRestic}×`,
        pass: speedup >= TARGETS.fasterThanRestic,
      });
    }
  }
  const sbRss = strongboxPeakRss(rows);
  if (sbRss !== undefined) {
    out.push({
      size,
      name: "strongbox peak RSS (backup, restore, remote, copy)",
      measured: `${sbRss.toFixed(0)} MB`,
      limit: `< ${TARGETS.rssMb} MB`,
      pass: sbRss < TARGETS.rssMb,
    });
  }
  return out;
}

export function strongboxPeakRss(rows: Row[]): number | undefined {
  const rss = rows.filter((r) => r.tool.startsWith("strongbox")).map((r) => r.rssMb);
  return rss.length ? Math.max(...rss) : undefined;
}

/** Peak RSS stays flat from the smallest size to the largest. */
export function flatnessCheck(sizes: { size: string; rows: Row[] }[]): Check | undefined {
  if (sizes.length < 2) return undefined;
  const first = sizes[0]!;
  const last = sizes[sizes.length - 1]!;
  const a = strongboxPeakRss(first.rows);
  const b = strongboxPeakRss(last.rows);
  if (a === undefined || b === undefined) return undefined;
  return {
    size: `${first.size} → ${last.size}`,
    name: "strongbox peak RSS flat as the data grows",
    measured: `${a.toFixed(0)} → ${b.toFixed(0)} MB (${(b / a).toFixed(2)}×)`,
    limit: `≤ ${TARGETS.rssGrowth}×`,
    pass: b / a <= TARGETS.rssGrowth,
  };
}

function mb(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}

function targetFor(rows: Row[], r: Row): [string, string] {
  const sb = row(rows, r.op, "strongbox");
  const shell = row(rows, r.op, "shell");
  const verdict = (ok: boolean, v: string) => (ok ? `pass (${v})` : `**FAIL** (${v})`);
  if (r.op === "full" && r.tool === "strongbox" && shell) {
    const x = r.wallS / shell.wallS;
    return [`≤ ${TARGETS.fullVsShell}× shell`, verdict(x <= TARGETS.fullVsShell, `${x.toFixed(2)}×`)];
  }
  if (r.op === "full" && (r.tool === "restic" || r.tool === "borg") && sb) {
    const x = r.wallS / sb.wallS;
    return ["strongbox ≥ 2× faster", verdict(x >= 2, `${x.toFixed(2)}×`)];
  }
  if (r.op === "copy" && r.storedBytes !== undefined) {
    return ["", `${(r.storedBytes / 1e6 / r.wallS).toFixed(0)} MB/s`];
  }
  if (r.op === "remote" && r.tool.startsWith("strongbox-")) {
    const local = row(rows, "full", "strongbox");
    if (local) {
      const x = r.wallS / local.wallS;
      return [
        `≤ ${TARGETS.remoteVsLocal}× local`,
        verdict(x <= TARGETS.remoteVsLocal, `${x.toFixed(2)}× local`),
      ];
    }
  }
  if (r.op === "remote" && r.tool.startsWith("restic-")) {
    const mine = row(rows, "remote", r.tool.replace("restic-", "strongbox-") as Tool);
    if (mine) {
      const x = r.wallS / mine.wallS;
      return ["strongbox ≥ 2× faster", verdict(x >= TARGETS.fasterThanRestic, `${x.toFixed(2)}×`)];
    }
  }
  if (r.op === "restore" && r.tool === "strongbox" && shell) {
    const x = r.wallS / shell.wallS;
    return [`≤ ${TARGETS.restoreVsShell}× shell`, verdict(x <= TARGETS.restoreVsShell, `${x.toFixed(2)}×`)];
  }
  if ((r.op === "agent-full" || r.op === "agent-restore") && r.tool === "strongbox" && shell) {
    const limit = r.op === "agent-full" ? TARGETS.agentFullVsShell : TARGETS.agentRestoreVsShell;
    const x = r.wallS / shell.wallS;
    return [`≤ ${limit}× shell`, verdict(x <= limit, `${x.toFixed(2)}×`)];
  }
  if (r.op === "incremental") {
    const full = row(rows, "full", r.tool);
    if (r.storedBytes !== undefined && full?.storedBytes) {
      const f = r.storedBytes / full.storedBytes;
      const pct = `${(f * 100).toFixed(1)}% of a full`;
      return r.tool === "strongbox"
        ? [
            `≤ ${TARGETS.incrementalFraction * 100}% of a full`,
            verdict(f <= TARGETS.incrementalFraction, pct),
          ]
        : ["", pct];
    }
  }
  return ["", ""];
}

function othersText(others: Record<string, number>): string {
  return Object.entries(others)
    .filter(([k, v]) => v >= 1 && k !== "bash" && k !== "time")
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v.toFixed(0)}`)
    .join(", ");
}

export function markdownTable(rows: Row[]): string {
  const head = [
    "operation",
    "tool",
    "wall s",
    "CPU s",
    "peak RSS MB",
    "other processes, peak RSS MB",
    "stored MB",
    "ratio vs shell",
    "target",
    "result",
  ];
  const lines = [
    `| ${head.join(" | ")} |`,
    `|${head.map((_, i) => (i < 2 || i > 7 ? "---" : "---:")).join("|")}|`,
  ];
  for (const r of rows) {
    const shell = row(rows, r.op, "shell");
    const ratio = shell && r.op !== "incremental" ? `${(r.wallS / shell.wallS).toFixed(2)}×` : "";
    const [target, result] = targetFor(rows, r);
    lines.push(
      `| ${[
        r.op,
        (LABELS[r.op][r.tool] ?? r.tool).replace(/\|/g, "\\|"),
        r.wallS.toFixed(2),
        r.cpuS.toFixed(2),
        r.rssMb.toFixed(0),
        [othersText(r.others), r.nodeRssMb !== undefined ? `agent on the node ${r.nodeRssMb.toFixed(0)}` : ""]
          .filter(Boolean)
          .join(", "),
        r.storedBytes !== undefined ? mb(r.storedBytes) : "",
        ratio,
        target,
        result,
      ].join(" | ")} |`,
    );
  }
  return lines.join("\n");
}

export function checksTable(all: Check[]): string {
  const lines = ["| size | target | measured | limit | result |", "|---|---|---|---|---|"];
  for (const c of all)
    lines.push(`| ${c.size} | ${c.name} | ${c.measured} | ${c.limit} | ${c.pass ? "pass" : "**FAIL**"} |`);
  return lines.join("\n");
}

export function scalingTable(sizes: { size: string; rawStreamBytes: number; rows: Row[] }[]): string {
  const lines = [
    "| size | stream GB | strongbox full s/GB | shell s/GB | restic s/GB | borg s/GB | strongbox restore s/GB | shell restore s/GB | strongbox peak RSS MB (full / incr / restore) |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const s of sizes) {
    const gb = s.rawStreamBytes / 1e9;
    const per = (op: Op, tool: Tool) => {
      const r = row(s.rows, op, tool);
      return r ? (r.wallS / gb).toFixed(1) : "";
    };
    const rss = (op: Op) => row(s.rows, op, "strongbox")?.rssMb.toFixed(0) ?? "–";
    lines.push(
      `| ${s.size} | ${gb.toFixed(2)} | ${per("full", "strongbox")} | ${per("full", "shell")} | ${per("full", "restic")} | ${per("full", "borg")} | ${per("restore", "strongbox")} | ${per("restore", "shell")} | ${rss("full")} / ${rss("incremental")} / ${rss("restore")} |`,
    );
  }
  return lines.join("\n");
}

/**
 * --decompose: where a full backup's time goes against the shell pipeline's, from the "gap" runs.
 * Every difference is taken within a repetition (the variants ran back to back), then the median.
 */
export function gapTable(sizes: readonly { size: string; runs: readonly Run[] }[]): string {
  const lines = [
    "| size | variant | wall s | vs shell, median of pairs (range) | startup s | stream s | after the stream s |",
    "|---|---|---:|---:|---:|---:|---:|",
  ];
  const notes: string[] = [];
  const secs = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : "");
  for (const { size, runs } of sizes) {
    const gap = runs.filter((r) => r.op === "gap");
    if (gap.length === 0) continue;
    const of = (tool: Tool) => gap.filter((r) => r.tool === tool);
    const stage = (r: Run, k: string) => r.stages?.[k] ?? Number.NaN;
    for (const tool of ["shell", "strongbox", "strongbox-nocount", "strongbox-tmpfs"] as const) {
      const rs = of(tool);
      if (rs.length === 0) continue;
      const pairs = tool === "shell" ? [] : pairRatios(gap, "gap", tool);
      const startup = median(rs.map((r) => stage(r, "startup")));
      const stream = median(rs.map((r) => stage(r, "stream")));
      const after = median(rs.map((r) => r.wallS - stage(r, "startup") - stage(r, "stream")));
      lines.push(
        `| ${size} | ${(LABELS.gap[tool] ?? tool).replace(/\|/g, "\\|")} | ${secs(median(rs.map((r) => r.wallS)))} | ${
          pairs.length
            ? `${median(pairs).toFixed(2)}× (${Math.min(...pairs).toFixed(2)}–${Math.max(...pairs).toFixed(2)})`
            : ""
        } | ${secs(startup)} | ${secs(stream)} | ${secs(after)} |`,
      );
    }
    // Within each repetition: a's measure (its wall time unless given) against b's wall time.
    const diff = (a: Tool, b: Tool, measure: (r: Run) => number = (r) => r.wallS) => {
      const ds: number[] = [];
      for (const x of of(a)) {
        const y = gap.find((r) => r.tool === b && r.rep === x.rep);
        if (y) ds.push(measure(x) - y.wallS);
      }
      return ds.length
        ? `${median(ds).toFixed(2)} s (${Math.min(...ds).toFixed(2)} to ${Math.max(...ds).toFixed(2)})`
        : "n/a";
    };
    notes.push(
      `- ${size}: the whole backup takes ${diff("strongbox", "shell")} more than the shell pipeline; its stream alone (mariabackup's start to the last part written) ${diff("strongbox", "shell", (r) => stage(r, "stream"))} more.`,
      `- ${size}: the donor's row counts (the inventory) cost ${diff("strongbox", "strongbox-nocount")}; writing the parts to the disk, direct and synced, ${diff("strongbox", "strongbox-tmpfs")} (against a tmpfs repository).`,
    );
  }
  return lines.length > 2 ? [...lines, "", ...notes].join("\n") : "";
}
