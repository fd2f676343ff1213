// The dashboard page: one self-contained HTML document (inline style and script under a per-response
// CSP nonce, data embedded as JSON), so it works offline and loads nothing from elsewhere.
import { CLIENT_SCRIPT } from "./client.ts";
import type { DashboardData } from "./data.ts";

/** JSON safe inside a <script> element: no "<" that could close it early. */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, "\\u003c")
    .replace(/\u2028/g, "\\u2028")
    .replace(/\u2029/g, "\\u2029");
}

const STYLE = `
  :root { color-scheme: light; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328; }
  body { margin: 0; background: #f6f8fa; }
  header { display: flex; align-items: center; gap: 16px; padding: 14px 24px; background: #24292f; color: #fff; }
  header h1 { font-size: 20px; margin: 0; font-weight: 600; }
  #generated { margin-left: auto; font-size: 13px; color: #d0d7de; }
  main { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 16px; padding: 16px 24px; }
  section { background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: 12px 16px; min-width: 0; }
  section.wide { grid-column: 1 / -1; }
  h2 { font-size: 15px; margin: 0 0 8px; }
  svg { width: 100%; height: auto; display: block; }
  svg text { font-size: 11px; fill: #57606a; }
  svg text.empty { font-size: 14px; }
  table { border-collapse: collapse; width: 100%; font-size: 13px; }
  th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eaeef2; vertical-align: top; }
  th { color: #57606a; font-weight: 600; }
  .badge { padding: 3px 10px; border-radius: 12px; font-weight: 700; font-size: 14px; }
  .badge.ok { background: #1a7f37; } .badge.warn { background: #bf8700; }
  .badge.crit { background: #cf222e; } .badge.unknown { background: #6e7781; }
  .lv.ok { color: #1a7f37; font-weight: 600; } .lv.warn { color: #9a6700; font-weight: 600; }
  .lv.crit { color: #cf222e; font-weight: 600; } .lv.unknown { color: #6e7781; }
  #summary { font-size: 13px; margin: 0 0 8px; color: #57606a; }
  #catalog-error { color: #cf222e; font-size: 13px; }
  ul#incidents { margin: 0; padding-left: 18px; font-size: 13px; }
  li.incident.critical strong { color: #cf222e; } li.incident.warning strong { color: #9a6700; }
  li.none { color: #1a7f37; list-style: none; margin-left: -18px; }
  .legend { font-size: 12px; color: #57606a; display: flex; gap: 14px; margin-top: 4px; }
  .dot { display: inline-block; width: 9px; height: 9px; border-radius: 50%; margin-right: 4px; }
  .dot.ok { background: #1a7f37; } .dot.failed { background: #cf222e; } .dot.aborted { background: #bf8700; }
  .dot.killed { background: #8250df; } .dot.running { background: #0969da; }
`;

export function dashboardPage(data: DashboardData, nonce: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Strongbox backups</title>
<link rel="icon" href="data:,">
<style nonce="${nonce}">${STYLE}</style>
</head>
<body>
<header><h1>Strongbox</h1><span id="overall" class="badge unknown">…</span><span id="generated"></span></header>
<main>
<section>
  <h2>Status</h2>
  <p id="summary"></p><p id="catalog-error"></p>
  <table><thead><tr><th>Repository</th><th>Check</th><th>Level</th><th>Last run</th><th>Last success</th><th>Problems</th></tr></thead>
  <tbody id="checks-body"></tbody></table>
</section>
<section>
  <h2>Open alerts (<span id="incident-count">0</span>)</h2>
  <ul id="incidents"></ul>
</section>
<section class="wide">
  <h2>Timeline of runs</h2>
  <svg id="timeline" role="img" aria-label="timeline of runs"></svg>
  <div class="legend"><span><i class="dot ok"></i>ok</span><span><i class="dot failed"></i>failed</span><span><i class="dot aborted"></i>aborted</span><span><i class="dot killed"></i>killed</span><span><i class="dot running"></i>running</span><span>large dot: full backup</span></div>
</section>
<section>
  <h2>Backup duration</h2>
  <svg id="chart-duration" role="img" aria-label="backup duration over time"></svg>
</section>
<section>
  <h2>Stored size per backup</h2>
  <svg id="chart-size" role="img" aria-label="stored backup size over time"></svg>
</section>
<section>
  <h2>Time to restore (RTO) per restore-test</h2>
  <svg id="chart-rto" role="img" aria-label="time to restore measured by restore-tests over time"></svg>
</section>
<section>
  <h2>Point-in-time recovery</h2>
  <table><thead><tr><th>Repository</th><th>Recoverable window</th><th>Archive lag</th><th>Gaps</th><th>Last pass</th></tr></thead>
  <tbody id="pitr-body"></tbody></table>
</section>
<section class="wide">
  <h2>Verify and restore-test record</h2>
  <table><thead><tr><th>Started</th><th>Repository</th><th>Check</th><th>Result</th><th>Duration</th><th>RTO</th><th>Backup / error</th></tr></thead>
  <tbody id="record-body"></tbody></table>
</section>
</main>
<script type="application/json" id="dashboard-data">${scriptJson(data)}</script>
<script nonce="${nonce}">${CLIENT_SCRIPT}</script>
</body>
</html>
`;
}
