// Reads strongbox.yaml, reports every problem with its path at once, resolves relative paths.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, isAbsolute, resolve } from "node:path";
import { parseDocument } from "yaml";
import type * as z from "zod";
import { ConfigError, StrongboxError } from "../errors.ts";
import { assertPrivateFile } from "../util/private-file.ts";
import { configSchema, type StrongboxConfig } from "./schema.ts";

export interface LoadedConfig {
  path: string;
  dir: string;
  config: StrongboxConfig;
  /** Resolves a path from the config relative to the config file's directory. */
  resolvePath(p: string): string;
}

/** Where a packaged installation keeps its configuration (the Debian package creates it). */
export const SYSTEM_CONFIG_PATH = "/etc/strongbox/strongbox.yaml";

/**
 * The config file: --config, else $STRONGBOX_CONFIG, else ./strongbox.yaml when there is one
 * (a sandbox, a checkout), else the system's /etc/strongbox/strongbox.yaml.
 */
export function defaultConfigPath(explicit?: string): string {
  if (explicit !== undefined) return explicit;
  if (process.env.STRONGBOX_CONFIG) return process.env.STRONGBOX_CONFIG;
  return existsSync("strongbox.yaml") ? "strongbox.yaml" : SYSTEM_CONFIG_PATH;
}

function formatPath(path: PropertyKey[]): string {
  let out = "";
  for (const p of path) out += typeof p === "number" ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out || "(top level)";
}

export function formatIssues(issues: z.core.$ZodIssue[]): string[] {
  return issues.map((i) => `${formatPath(i.path)}: ${i.message}`);
}

export function parseConfigText(text: string, source: string): StrongboxConfig {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      `${source} is not valid YAML`,
      doc.errors.map((e) => `line ${e.linePos?.[0]?.line ?? "?"}: ${e.message.split("\n")[0]}`),
    );
  }
  let value: unknown;
  try {
    // yaml refuses aliases that expand beyond a limit (a "billion laughs" document).
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new ConfigError(`${source} is not a usable YAML document`, [(e as Error).message.split("\n")[0]!], {
      hint: "the config uses YAML aliases (*name) that expand too far; write the values out",
      cause: e,
    });
  }
  const result = configSchema.safeParse(value);
  if (!result.success) {
    const problems = formatIssues(result.error.issues);
    throw new ConfigError(`${source} has ${problems.length} problem(s)`, problems);
  }
  return result.data;
}

export async function loadConfig(
  explicitPath?: string,
  options: { checkMode?: boolean } = {},
): Promise<LoadedConfig> {
  const path = resolve(defaultConfigPath(explicitPath));
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new StrongboxError(
      "CONFIG_NOT_FOUND",
      code === "ENOENT" ? `config file ${path} not found` : `config file ${path} cannot be read (${code})`,
      {
        hint: `pass --config FILE or set STRONGBOX_CONFIG (without them: ./strongbox.yaml, else ${SYSTEM_CONFIG_PATH})`,
        cause: e,
      },
    );
  }
  if (options.checkMode ?? true) assertPrivateFile(path, "config file", "CONFIG_TOO_OPEN");
  const config = parseConfigText(text, path);
  const dir = dirname(path);
  return { path, dir, config, resolvePath: (p) => (isAbsolute(p) ? p : resolve(dir, p)) };
}
