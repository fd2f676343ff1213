// The floors of src/ (docs/architecture.md): which folder may import which. A new import between
// folders that the table does not allow fails here, and so does any pair of folders importing each
// other. Change the table (and the document) only with a reason.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, it } from "node:test";

const SRC = new URL("../../src/", import.meta.url).pathname;

/** Folder -> the folders it may import ("." is src/ itself: errors.ts, error-codes.ts). */
const ALLOWED: Record<string, readonly string[]> = {
  ".": ["error-codes"],
  "error-codes": [],
  util: ["."],
  crypto: ["."],
  ssh: [".", "util"],
  storage: [".", "ssh", "util"],
  galera: [".", "util"],
  terminal: [".", "util"],
  mariadb: [".", "galera", "pipeline", "security", "util"],
  pipeline: [".", "crypto", "storage", "util"],
  security: [".", "galera"],
  monitor: [".", "util"],
  repository: [".", "crypto", "mariadb", "pipeline", "storage", "util"],
  protocol: [".", "crypto", "galera", "mariadb", "pipeline", "repository", "ssh", "storage", "util"],
  backup: [
    ".",
    "protocol",
    "crypto",
    "galera",
    "mariadb",
    "pipeline",
    "repository",
    "security",
    "storage",
    "util",
  ],
  restore: [".", "backup", "crypto", "galera", "mariadb", "pipeline", "protocol", "repository", "util"],
  binlog: [".", "crypto", "galera", "mariadb", "repository", "util"],
  keys: [".", "crypto", "pipeline", "repository", "util"],
  drill: [".", "binlog", "crypto", "galera", "mariadb", "protocol", "repository", "restore", "util"],
  agent: [
    ".",
    "crypto",
    "drill",
    "galera",
    "mariadb",
    "pipeline",
    "protocol",
    "repository",
    "restore",
    "storage",
    "util",
  ],
  daemon: ["util"],
  web: [".", "monitor", "util"],
  config: [".", "crypto", "daemon", "galera", "monitor", "storage", "util"],
  sandbox: [".", "config", "crypto", "galera", "util"],
  audit: [".", "config", "galera", "monitor", "security", "util"],
  commands: [
    ...[".", "agent", "audit", "backup", "binlog", "config", "crypto", "daemon", "drill", "galera", "keys"],
    ...["monitor", "repository", "restore", "sandbox", "security", "storage", "terminal", "util", "web"],
  ],
  cli: [".", "commands", "error-codes", "terminal"],
};

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

function folderOf(path: string): string {
  const rel = relative(SRC, path);
  return rel.includes("/") ? rel.split("/")[0]! : ".";
}

/** Every import between two folders, as "from -> to (file)". */
function crossings(): { from: string; to: string; file: string }[] {
  const out: { from: string; to: string; file: string }[] = [];
  for (const file of sources(SRC)) {
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/(?:from|import\(?)\s*"(\.[^"]+)"/g)) {
      const from = folderOf(file);
      const to = folderOf(resolve(dirname(file), m[1]!));
      if (from !== to) out.push({ from, to, file: relative(SRC, file) });
    }
  }
  return out;
}

describe("the floors of src/", () => {
  it("every folder is in the table", () => {
    const folders = readdirSync(SRC, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
    for (const f of folders) assert.ok(f in ALLOWED, `src/${f}/ is not in the table of test/layout`);
  });

  it("imports between folders follow the table", () => {
    const bad = crossings()
      .filter((c) => !(ALLOWED[c.from] ?? []).includes(c.to))
      .map((c) => `${c.file} imports ${c.to}/`);
    assert.deepEqual(bad, []);
  });

  it("no two folders import each other", () => {
    const edges = new Set(crossings().map((c) => `${c.from}->${c.to}`));
    const both = [...edges].filter((e) => {
      const [a, b] = e.split("->");
      return a! < b! && edges.has(`${b}->${a}`);
    });
    assert.deepEqual(both, []);
  });

  it("the table itself has no cycle", () => {
    const seen = new Map<string, "visiting" | "done">();
    const visit = (f: string, path: string[]): void => {
      if (seen.get(f) === "done") return;
      assert.notEqual(seen.get(f), "visiting", `cycle: ${[...path, f].join(" -> ")}`);
      seen.set(f, "visiting");
      for (const to of ALLOWED[f] ?? []) visit(to, [...path, f]);
      seen.set(f, "done");
    };
    for (const f of Object.keys(ALLOWED)) visit(f, []);
  });
});
