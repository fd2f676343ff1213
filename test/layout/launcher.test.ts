// bin/strongbox.js, the launcher, must be readable by every Node: an old one has to print the
// version strongbox needs, not a SyntaxError. Checked three ways: esbuild refuses anything beyond
// ES5 in it; it runs as a classic script (how very old Nodes read every file) under a process
// that says it is Node 20; and a real child Node 24 starts the program through it.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import vm from "node:vm";
import { transformSync } from "esbuild";

const run = promisify(execFile);
const LAUNCHER = new URL("../../bin/strongbox.js", import.meta.url).pathname;
const source = readFileSync(LAUNCHER, "utf8");
const body = source.replace(/^#!.*\n/, "");

describe("the launcher", () => {
  it("is ES5 without import or export", () => {
    assert.doesNotThrow(() => transformSync(body, { loader: "js", target: "es5", format: "iife" }));
    assert.doesNotMatch(body, /^\s*(import|export)\b/m);
    assert.throws(
      () => transformSync("const x = () => 1;", { loader: "js", target: "es5" }),
      /not supported/,
    );
  });

  it("on an older Node it prints the version it needs and exits 1, before loading anything", () => {
    let stderr = "";
    let exitCode: number | undefined;
    const fake = {
      versions: { node: "20.20.2" },
      version: "v20.20.2",
      stderr: { write: (t: string) => (stderr += t) },
      exit: (code: number) => {
        exitCode = code;
      },
      getBuiltinModule: () => {
        throw new Error("an old Node has no getBuiltinModule: must not be reached");
      },
    };
    new vm.Script(body, { filename: "strongbox.js" }).runInNewContext({ process: fake });
    assert.equal(exitCode, 1);
    assert.equal(
      stderr,
      "strongbox: needs Node.js 24 or newer (this is v20.20.2); the Debian package brings its own (docs/install.md)\n",
    );
  });

  it("on Node 24 it starts the program", async () => {
    const r = await run(process.execPath, [LAUNCHER, "--version"]);
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
      version: string;
    };
    assert.equal(r.stdout.trim(), pkg.version);
  });
});
