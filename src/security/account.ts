// Creating the least-privilege backup account through an admin connection. Idempotent: an account
// that exists keeps its password; missing grants are added, extra ones reported (never revoked).
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { StrongboxError } from "../errors.ts";
import type { Connection } from "../galera/connection.ts";
import {
  accountName,
  type BackupMethod,
  compareGrants,
  type ExtraPrivilege,
  nativePasswordHash,
  parseGrants,
  requiredPrivileges,
  showGrantsFor,
} from "./grants.ts";

/** A random password: 24 random bytes, base64url (32 characters, 192 bits). */
export function generatePassword(): string {
  return randomBytes(24).toString("base64url");
}

export interface AccountSpec {
  user: string;
  hosts: string[];
  methods: BackupMethod[];
  auth: { type: "password"; passwordFile: string } | { type: "unix_socket" };
  /** REQUIRE SSL on accounts created for TCP hosts (the config uses TLS). */
  requireSsl: boolean;
}

export interface HostOutcome {
  host: string;
  account: string;
  created: boolean;
  /** Privileges granted by this run (all of them for a new account). */
  granted: string[];
  /** Privileges beyond the minimum the existing account has (reported, not revoked). */
  extra: ExtraPrivilege[];
  auth: string;
}

export interface AccountResult {
  user: string;
  methods: BackupMethod[];
  passwordFile?: string | undefined;
  passwordFileCreated: boolean;
  hosts: HostOutcome[];
}

async function exists(path: string): Promise<boolean> {
  try {
    await readFile(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw e;
  }
}

async function authOf(conn: Connection, user: string, host: string): Promise<string> {
  const [rows] = (await conn.query("SHOW CREATE USER ?@?", [user, host])) as unknown as [
    Record<string, string>[],
  ];
  const text = String(Object.values(rows[0] ?? {})[0] ?? "");
  const via = /IDENTIFIED VIA (\w+)/i.exec(text);
  return via ? via[1]!.toLowerCase() : /IDENTIFIED BY/i.test(text) ? "password" : "none";
}

export async function ensureBackupAccount(conn: Connection, spec: AccountSpec): Promise<AccountResult> {
  const privileges = requiredPrivileges(spec.methods).map((p) => p.privilege);
  const existing = new Map<string, string[]>();
  for (const host of spec.hosts) {
    const g = await showGrantsFor(conn, spec.user, host);
    if (g) existing.set(host, g);
  }
  const toCreate = spec.hosts.filter((h) => !existing.has(h));
  const result: AccountResult = {
    user: spec.user,
    methods: spec.methods,
    passwordFile: spec.auth.type === "password" ? spec.auth.passwordFile : undefined,
    passwordFileCreated: false,
    hosts: [],
  };

  let password: string | undefined;
  if (spec.auth.type === "password") {
    const file = spec.auth.passwordFile;
    const fileThere = await exists(file);
    if (existing.size > 0 && !fileThere) {
      const existingAuth = await authOf(conn, spec.user, [...existing.keys()][0]!);
      throw new StrongboxError(
        "ACCOUNT_PASSWORD_UNKNOWN",
        `account '${spec.user}'@'${[...existing.keys()].join("', '")}' exists (${existingAuth} authentication) but the password file ${file} does not, so Strongbox cannot log in with it`,
        {
          hint: "DROP USER it and run user create again, pass --password-file FILE of its password, or use --socket-auth",
        },
      );
    }
    if (toCreate.length === 0) {
      // Nothing to create: the password stays what it is.
    } else if (existing.size === 0 && fileThere) {
      throw new StrongboxError(
        "PASSWORD_FILE_EXISTS",
        `password file ${file} exists but account '${spec.user}' does not: refusing to overwrite it`,
        { hint: "remove the file if it is stale, or pass --password-file NEW_FILE" },
      );
    } else if (fileThere) {
      // Other hosts of the same account exist: give the new ones the same password.
      password = (await readFile(file, "utf8")).replace(/\r?\n$/, "");
    } else {
      password = generatePassword();
      await mkdir(dirname(file), { recursive: true, mode: 0o700 });
      // wx: never replace a file that appeared meanwhile; 0600 from creation on.
      await writeFile(file, `${password}\n`, { mode: 0o600, flag: "wx" });
      result.passwordFileCreated = true;
    }
  }

  const created: string[] = [];
  try {
    for (const host of spec.hosts) {
      const account = accountName(spec.user, host);
      const grants = existing.get(host);
      if (!grants) {
        const ssl = spec.requireSsl && host !== "localhost" ? " REQUIRE SSL" : "";
        if (spec.auth.type === "unix_socket") {
          await conn.query(`CREATE USER ${account} IDENTIFIED VIA unix_socket${ssl}`);
        } else {
          await conn.query(`CREATE USER ${account} IDENTIFIED BY PASSWORD ?${ssl}`, [
            nativePasswordHash(password!),
          ]);
        }
        created.push(host);
        await conn.query(`GRANT ${privileges.join(", ")} ON *.* TO ${account}`);
        result.hosts.push({
          host,
          account,
          created: true,
          granted: privileges,
          extra: [],
          auth: spec.auth.type === "unix_socket" ? "unix_socket" : "password",
        });
        continue;
      }
      const cmp = compareGrants(parseGrants(grants), spec.methods);
      if (cmp.missing.length > 0) {
        await conn.query(`GRANT ${cmp.missing.join(", ")} ON *.* TO ${account}`);
      }
      result.hosts.push({
        host,
        account,
        created: false,
        granted: cmp.missing,
        extra: cmp.extra,
        auth: await authOf(conn, spec.user, host),
      });
    }
  } catch (e) {
    // Leave nothing half-made: accounts created by this run and the password file it wrote.
    for (const host of created) {
      await conn.query(`DROP USER IF EXISTS ${accountName(spec.user, host)}`).catch(() => {});
    }
    if (result.passwordFileCreated && spec.auth.type === "password") {
      await rm(spec.auth.passwordFile, { force: true });
    }
    const err = e as { sqlMessage?: string; message?: string };
    throw new StrongboxError(
      "ACCOUNT_CREATE_FAILED",
      `cannot create the backup account '${spec.user}': ${err.sqlMessage ?? err.message ?? String(e)}`,
      { hint: "the admin account needs CREATE USER and GRANT OPTION on the granted privileges", cause: e },
    );
  }
  return result;
}
