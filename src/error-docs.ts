// docs/errors.md, generated from the error registry (npm run docs:errors); a test fails when the
// file on disk differs, so the reference cannot drift from the code.

import { type ErrorSpec, ExitCode } from "./error-codes/spec.ts";
import { ERROR_GROUPS, ERRORS } from "./error-codes.ts";

const EXIT_MEANINGS: Record<number, string> = {
  [ExitCode.ok]: "success (status: everything OK)",
  [ExitCode.warning]: "status: a warning is open (an old backup, an untested one…)",
  [ExitCode.failure]: "the command failed; the one-line error says why",
  3: "status: UNKNOWN, the run catalog cannot be read",
  [ExitCode.usage]: "the command line is wrong (EX_USAGE)",
  [ExitCode.internal]: "a bug in strongbox (EX_SOFTWARE); please report it with --verbose output",
  [ExitCode.config]: "the configuration file is wrong (EX_CONFIG)",
  [ExitCode.aborted]: "interrupted by SIGINT or SIGTERM; nothing half-done was committed",
};

function cell(text: string): string {
  return text.replace(/\|/g, "\\|");
}

export function renderErrorReference(): string {
  const lines = [
    "# Error reference",
    "",
    "<!-- Generated from src/error-codes/ by `npm run docs:errors`; do not edit by hand. -->",
    "",
    "Every error strongbox reports is one line on stderr, `strongbox: error: MESSAGE (HINT)`; with",
    '`--json` it is also `{"error": {"code", "message", "stage", "details"}}` on stdout. The code is',
    "stable: scripts and alert rules may match on it. The hint in the message is specific to the",
    "case (the file, the node, the command to run); the one below is the general remedy.",
    "",
    "## Exit statuses",
    "",
    "| Status | Meaning |",
    "|---|---|",
    ...Object.entries(EXIT_MEANINGS)
      .sort(([a], [b]) => Number(a) - Number(b))
      .map(([code, meaning]) => `| ${code} | ${meaning} |`),
    "",
    `## Codes (${Object.keys(ERRORS).length})`,
  ];
  for (const group of ERROR_GROUPS) {
    const rows = (Object.entries(group.codes) as [string, ErrorSpec][]).sort(([a], [b]) => (a < b ? -1 : 1));
    lines.push("", `### ${group.title}`, "", "| Code | Exit | Meaning | Usual fix |", "|---|---|---|---|");
    for (const [code, e] of rows)
      lines.push(`| \`${code}\` | ${e.exit} | ${cell(e.meaning)} | ${cell(e.hint)} |`);
  }
  lines.push("");
  return lines.join("\n");
}
