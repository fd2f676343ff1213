// Reads S3 credentials from a private file, so they never appear in the config, argv or the
// environment of child processes. Format: `key = value` lines; an AWS shared credentials file with a
// single profile works as it is.
//
//   access_key_id = AKIA…
//   secret_access_key = …
//   session_token = …        (optional)
import { readFile } from "node:fs/promises";
import { assertPrivateFile } from "../util/private-file.ts";
import { RemoteStorageErrorCode, storageError } from "./errors.ts";

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

const NAMES: Record<string, keyof S3Credentials> = {
  access_key_id: "accessKeyId",
  aws_access_key_id: "accessKeyId",
  secret_access_key: "secretAccessKey",
  aws_secret_access_key: "secretAccessKey",
  session_token: "sessionToken",
  aws_session_token: "sessionToken",
};

export function parseS3Credentials(text: string, source: string): S3Credentials {
  const found: Partial<S3Credentials> = {};
  const problem = (why: string) =>
    storageError(RemoteStorageErrorCode.config, `S3 credentials file ${source}: ${why}`, {
      hint: "write two lines: access_key_id = … and secret_access_key = … (mode 0600)",
    });
  for (const [index, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";") || /^\[[^\]]*\]$/.test(line)) continue;
    const match = /^([A-Za-z_]+)\s*[=:]\s*(.*)$/.exec(line);
    if (!match) throw problem(`line ${index + 1} is not "name = value"`);
    const field = NAMES[match[1]!.toLowerCase()];
    if (!field) continue; // region, output…: not ours
    if (found[field] !== undefined) throw problem(`${match[1]} appears twice (one profile per file)`);
    found[field] = match[2]!.trim();
  }
  if (!found.accessKeyId) throw problem("no access_key_id");
  if (!found.secretAccessKey) throw problem("no secret_access_key");
  return {
    accessKeyId: found.accessKeyId,
    secretAccessKey: found.secretAccessKey,
    ...(found.sessionToken ? { sessionToken: found.sessionToken } : {}),
  };
}

/** Reads and parses a credentials file; refuses one that group or others can read. */
export async function readS3Credentials(path: string): Promise<S3Credentials> {
  assertPrivateFile(path, "S3 credentials file");
  return parseS3Credentials(await readFile(path, "utf8"), path);
}
