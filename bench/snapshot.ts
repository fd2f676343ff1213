// The code under test, frozen for the whole run: a copy of the checkout's bin/ and src/, built to
// dist/ as an installed package runs it. Others may edit src/ while the benchmark runs; without the
// copy the launcher would switch between the build and the TypeScript sources half way through.
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface Snapshot {
  dir: string;
  /** The launcher of the copy (bin/strongbox). */
  strongbox: string;
  commit: string;
  /** Files under src/, native/ and bin/ that differ from the commit when the copy was taken. */
  modified: string[];
  /** Whether the build has the native part sealer (native/seal.c); without it Node seals parts. */
  nativeSealer: boolean;
  /** Whether it has the native payload opener (native/open.c); without it Node decrypts restores. */
  nativeOpener: boolean;
}

function git(cwd: string, args: string[]): string {
  try {
    return execFileSync("git", args, {
      cwd,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trimEnd();
  } catch {
    return "";
  }
}

export function takeSnapshot(from: string, into: string, root: string): Snapshot {
  rmSync(into, { recursive: true, force: true });
  mkdirSync(into, { recursive: true });
  for (const name of [
    "bin",
    "src",
    "native",
    "package.json",
    "tsconfig.json",
    "tsconfig.build.json",
    "scripts/build.ts",
  ]) {
    if (existsSync(join(from, name))) cpSync(join(from, name), join(into, name), { recursive: true });
  }
  // The copy's own build: the esbuild bundle (scripts/build.ts), or tsc for a checkout from before
  // it. Neither checks types, so others' work in progress still builds; only a missing build is fatal.
  const bundled = existsSync(join(into, "scripts/build.ts"));
  try {
    execFileSync(
      process.execPath,
      bundled
        ? [join(into, "scripts/build.ts")]
        : [join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"],
      {
        cwd: into,
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
  } catch {}
  if (!existsSync(join(into, "dist/cli/main.js")))
    throw new Error(`the build of ${from} failed (no dist/cli/main.js)`);
  writeFileSync(join(into, "dist/.stamp"), "");
  // The installed package has no sources: without them the launcher runs dist/ straight away,
  // instead of first walking src/ to see whether the build is stale (15-20 ms of every command).
  rmSync(join(into, "src"), { recursive: true, force: true });
  return {
    dir: into,
    strongbox: join(into, "bin", "strongbox"),
    commit: git(from, ["rev-parse", "--short", "HEAD"]),
    nativeSealer: existsSync(join(into, "native/build/strongbox-seal")),
    nativeOpener: existsSync(join(into, "native/build/strongbox-open")),
    modified: git(from, ["status", "--porcelain", "--", "src", "native", "bin"])
      .split("\n")
      .filter(Boolean)
      .map((l) => l.slice(3)),
  };
}
