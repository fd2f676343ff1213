// The program, loaded by the launcher bin/strongbox.js once it has checked the Node version.
// Runs the build (dist/) when it is up to date with the sources, else the TypeScript sources
// directly (Node 24 strips types; fine for development, but the stripper costs memory).
import { existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { enableCompileCache } from "node:module";
import { homedir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

// V8's compiled code of our modules and dependencies, kept between runs: every command starts
// about 30 ms sooner (of ~200 ms). In the user's own cache directory (0700), never a shared /tmp.
try {
  const cache = join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "strongbox", "v8");
  mkdirSync(cache, { recursive: true, mode: 0o700 });
  enableCompileCache(cache);
} catch {
  // No writable cache directory: start without it.
}
const root = fileURLToPath(new URL("..", import.meta.url));
const source = join(root, "src/cli/main.ts");
const built = join(root, "dist/cli/main.js");
const stamp = join(root, "dist/.stamp");

function newestSource(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestSource(p) : statSync(p).mtimeMs);
  }
  return newest;
}

const hasSource = existsSync(source) && !source.includes("/node_modules/");
const buildFresh =
  existsSync(built) &&
  (!hasSource || (existsSync(stamp) && statSync(stamp).mtimeMs >= newestSource(join(root, "src"))));
const { main } = await import(buildFresh ? built : source);
process.exitCode = await main(process.argv.slice(2));
