// The documentation names only commands and flags the CLI has. The command tree comes from the
// commander program itself (buildProgram), so commands and flags added later are known here as
// soon as they are registered; the docs are README.md and docs/*.md, code blocks and inline code.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { Command } from "commander";
import { newSession } from "../../src/cli/args.ts";
import { buildProgram } from "../../src/cli/main.ts";
import { ERRORS } from "../../src/error-codes.ts";
import { MemoryOutput } from "../../src/terminal/output.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** Flags a command accepts: its own, its ancestors' (global options), and the help flags. */
function flagsOf(cmd: Command): Set<string> {
  const flags = new Set(["--help", "-h"]);
  for (let c: Command | null = cmd; c; c = c.parent) {
    for (const o of c.options) {
      if (o.long) flags.add(o.long);
      if (o.short) flags.add(o.short);
    }
  }
  return flags;
}

/** Whether a flag takes the next word as its value (so that word is not a command). */
function takesValue(cmd: Command, flag: string): boolean {
  for (let c: Command | null = cmd; c; c = c.parent) {
    const o = c.options.find((x) => x.long === flag || x.short === flag);
    if (o) return o.required || o.optional;
  }
  return false;
}

const findSub = (cmd: Command, name: string) =>
  cmd.commands.find((c) => c.name() === name || c.aliases().includes(name));

/** Where a command line ends in shell text: a pipe, a separator, a comment, a closing bracket. */
const END = /^(\||;|&&|\|\||#.*|\)|`)$/;
/** Words that stand for something the reader fills in: <id>, ID, DIR, …, $VAR. */
const PLACEHOLDER = /^(<.*>|\[?[A-Z][A-Z0-9_]*\]?|…|\.\.\.|\$.*|\{.*\})$/;

/**
 * Checks one mention: `words` follow "strongbox" (or, in inline code, start with a top-level
 * command). Returns what does not exist, e.g. "unknown command 'check'".
 */
function check(program: Command, words: string[]): string[] {
  const problems: string[] = [];
  let cmd = program;
  let pathDone = false;
  for (let i = 0; i < words.length; i++) {
    const raw = words[i]!;
    if (END.test(raw)) break;
    // "run strongbox verify; then …": the command ends with the clause.
    const last = /[;,]$/.test(raw);
    // `[--full|--incremental]`, `--repo=R`, `(--json)`: the flags inside.
    const parts = raw
      .replace(/^[[(]+|[\]),.:;]+$/g, "")
      .split("|")
      .filter(Boolean);
    if (parts.length === 0) continue;
    if (parts[0]!.startsWith("-")) {
      for (const p of parts) {
        const flag = p.replace(/=.*$/, "").replace(/[\]),.:]+$/, "");
        if (!/^--?[a-zA-Z][\w-]*$/.test(flag)) continue;
        if (!flagsOf(cmd).has(flag)) problems.push(`'${cmd.name()}' has no option ${flag}`);
      }
      if (last) break;
      if (parts.length === 1 && !raw.includes("=") && takesValue(cmd, parts[0]!)) i++;
      continue;
    }
    if (pathDone || cmd.commands.length === 0) {
      pathDone = true;
      continue;
    }
    const word = parts[0]!;
    if (PLACEHOLDER.test(word) || word === "help") {
      pathDone = true;
      continue;
    }
    // sandbox up/down/status: several subcommands at once.
    const names = word.split("/");
    const missing = names.filter((n) => !findSub(cmd, n));
    if (missing.length > 0) {
      problems.push(
        `unknown command '${[...pathOf(cmd), missing[0]].join(" ")}'${cmd === program ? "" : ` (${pathOf(cmd).join(" ")} has: ${cmd.commands.map((c) => c.name()).join(", ")})`}`,
      );
      break;
    }
    if (names.length > 1 || last) break;
    cmd = findSub(cmd, word)!;
  }
  return problems;
}

function pathOf(cmd: Command): string[] {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names;
}

interface Mention {
  file: string;
  line: number;
  text: string;
  words: string[];
}

