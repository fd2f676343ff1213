// Renders docs/configuration.md from the zod schema, so the reference cannot drift from the code.
import * as z from "zod";
import { configSchema } from "./schema.ts";

interface JsonSchema {
  type?: string | string[];
  description?: string;
  default?: unknown;
  enum?: unknown[];
  const?: unknown;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  minItems?: number;
  minimum?: number;
  maximum?: number;
  pattern?: string;
}

function typeOf(s: JsonSchema): string {
  if (s.const !== undefined) return `\`${JSON.stringify(s.const)}\``;
  if (s.enum) return s.enum.map((e) => `\`${String(e)}\``).join(" | ");
  const alts = s.anyOf ?? s.oneOf;
  if (alts) return alts.map(typeOf).join(" or ");
  if (s.type === "array") return `list of ${s.items ? typeOf(s.items) : "values"}`;
  if (s.type === "integer" && s.minimum !== undefined && s.maximum !== undefined) {
    return `integer ${s.minimum}–${s.maximum}`;
  }
  return Array.isArray(s.type) ? s.type.join(" or ") : (s.type ?? "value");
}

function rows(s: JsonSchema, path: string, required: boolean, out: string[][]): void {
  const alts = s.anyOf ?? s.oneOf;
  if (alts?.every((a) => a.type === "object")) {
    for (const alt of alts) {
      const tag = Object.entries(alt.properties ?? {}).find(([, p]) => p.const !== undefined);
      const label = tag ? `${path} (${tag[0]}: ${String(tag[1].const)})` : path;
      rows(alt, label, required, out);
    }
    return;
  }
  if (s.type === "object" && s.properties) {
    if (path) out.push([`\`${path}\``, "object", required ? "yes" : "no", "", s.description ?? ""]);
    for (const [key, child] of Object.entries(s.properties)) {
      rows(child, path ? `${path}.${key}` : key, s.required?.includes(key) ?? false, out);
    }
    return;
  }
  if (s.type === "array" && s.items?.type === "object") {
    out.push([`\`${path}\``, "list", required ? "yes" : "no", "", s.description ?? ""]);
    rows(s.items, `${path}[]`, true, out);
    return;
  }
  const def = s.default === undefined ? "" : `\`${JSON.stringify(s.default)}\``;
  out.push([
    `\`${path}\``,
    typeOf(s),
    required && s.default === undefined ? "yes" : "no",
    def,
    s.description ?? "",
  ]);
}

export function configJsonSchema(): JsonSchema {
  return z.toJSONSchema(configSchema, { io: "input", unrepresentable: "any" }) as JsonSchema;
}

export function renderConfigReference(): string {
  const out: string[][] = [];
  rows(configJsonSchema(), "", true, out);
  const esc = (c: string) => c.replace(/\|/g, "\\|").replace(/\n/g, " ");
  return [
    "# Configuration reference (`strongbox.yaml`)",
    "",
    "<!-- Generated from src/config/schema.ts by `npm run docs:config`; a test fails when it drifts. -->",
    "",
    "The file is YAML. Pass it with `--config FILE` or `STRONGBOX_CONFIG`; without them `./strongbox.yaml` when the current directory has one, else `/etc/strongbox/strongbox.yaml` (where the Debian package puts it).",
    "Relative paths are relative to the file's directory. The file must not be readable by group or others",
    "(mode 0600): it names credential files. Every problem is reported at once, each with its path.",
    "",
    "| key | type | required | default | description |",
    "|---|---|---|---|---|",
    ...out.map((r) =>
      (r[4] === undefined ? r : [r[0], esc(r[1]!), r[2], r[3], esc(r[4])])
        .join(" | ")
        .replace(/^/, "| ")
        .concat(" |"),
    ),
    "",
  ].join("\n");
}
