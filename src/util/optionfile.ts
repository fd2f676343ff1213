// MariaDB option files for child processes: the only way credentials reach mariabackup and
// mariadb-dump (never argv). Written 0600 inside a private 0700 directory, removed afterwards.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export type OptionSections = Record<string, Record<string, string | number | boolean | undefined>>;

function quote(value: string): string {
  return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

export function renderOptionFile(sections: OptionSections, includes: string[] = []): string {
  const lines = includes.map((f) => `!include ${f}`);
  for (const [name, options] of Object.entries(sections)) {
    lines.push(`[${name}]`);
    for (const [k, v] of Object.entries(options)) {
      if (v === undefined || v === false) continue;
      lines.push(v === true ? k : `${k}=${typeof v === "number" ? String(v) : quote(v)}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

export interface PrivateDir {
  path: string;
  remove(): Promise<void>;
}

export async function privateTempDir(prefix = "strongbox-", parent = tmpdir()): Promise<PrivateDir> {
  // mkdtemp creates the directory with mode 0700.
  const path = await mkdtemp(join(parent, prefix));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

export async function writeOptionFile(
  dir: string,
  name: string,
  sections: OptionSections,
  includes: string[] = [],
) {
  const path = join(dir, name);
  await writeFile(path, renderOptionFile(sections, includes), { mode: 0o600, flag: "wx" });
  return path;
}
