// npm run package: the Debian package, strongbox_<version>_<arch>.deb, that runs on a Debian 12
// host with no Node.js installed: the package carries its own Node 24 (the npm registry's `node`
// package, as scripts/bootstrap.sh fetches it), the build (dist/), the native part sealer, the
// production dependencies, systemd units, a man page, bash and zsh completion, and the example
// configuration that becomes /etc/strongbox/strongbox.yaml. See docs/install.md.
//   node scripts/package.ts [--out DIR] [--node FILE]     (default: DIR = package/, FILE from .tools)
import { execFileSync, spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  cpSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { renderBashCompletion, renderManPage, renderZshCompletion } from "./package/manual.ts";
import { renderUnits } from "./package/units.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const arg = (name: string) => {
  const at = process.argv.indexOf(name);
  return at > 0 ? process.argv[at + 1] : undefined;
};
const outDir = arg("--out") ?? join(root, "package");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  version: string;
  description: string;
};

function say(m: string) {
  process.stderr.write(`package: ${m}\n`);
}
function sh(cmd: string, args: string[], cwd = root): string {
  return execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
}

/** The Node 24 binary to ship: the npm registry's `node` package in .tools/ (bootstrap.sh). */
function nodeBinary(): string {
  const given = arg("--node");
  const candidate = given ?? join(root, ".tools/node_modules/node/bin/node");
  const real = realpathSync(candidate);
  const major = Number(sh(real, ["-p", "process.versions.node.split('.')[0]"]).trim());
  if (major < 24)
    throw new Error(`${candidate} is Node ${major}; the package needs 24 (run scripts/bootstrap.sh)`);
  return real;
}

const arch = sh("dpkg", ["--print-architecture"]).trim();
const stage = join(outDir, "stage");
const lib = join(stage, "usr/lib/strongbox");
rmSync(stage, { recursive: true, force: true });
mkdirSync(lib, { recursive: true });

say("building dist/, the part sealer and the payload opener");
sh(process.execPath, [join(root, "scripts/build.ts"), "--out", join(lib, "dist")]);
mkdirSync(join(lib, "native/build"), { recursive: true });
for (const name of ["strongbox-seal", "strongbox-open"]) {
  try {
    copyFileSync(join(root, "native/build", name), join(lib, "native/build", name));
    chmodSync(join(lib, "native/build", name), 0o755);
  } catch {
    throw new Error(`native/build/${name} was not built: apt-get install -y gcc libssl-dev, then again`);
  }
}

say("the launcher, the runtime and the production dependencies");
mkdirSync(join(lib, "bin"));
for (const f of ["strongbox.js", "main.js"]) copyFileSync(join(root, "bin", f), join(lib, "bin", f));
writeFileSync(
  join(lib, "package.json"),
  `${JSON.stringify({ name: "strongbox", version: pkg.version, type: "module", private: true }, null, 2)}\n`,
);
copyFileSync(nodeBinary(), join(lib, "node"));
chmodSync(join(lib, "node"), 0o755);
// What `npm ls --omit=dev` lists is the production closure; copy each top-level package once.
const prod = sh("npm", ["ls", "--omit=dev", "--all", "--parseable"])
  .split("\n")
  .map((p) => relative(root, p.trim()))
  .filter((p) => p.startsWith("node_modules/") && !p.slice("node_modules/".length).includes("node_modules/"));
for (const p of new Set(prod)) cpSync(join(root, p), join(lib, p), { recursive: true, dereference: true });

say("the command, units, man page, completion, example configuration, documentation");
mkdirSync(join(stage, "usr/bin"), { recursive: true });
copyFileSync(join(root, "packaging/strongbox.sh"), join(stage, "usr/bin/strongbox"));
chmodSync(join(stage, "usr/bin/strongbox"), 0o755);
const unitDir = join(stage, "lib/systemd/system");
mkdirSync(unitDir, { recursive: true });
for (const [name, text] of Object.entries(renderUnits()))
  writeFileSync(join(unitDir, name), text, { mode: 0o644 });

