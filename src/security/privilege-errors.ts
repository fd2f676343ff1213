// The one-line explanation of a privilege error from mariabackup, mariadb-dump or a query: which
// privilege was denied, to which account, and the GRANT that fixes it.
import { accountName, normalizePrivilege, PRIVILEGE_NEEDS, plural } from "./grants.ts";

export interface MissingPrivilege {
  privileges: string[];
  /** 'user'@'host' when the error names it. */
  account?: string | undefined;
  /** The statement that failed, when the tool names it. */
  statement?: string | undefined;
  /** MariaDB error number when known (1227, 1142, 1044). */
  errno?: number | undefined;
  /** The database of a 1044 whose privilege could not be told from the statement. */
  database?: string | undefined;
}

/** The privilege a statement denied with 1044 (access denied to database) needed. */
function privilegeForStatement(statement: string | undefined): string | undefined {
  if (!statement) return undefined;
  if (/^\s*show\s+(create\s+)?events?\b/i.test(statement) || /information_schema\.events/i.test(statement))
    return "EVENT";
  if (/^\s*show\s+(create\s+)?triggers?\b/i.test(statement)) return "TRIGGER";
  if (/^\s*lock\s+tables?\b/i.test(statement)) return "LOCK TABLES";
  if (/^\s*show\s+create\s+view\b/i.test(statement)) return "SHOW VIEW";
  if (/^\s*(select|show\s+(fields|columns|create\s+(table|procedure|function|package)))\b/i.test(statement))
    return "SELECT";
  return undefined;
}

/** Finds the privilege a failure was missing in the text of an error or a tool's stderr. */
export function detectMissingPrivilege(text: string): MissingPrivilege | undefined {
  // Our own explanation, passed through again (e.g. a stderr tail that already holds it).
  const own = /the backup account lacks .*?: GRANT ([A-Z][A-Z _,]*?) ON \*\.\* TO ('[^']*'@'[^']*')?/.exec(
    text,
  );
  if (own) return { privileges: own[1]!.split(/,\s*/), account: own[2] };
  // mariabackup's start-up check: "Error: missing required privilege RELOAD on *.*" (Warning: lines are not fatal).
  const checks = [...text.matchAll(/Error: missing required privilege ([A-Z][A-Z_ ]*?) on \*\.\*/g)].map(
    (m) => m[1]!.trim(),
  );
  if (checks.length > 0) return { privileges: [...new Set(checks)] };
  const statement =
    /Couldn't execute '([^']*)'/.exec(text)?.[1] ?? /failed to execute query (.*?):/.exec(text)?.[1];
  // 1227: "Access denied; you need (at least one of) the SUPER, BINLOG MONITOR privilege(s) for this operation"
  const needs = /you need \(at least one of\) the ([A-Z][A-Z_ ,]*?) privilege\(s\)/.exec(text);
  if (needs) {
    const all = needs[1]!.split(/,\s*/).map((p) => p.trim());
    // The narrowest one: SUPER is listed first and is never the least privilege.
    const narrow = all.filter((p) => p !== "SUPER");
    return { privileges: [narrow[narrow.length - 1] ?? all[0]!], statement, errno: 1227 };
  }
  // 1142: "SELECT command denied to user 'u'@'h' for table `db`.`t`"
  const denied = /\b([A-Z][A-Z ]*?) command denied to user '([^']*)'@'([^']*)'/.exec(text);
  if (denied) {
    return {
      privileges: [normalizePrivilege(denied[1]!)],
      account: accountName(denied[2]!, denied[3]!),
      statement,
      errno: 1142,
    };
  }
  // 1044: "Access denied for user 'u'@'h' to database 'db'": the statement tells which privilege.
  const db = /Access denied for user '([^']*)'@'([^']*)' to database '([^']*)'/.exec(text);
  if (db) {
    const p = privilegeForStatement(statement);
    return {
      privileges: p ? [p] : [],
      account: accountName(db[1]!, db[2]!),
      statement,
      errno: 1044,
      database: db[3],
    };
  }
  return undefined;
}

/**
 * One line for people when a backup failed for a missing privilege, naming it and the GRANT that
 * fixes it; undefined when the text shows no privilege error. `account` is used when the error does
 * not name the account (mariabackup's check does not).
 */
export function explainPrivilegeError(stderrTail: string, account?: string): string | undefined {
  const found = detectMissingPrivilege(stderrTail);
  if (!found) return undefined;
  const who = found.account ?? account ?? "the backup account";
  const where = found.statement ? ` (failed: ${found.statement.trim().slice(0, 80)})` : "";
  if (found.privileges.length === 0) {
    return `the backup account ${found.account ?? ""} has no access to database '${found.database ?? "?"}'${where}: compare its grants with \`strongbox user grants\``.replace(
      /\s{2,}/g,
      " ",
    );
  }
  const why = found.privileges
    .map((p) => PRIVILEGE_NEEDS.find((n) => n.privilege === p)?.short)
    .filter((w): w is string => w !== undefined);
  return `the backup account lacks ${plural(found.privileges)}${where}${why.length > 0 ? `, needed ${why.join("; ")}` : ""}: GRANT ${found.privileges.join(", ")} ON *.* TO ${who};`;
}
