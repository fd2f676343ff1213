#!/usr/bin/env node
// Entry point. In a checkout it runs the TypeScript sources (Node 24 strips types); an installed
// package (npm install -g, which ships dist/ and not src/) runs the build.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const major = Number(process.versions.node.split(".")[0]);
if (major < 24) {
  process.stderr.write(`strongbox: needs Node.js 24 or newer (this is ${process.version})\n`);
  process.exit(1);
}
const source = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));
const built = fileURLToPath(new URL("../dist/cli/main.js", import.meta.url));
const entry = existsSync(source) && !source.includes("/node_modules/") ? source : built;
const { main } = await import(entry);
process.exitCode = await main(process.argv.slice(2));