const { buildProgram } = await import("../src/cli/main.ts");
const { newSession } = await import("../src/cli/args.ts");
const { MemoryOutput } = await import("../src/terminal/output.ts");
const program = buildProgram(newSession(new MemoryOutput(false)));
const date = new Date().toISOString().slice(0, 10);
mkdirSync(join(stage, "usr/share/man/man1"), { recursive: true });
writeFileSync(
  join(stage, "usr/share/man/man1/strongbox.1.gz"),
  gzipSync(renderManPage(program, pkg.version, date), { level: 9 }),
);
mkdirSync(join(stage, "usr/share/bash-completion/completions"), { recursive: true });
writeFileSync(join(stage, "usr/share/bash-completion/completions/strongbox"), renderBashCompletion(program));
mkdirSync(join(stage, "usr/share/zsh/vendor-completions"), { recursive: true });
writeFileSync(join(stage, "usr/share/zsh/vendor-completions/_strongbox"), renderZshCompletion(program));
mkdirSync(join(stage, "usr/share/strongbox"), { recursive: true });
copyFileSync(join(root, "packaging/strongbox.yaml"), join(stage, "usr/share/strongbox/strongbox.yaml"));
const doc = join(stage, "usr/share/doc/strongbox");
cpSync(join(root, "docs"), doc, { recursive: true });
copyFileSync(join(root, "README.md"), join(doc, "README.md"));
writeFileSync(
  join(doc, "copyright"),
  "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: strongbox\n\nFiles: *\nLicense: MIT\n\nFiles: usr/lib/strongbox/node\nLicense: MIT (Node.js, https://nodejs.org/en/about/)\n\nFiles: usr/lib/strongbox/node_modules/*\nLicense: see each package's own license file\n",
);

say("control files");
const debian = join(stage, "DEBIAN");
mkdirSync(debian);
for (const script of ["postinst", "prerm", "postrm"]) {
  copyFileSync(join(root, "packaging/debian", script), join(debian, script));
  chmodSync(join(debian, script), 0o755);
}
const installedKb = Number(sh("du", ["-sk", "--exclude=DEBIAN", stage]).split("\t")[0]);
writeFileSync(
  join(debian, "control"),
  [
    "Package: strongbox",
    `Version: ${pkg.version}`,
    `Architecture: ${arch}`,
    "Maintainer: Strongbox developers <strongbox@localhost>",
    `Installed-Size: ${installedKb}`,
    // The runtime's and the sealer's libraries, zstd for every stream, useradd for the account.
    "Depends: libc6 (>= 2.28), libstdc++6, libgcc-s1, libssl3, zstd, passwd",
    // openssh-client: SFTP repositories upload large parts through `ssh` (ssh2 without it).
    "Recommends: mariadb-backup, mariadb-client, age, openssh-client",
    "Suggests: mariadb-server, galera-4",
    "Section: admin",
    "Priority: optional",
    `Description: ${pkg.description.toLowerCase()}`,
    " Strongbox backs up MariaDB Galera clusters with mariabackup: encrypted (age) and signed,",
    " streamed to local, SFTP or S3 repositories, copied offsite, verified and restore-tested on a",
    " schedule, with alerts and a dashboard. Ships its own Node.js runtime.",
    "",
  ].join("\n"),
);

mkdirSync(outDir, { recursive: true });
const deb = join(outDir, `strongbox_${pkg.version}_${arch}.deb`);
say(`dpkg-deb → ${relative(process.cwd(), deb)}`);
// zstd -3: the runtime is most of the size; xz would take a minute for a few MB less.
const built = spawnSync("dpkg-deb", ["--root-owner-group", "-Zzstd", "-z3", "--build", stage, deb], {
  stdio: ["ignore", "ignore", "inherit"],
});
if (built.status !== 0) throw new Error(`dpkg-deb failed (exit ${built.status})`);
rmSync(stage, { recursive: true, force: true });
process.stdout.write(`${deb}\n`);
