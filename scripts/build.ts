// The build: src/ bundled by esbuild into a few ESM files in dist/ (type checking is tsc's job,
// `npm run typecheck`). One file per entry instead of ~150 modules plus the dependencies' saves
// Node's module resolution and loading at every start: `strongbox backup` reaches mariabackup
// about 90 ms sooner. Code splitting keeps each command a chunk loaded only when it runs.
//   node scripts/build.ts [--out <dir>]   (default: dist/ beside src/)
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
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

// The native helpers, with the system's C compiler and OpenSSL: the part sealer (native/seal.c,
// see src/pipeline/seal.ts) and the payload opener (native/open.c, src/pipeline/open.ts). Without
// them strongbox still works: it seals and decrypts in Node, at about 2x and 6x the CPU.
const native = join(root, "native");
mkdirSync(join(native, "build"), { recursive: true });
for (const [name, source, what] of [
  [
    "strongbox-seal",
    "seal.c",
    "the native part sealer was not built; backups seal their parts in Node instead (about 2x the CPU)",
  ],
  [
    "strongbox-open",
    "open.c",
    "the native payload opener was not built; restores decrypt in Node instead (about 6x the CPU)",
  ],
] as const) {
  const binary = join(native, "build", name);
  const cc = spawnSync(
    process.env.CC || "cc",
    ["-O2", "-Wall", "-Wextra", "-Werror", "-o", `${binary}.tmp`, join(native, source), "-lcrypto"],
    { encoding: "utf8" },
  );
  if (cc.status === 0) renameSync(`${binary}.tmp`, binary);
  else {
    rmSync(`${binary}.tmp`, { force: true });
    rmSync(binary, { force: true });
    const why = cc.error ? `no C compiler (${cc.error.message})` : (cc.stderr.trim().split("\n")[0] ?? "");
    process.stderr.write(`build: ${what}: ${why}\nbuild: to build it: apt-get install -y gcc libssl-dev\n`);
  }
}
writeFileSync(join(out, ".stamp"), "");
