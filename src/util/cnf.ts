// Reads one section of a MariaDB option file, following !include and !includedir, for what
// SHOW VARIABLES does not show (the [sst] section) and for a node's settings before it runs.
// Keys come back lower case with "_" as "-" (wsrep-provider-options), as the server reads them.
import { readdir, readFile } from "node:fs/promises";
import { dirname, isAbsolute, join, resolve } from "node:path";

/** The options of `section` (later files and lines win), or undefined when the file cannot be read. */
export async function readCnfSection(
  path: string,
  section: string,
): Promise<Map<string, string> | undefined> {
  const out = new Map<string, string>();
  const seen = new Set<string>();
  const want = section.toLowerCase();
  const readOne = async (file: string, depth: number): Promise<boolean> => {
    if (depth > 8 || seen.has(file)) return true;
    seen.add(file);
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch {
      return false;
    }
    let current = "";
    for (const raw of text.split("\n")) {
      const line = raw.trim();
      if (!line || line.startsWith("#") || line.startsWith(";")) continue;
      const inc = /^!include(dir)?\s+(.+)$/.exec(line);
      if (inc) {
        const target = isAbsolute(inc[2]!) ? inc[2]! : resolve(dirname(file), inc[2]!);
        if (inc[1]) {
          const names = await readdir(target).catch(() => [] as string[]);
          for (const n of names.filter((x) => x.endsWith(".cnf")).sort())
            await readOne(join(target, n), depth + 1);
        } else await readOne(target, depth + 1);
        continue;
      }
      const sec = /^\[([^\]]+)\]$/.exec(line);
      if (sec) {
        current = sec[1]!.trim().toLowerCase();
        continue;
      }
      if (current !== want) continue;
      const eq = line.indexOf("=");
      const key = (eq < 0 ? line : line.slice(0, eq)).trim().toLowerCase().replace(/_/g, "-");
      const value =
        eq < 0
          ? ""
          : line
              .slice(eq + 1)
              .trim()
              .replace(/^(["'])(.*)\1$/, "$2");
      out.set(key, value);
    }
    return true;
  };
  return (await readOne(path, 0)) ? out : undefined;
}

/** Whether an [sst] section turns on encryption of the state transfer. */
