// The error registry: every code raised is declared (the type checker sees to that), every code
// declared is raised somewhere, and docs/errors.md is what the registry renders.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ExitCode } from "../../src/error-codes/spec.ts";
import { ERROR_GROUPS, ERRORS } from "../../src/error-codes.ts";
import { renderErrorReference } from "../../src/error-docs.ts";
import { StrongboxError, UsageError } from "../../src/errors.ts";

const SRC = new URL("../../src/", import.meta.url).pathname;
const REGISTRY = new URL("../../src/error-codes/", import.meta.url).pathname;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

describe("error registry", () => {
  it("every declared code is raised or reported somewhere in src/", () => {
    const text = sources(SRC)
      .filter(
        (f) => !f.startsWith(REGISTRY) && !f.endsWith("/error-codes.ts") && !f.endsWith("/error-docs.ts"),
      )
      .map((f) => readFileSync(f, "utf8"))
      .join("\n");
    const unused = Object.keys(ERRORS).filter((code) => !text.includes(`"${code}"`));
    assert.deepEqual(unused, [], `declared but never used: ${unused.join(", ")}`);
  });

  it("no code is declared in two groups", () => {
    const declared = ERROR_GROUPS.reduce((n, g) => n + Object.keys(g.codes).length, 0);
    assert.equal(declared, Object.keys(ERRORS).length);
  });

  it("each code has a one-line meaning and an exit status from ExitCode", () => {
    const statuses = new Set<number>(Object.values(ExitCode));
    for (const [code, e] of Object.entries(ERRORS)) {
      assert.match(code, /^[A-Z][A-Z0-9_]+$/, code);
      assert.ok(statuses.has(e.exit), `${code}: exit ${e.exit} is not an ExitCode`);
      assert.ok(e.meaning.length > 10 && !e.meaning.includes("\n"), `${code}: meaning`);
      assert.ok(!e.hint.includes("\n"), `${code}: hint is one line`);
    }
  });

  it("an error's exit status comes from its code", () => {
    assert.equal(new StrongboxError("PITR_TARGET", "x").exitCode, ExitCode.usage);
    assert.equal(new StrongboxError("PART_CORRUPT", "x").exitCode, ExitCode.failure);
    assert.equal(new StrongboxError("ABORTED", "x").exitCode, ExitCode.aborted);
    assert.equal(new UsageError("x").exitCode, ExitCode.usage);
  });

  it("docs/errors.md is generated from the registry (run npm run docs:errors)", () => {
    const onDisk = readFileSync(new URL("../../docs/errors.md", import.meta.url), "utf8");
    assert.equal(onDisk, renderErrorReference());
  });
});
