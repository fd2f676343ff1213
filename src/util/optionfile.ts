// MariaDB option files for child processes: the only way credentials reach mariabackup,
// mariadb-dump, mariadb-binlog and the mariadb client (never argv).
//
// The file holding a password never has a name: it is created unnamed (O_TMPFILE, mode 0600),
// written, and handed to the child as its file descriptor 3, which the child opens as
// /dev/fd/3 (as often as it likes: each open reads the same inode from the start). When the last
// descriptor closes, the kernel frees it; a kill -9 of strongbox or of the child at any moment
// leaves nothing on disk. Where the file system cannot make unnamed files, a named one is made in
// a private directory and unlinked at once, before the child starts (docs/monitoring.md).
import { closeSync, constants, mkdtempSync, openSync, rmSync, unlinkSync, writeSync } from "node:fs";
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

/** The descriptor number a child gets its option file on, and the path it opens it by. */
export const OPTION_FD = 3;
export const OPTION_FILE = `/dev/fd/${OPTION_FD}`;

// Linux's __O_TMPFILE; O_TMPFILE is it together with O_DIRECTORY.
const O_TMPFILE_BIT = 0o20000000;

function unnamedFile(dir: string): number {
  try {
    return openSync(dir, constants.O_RDWR | constants.O_DIRECTORY | O_TMPFILE_BIT, 0o600);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== "EOPNOTSUPP" && code !== "EISDIR" && code !== "EINVAL" && code !== "ENOENT") throw e;
  }
  // No O_TMPFILE here: a named file in a private directory, unlinked before anything runs.
  const priv = mkdtempSync(join(dir, "strongbox-opt-"));
  const path = join(priv, "o.cnf");
  try {
    const fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o600);
    unlinkSync(path);
    return fd;
  } finally {
    rmSync(priv, { recursive: true, force: true });
  }
}

/**
 * An unnamed 0600 option file holding `sections`, as an open descriptor: give it to the child as
 * stdio[OPTION_FD] and point it at OPTION_FILE; close it once the child has started.
 */
export function optionFileFd(sections: OptionSections, includes: string[] = [], dir = tmpdir()): number {
  const fd = unnamedFile(dir);
  try {
    const text = Buffer.from(renderOptionFile(sections, includes));
    let off = 0;
    while (off < text.length) off += writeSync(fd, text, off, text.length - off, off);
    return fd;
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** Closes the parent's copy of an option file descriptor (the child keeps its own). */
export function closeOptionFd(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
