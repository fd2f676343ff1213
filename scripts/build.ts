// The build: src/ bundled by esbuild into a few ESM files in dist/ (type checking is tsc's job,
// `npm run typecheck`). One file per entry instead of ~150 modules plus the dependencies' saves
// Node's module resolution and loading at every start: `strongbox backup` reaches mariabackup
// about 90 ms sooner. Code splitting keeps each command a chunk loaded only when it runs.
//   node scripts/build.ts [--out <dir>]   (default: dist/ beside src/)
import { readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const at = process.argv.indexOf("--out");
const out = at > 0 && process.argv[at + 1] ? process.argv[at + 1]! : join(root, "dist");

rmSync(out, { recursive: true, force: true });
await build({
  absWorkingDir: root,
  // Worker threads are started from their own file, so each worker script is an entry too.
  entryPoints: ["src/cli/main.ts", "src/restore/unpack-worker.ts"],
  outbase: "src",
  outdir: out,
  // Every output file sits one directory below dist/, as in src/: a module that finds a file
  // relative to itself (bin/strongbox.js, the unpack worker) finds it from dist/ too.
  chunkNames: "chunks/[name]-[hash]",
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node24",
  sourcemap: true,
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: "warning",
  // Loaded from node_modules at run time: ssh2 has optional native addons, pino starts its
  // transports from files of its own, and the AWS SDK is large and only needed for S3.
  external: ["ssh2", "pino", "@aws-sdk/*"],
  // Bundled CommonJS dependencies (mysql2) call require() for Node's built-ins.
  banner: {
    js: 'import { createRequire as __strongboxRequire } from "node:module"; const require = __strongboxRequire(import.meta.url);',
  },
});

// Guard the layout the comment above relies on.
for (const e of readdirSync(out, { recursive: true, withFileTypes: true })) {
  if (!e.isFile() || !e.name.endsWith(".js")) continue;
  const rel = relative(out, join(e.parentPath, e.name));
  if (rel.split(sep).length !== 2) throw new Error(`build: ${rel} is not one directory below ${out}`);
}
writeFileSync(join(out, ".stamp"), "");