/** Shell words, quotes removed (good enough for command lines in docs). */
function words(text: string): string[] {
  // Quotes go; so do the backticks of inline code quoted inside a code block.
  return (text.match(/"[^"]*"|'[^']*'|\S+/g) ?? []).map((w) =>
    w.replace(/^["'`]+/, "").replace(/["'`]+([,.;:)]*)$/, "$1"),
  );
}

/**
 * Where a word starts a command: the start of the line or span, after a shell separator, an `=`
 * (ExecStart=), a quote (command="…"), `sudo [-u USER]`, `exec`, `env`, or VAR=value. Not in prose
 * such as an alert's text ("CRITICAL strongbox on backup1").
 */
const COMMAND_POSITION =
  /(^|[|;&=("'`]|\$\(|^\s*[$#]|\bsudo(\s+-u\s+\S+|\s+-[a-tv-zA-Z]\w*)*|\bexec|\bnohup|\benv|\b[A-Z_]+=\S*)\s*$/;
/** "strongbox", "bin/strongbox", "/usr/bin/strongbox", followed by a word. */
const INVOCATION = /(?:(?:[\w.-]*\/)*bin\/)?strongbox[ \t]+(?=\S)/g;
/** Sections about what is still to come name commands that do not exist yet, on purpose. */
const PLANS = /^#+\s.*(not there yet|still to come|planned|roadmap)/i;

/** Every place a doc names a strongbox command: in code blocks and in inline code. */
function mentions(program: Command, file: string, text: string): Mention[] {
  const found: Mention[] = [];
  const topLevel = new Set(program.commands.map((c) => c.name()));
  const lines = text.split("\n");
  let inBlock = false;
  let inPlans = false;
  lines.forEach((line, index) => {
    if (/^\s*```/.test(line)) {
      inBlock = !inBlock;
      return;
    }
    if (!inBlock && /^#+\s/.test(line)) inPlans = PLANS.test(line);
    if (inPlans) return;
    const spans = inBlock ? [line] : [...line.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    for (const span of spans) {
      for (const m of span.matchAll(INVOCATION)) {
        if (!COMMAND_POSITION.test(span.slice(0, m.index))) continue;
        const w = words(span.slice(m.index + m[0].length));
        // "sudo -u strongbox strongbox backup": the account, then the command (the next match).
        if (w[0] === "strongbox" || !/^(-|[a-z])/.test(w[0] ?? "")) continue;
        found.push({ file, line: index + 1, text: span.trim(), words: w });
      }
      // Inline code that starts with a command and goes on with a subcommand or a flag:
      // `sandbox up --tls`, `backup --full`, `binlog archive`.
      if (!inBlock) {
        const w = words(span);
        if (
          w.length >= 2 &&
          topLevel.has(w[0]!) &&
          (w[1]!.startsWith("--") || /^[a-z][a-z-]+$/.test(w[1]!))
        ) {
          const cmd = findSub(program, w[0]!)!;
          if (w[1]!.startsWith("--") || cmd.commands.length > 0) {
            found.push({ file, line: index + 1, text: span.trim(), words: w });
          }
        }
      }
    }
  });
  return found;
}

function docs(): { file: string; text: string }[] {
  const files = [
    "README.md",
    ...readdirSync(join(ROOT, "docs"))
      .filter((f) => f.endsWith(".md"))
      .map((f) => `docs/${f}`),
  ];
  return files.map((file) => ({ file, text: readFileSync(join(ROOT, file), "utf8") }));
}

describe("docs against the CLI", () => {
  const program = buildProgram(newSession(new MemoryOutput()));

  it("the checker knows a wrong command and a wrong flag when it sees one", () => {
    const found = mentions(
      program,
      "x.md",
      [
        "Run `strongbox frobnicate` then `sandbox up --frob 3`, `strongbox --config x.yaml backup --ful`.",
        "```sh",
        "sudo -u strongbox strongbox key frob",
        "sudo -u strongbox mariadb -e 'SELECT 1'",
        "bin/strongbox restore ID --target-dir /d --to-time T | tee log   # --nothing here",
        "CRITICAL strongbox on backup1: backup failed; install -o strongbox -g strongbox /var/lib/strongbox --x",
        "ExecStart=/usr/bin/strongbox daemon --nosuch",
        "```",
        "## Not there yet",
        "`restore --onto NODE` is still to come.",
      ].join("\n"),
    );
    assert.deepEqual(
      found.map((m) => check(program, m.words)),
      [
        ["unknown command 'frobnicate'"],
        ["'up' has no option --frob"],
        ["'backup' has no option --ful"],
        [
          `unknown command 'key frob' (key has: ${findSub(program, "key")!
            .commands.map((c) => c.name())
            .join(", ")})`,
        ],
        [],
        ["'daemon' has no option --nosuch"],
      ],
    );
  });

  it("every `strongbox <command> [--flag]` in README.md and docs/ exists", () => {
    const problems: string[] = [];
    let checked = 0;
    for (const { file, text } of docs()) {
      for (const m of mentions(program, file, text)) {
        checked++;
        for (const p of check(program, m.words)) problems.push(`${m.file}:${m.line}: ${p}: ${m.text}`);
      }
    }
    assert.ok(checked > 50, `only ${checked} mentions found: is the parser still right?`);
    assert.deepEqual(problems, []);
  });

  it("every command an error's meaning or hint tells the operator to run exists (docs/errors.md)", () => {
    const problems: string[] = [];
    for (const [code, spec] of Object.entries(ERRORS)) {
      for (const text of [spec.meaning, spec.hint]) {
        for (const m of text.matchAll(INVOCATION)) {
          const w = words(text.slice(m.index + m[0].length));
          // Prose ("run strongbox on the node", "a program strongbox runs") is not a command line:
          // only a mention that starts with a command is checked, down to its subcommands and flags.
          if (!findSub(program, w[0] ?? "")) continue;
          for (const p of check(program, w)) problems.push(`${code}: ${p}: ${text}`);
        }
      }
    }
    assert.deepEqual(problems, []);
  });
});
