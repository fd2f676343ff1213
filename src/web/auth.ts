// Who may read the dashboard: anyone on a loopback bind without a token; otherwise whoever presents
// the token, as `Authorization: Bearer <token>` (scripts, Prometheus) or as the password of basic
// auth (browsers, which then send it with every same-origin request). Both sides are hashed first
// so the comparison takes the same time whatever the length or content of the guess.
import { createHash, timingSafeEqual } from "node:crypto";
import { readFile } from "node:fs/promises";
import { StrongboxError } from "../errors.ts";
import { assertPrivateFile } from "../util/private-file.ts";

function digest(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}

export function tokenMatches(presented: string, token: string): boolean {
  return timingSafeEqual(digest(presented), digest(token));
}

/** The secret presented in an Authorization header (bearer token or basic-auth password), if any. */
export function presentedSecret(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^(Bearer|Basic)\s+(\S+)\s*$/i.exec(header);
  if (!m) return undefined;
  const [, scheme, value] = m;
  if (scheme!.toLowerCase() === "bearer") return value;
  const decoded = Buffer.from(value!, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  return colon < 0 ? undefined : decoded.slice(colon + 1);
}

export function authorized(header: string | undefined, token: string | undefined): boolean {
  if (token === undefined) return true;
  const secret = presentedSecret(header);
  // Still compare on a missing secret, so a request without one takes as long as a wrong one.
  return tokenMatches(secret ?? "", token) && secret !== undefined;
}

/** Reads the token file: private (0600), one non-empty line of at least 16 characters. */
export async function readToken(path: string): Promise<string> {
  assertPrivateFile(path, "dashboard token file");
  const token = (await readFile(path, "utf8")).trim();
  if (token.length < 16 || /\s/.test(token)) {
    throw new StrongboxError(
      "BAD_TOKEN_FILE",
      `dashboard token file ${path} must hold one token of at least 16 characters without spaces`,
      { hint: `openssl rand -hex 24 > ${path} && chmod 600 ${path}` },
    );
  }
  return token;
}
