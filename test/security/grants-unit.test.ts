// The pure parts of least privilege: statements, SHOW GRANTS parsing and comparison, and turning
// real error output of mariabackup, mariadb-dump and mysql2 (captured from MariaDB 10.11) into one line.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { type AuditFinding, auditExitCode, isPrivateHost } from "../../src/audit/types.ts";
import { accountHostsFor } from "../../src/commands/user.ts";
import { sstEncrypted } from "../../src/galera/tls.ts";
import {
  compareGrants,
  grantStatement,
  methodsOf,
  missingGrantsMessage,
  nativePasswordHash,
  parseGrant,
  parseGrants,
  requiredPrivileges,
} from "../../src/security/grants.ts";
import { detectMissingPrivilege, explainPrivilegeError } from "../../src/security/privilege-errors.ts";
import { readCnfSection } from "../../src/util/cnf.ts";

const SANDBOX_GRANT =
  "GRANT SELECT, RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, SHOW VIEW, EVENT, TRIGGER, SLAVE MONITOR ON *.* TO `strongbox_backup`@`localhost` IDENTIFIED BY PASSWORD '*58946B9A1B2334BE3A3A490D93CDBE0398996D43'";

describe("minimal grants", () => {
  it("physical, logical and both differ exactly where the tools differ", () => {
    const names = (m: Parameters<typeof methodsOf>[0]) =>
      requiredPrivileges(methodsOf(m)).map((p) => p.privilege);
    assert.deepEqual(names("physical"), [
      "SELECT",
      "RELOAD",
      "PROCESS",
      "BINLOG MONITOR",
      "EVENT",
      "TRIGGER",
    ]);
    assert.deepEqual(names("logical"), ["SELECT", "SHOW VIEW", "EVENT", "TRIGGER"]);
    assert.deepEqual(names("both"), [
      "SELECT",
      "RELOAD",
      "PROCESS",
      "BINLOG MONITOR",
      "SHOW VIEW",
      "EVENT",
      "TRIGGER",
    ]);
    assert.equal(
      grantStatement(["logical"], "bk", "%.backup.example"),
      "GRANT SELECT, SHOW VIEW, EVENT, TRIGGER ON *.* TO 'bk'@'%.backup.example';",
    );
    assert.equal(
      grantStatement(["physical"], "o'x", "h"),
      "GRANT SELECT, RELOAD, PROCESS, BINLOG MONITOR, EVENT, TRIGGER ON *.* TO 'o\\'x'@'h';",
    );
  });

  it("the password hash is mysql_native_password's", () => {
    const pw = "correct horse";
    const want = `*${createHash("sha1").update(createHash("sha1").update(pw).digest()).digest("hex").toUpperCase()}`;
    assert.equal(nativePasswordHash(pw), want);
    // A known value: the hash of "password".
    assert.equal(nativePasswordHash("password"), "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19");
  });

  it("account hosts follow how the nodes are reached", () => {
    const n = (o: { socket?: string; host?: string }) => ({
      name: "n",
      host: o.host ?? "127.0.0.1",
      port: 3306,
      socket: o.socket,
    });
    assert.deepEqual(accountHostsFor([n({ socket: "/s" }), n({ socket: "/t" })]), ["localhost"]);
    assert.deepEqual(accountHostsFor([n({ host: "127.0.0.1" })]), ["127.0.0.1"]);
    assert.deepEqual(accountHostsFor([n({ host: "localhost" })]), ["localhost", "127.0.0.1"]);
    assert.equal(accountHostsFor([n({ host: "db1.example" })]), undefined);
  });
});

describe("SHOW GRANTS", () => {
  it("parses global, database, column, routine, role and proxy grants", () => {
    const g = parseGrant(SANDBOX_GRANT)!;
    assert.equal(g.on, "*.*");
    assert.deepEqual(g.privileges, [
      "SELECT",
      "RELOAD",
      "PROCESS",
      "LOCK TABLES",
      "BINLOG MONITOR",
      "SHOW VIEW",
      "EVENT",
      "TRIGGER",
      "SLAVE MONITOR",
    ]);
    assert.equal(g.grantOption, false);
    const db = parseGrant("GRANT ALL PRIVILEGES ON `shop`.* TO `u`@`%` WITH GRANT OPTION")!;
    assert.deepEqual([db.privileges, db.on, db.grantOption], [["ALL"], "`shop`.*", true]);
    const col = parseGrant("GRANT SELECT (`a`, `b`), INSERT (`c`) ON `d`.`t` TO `u`@`h`")!;
    assert.deepEqual(col.privileges, ["SELECT", "INSERT"]);
    assert.equal(col.on, "`d`.`t`");
    const proc = parseGrant("GRANT EXECUTE ON PROCEDURE `hr`.`give_raise` TO `u`@`h`")!;
    assert.equal(proc.on, "PROCEDURE `hr`.`give_raise`");
    const role = parseGrant("GRANT `dba`, `ops` TO `u`@`h`")!;
    assert.deepEqual(role.roles, ["dba", "ops"]);
    assert.equal(parseGrant("GRANT PROXY ON ''@'%' TO 'root'@'localhost' WITH GRANT OPTION")!.proxy, true);
    assert.deepEqual(parseGrant("GRANT REPLICATION CLIENT ON *.* TO `u`@`h`")!.privileges, [
      "BINLOG MONITOR",
    ]);
    assert.equal(parseGrant("SET DEFAULT ROLE `dba` FOR `u`@`h`"), undefined);
    // A password hash that happens to contain " TO " or " ON " does not confuse the parser.
    assert.equal(parseGrant("GRANT USAGE ON *.* TO `u`@`h` IDENTIFIED BY PASSWORD '* ON TO x'")!.on, "*.*");
  });

  it("compares an account with the minimum: the sandbox's extras, missing ones, dangerous ones", () => {
    const sandbox = compareGrants(parseGrants([SANDBOX_GRANT]), ["physical", "logical"]);
    assert.deepEqual(sandbox.missing, []);
    assert.deepEqual(
      sandbox.extra.map((x) => [x.privilege, x.risk]),
      [
        ["LOCK TABLES", "low"],
        ["SLAVE MONITOR", "low"],
      ],
    );
    const physicalOnly = compareGrants(parseGrants([SANDBOX_GRANT]), ["physical"]);
    assert.deepEqual(
      physicalOnly.extra.map((x) => x.privilege),
      ["LOCK TABLES", "SHOW VIEW", "SLAVE MONITOR"],
    );
    const minimal = compareGrants(
      parseGrants([
        "GRANT SELECT, RELOAD, PROCESS, BINLOG MONITOR, SHOW VIEW, EVENT, TRIGGER ON *.* TO `b`@`localhost`",
      ]),
      ["physical", "logical"],
    );
    assert.deepEqual(minimal, { missing: [], extra: [] });
    const lacking = compareGrants(parseGrants(["GRANT RELOAD, PROCESS ON *.* TO `b`@`h`"]), ["physical"]);
    assert.deepEqual(lacking.missing, ["SELECT", "BINLOG MONITOR", "EVENT", "TRIGGER"]);
    const root = compareGrants(
      parseGrants([
        "GRANT ALL PRIVILEGES ON *.* TO `b`@`h` WITH GRANT OPTION",
        "GRANT INSERT ON `shop`.* TO `b`@`h`",
      ]),
      ["logical"],
    );
    assert.deepEqual(root.missing, []);
    assert.deepEqual(
      root.extra.map((x) => [x.privilege, x.on, x.risk]),
      [
        ["GRANT OPTION", "*.*", "critical"],
        ["ALL", "*.*", "critical"],
        ["INSERT", "`shop`.*", "high"],
      ],
    );
    assert.match(
      missingGrantsMessage(["TRIGGER"], "'b'@'h'"),
      /lacks the TRIGGER privilege, .*GRANT TRIGGER ON \*\.\* TO 'b'@'h';$/,
    );
  });
});

describe("explainPrivilegeError", () => {
  // stderr lines as MariaDB 10.11's tools print them.
  const cases: [string, string, string | undefined][] = [
    [
      "mariabackup start-up check",
      "[00] 2026-11-26 18:35:39 Error: missing required privilege RELOAD on *.*\n[00] 2026-11-26 18:35:39 Warning: missing required privilege SLAVE MONITOR on *.*",
      "RELOAD",
    ],
    [
      "mariabackup SHOW MASTER STATUS",
      "[00] FATAL ERROR: 2026-11-26 18:35:42 failed to execute query SHOW MASTER STATUS: Access denied; you need (at least one of) the SUPER, BINLOG MONITOR privilege(s) for this operation",
      "BINLOG MONITOR",
    ],
    [
      "mariadb-dump SELECT",
      "mariadb-dump: Couldn't execute 'SHOW FIELDS FROM `user`': SELECT command denied to user 't'@'localhost' for table `mysql`.`user` (1142)",
      "SELECT",
    ],
    [
      "mariadb-dump SHOW VIEW",
      "mariadb-dump: Couldn't execute 'show create table `user`': SHOW VIEW command denied to user 't'@'localhost' for table `mysql`.`user` (1142)",
      "SHOW VIEW",
    ],
    [
      "mariadb-dump EVENT",
      "mariadb-dump: Couldn't execute 'show events': Access denied for user 't'@'localhost' to database 'hr' (1044)",
      "EVENT",
    ],
    [
      "inventory query (mysql2)",
      "SELECT command denied to user 'strongbox_min'@'localhost' for table `hr`.`departments`",
      "SELECT",
    ],
    [
      "a wrong password is not a privilege problem",
      "Access denied for user 't'@'localhost' (using password: YES)",
      undefined,
    ],
    ["no error at all", "[00] completed OK!", undefined],
  ];
  for (const [name, text, privilege] of cases) {
    it(name, () => {
      const line = explainPrivilegeError(text, "'b'@'localhost'");
      if (privilege === undefined) {
        assert.equal(line, undefined);
        return;
      }
      assert.ok(line, "explained");
      assert.doesNotMatch(line, /\n/, "one line");
      assert.match(line, new RegExp(`lacks the ${privilege} privilege`));
      assert.match(line, new RegExp(`GRANT ${privilege} ON \\*\\.\\* TO '`));
      // Explaining the explanation gives the same privilege (the message may pass through twice).
      assert.deepEqual(detectMissingPrivilege(line)?.privileges, [privilege]);
    });
  }

  it("names the account from the error when it has one, else the one given", () => {
    assert.match(
      explainPrivilegeError("SELECT command denied to user 'x'@'backup1.example' for table `a`.`b`")!,
      /TO 'x'@'backup1\.example';$/,
    );
    assert.match(
      explainPrivilegeError("Error: missing required privilege PROCESS on *.*", "'b'@'h'")!,
      /TO 'b'@'h';$/,
    );
  });
});

describe("audit helpers", () => {
  it("exit code by the worst severity; accepted findings do not count", () => {
    const f = (severity: AuditFinding["severity"], accepted = false): AuditFinding => ({
      id: "x",
      severity,
      practice: "encryption",
      title: "",
      evidence: "",
      fix: "",
      accepted,
    });
    assert.equal(auditExitCode([]), 0);
    assert.equal(auditExitCode([f("info")]), 0);
    assert.equal(auditExitCode([f("info"), f("low")]), 1);
    assert.equal(auditExitCode([f("medium")]), 1);
    assert.equal(auditExitCode([f("medium"), f("high")]), 2);
    assert.equal(auditExitCode([f("critical")]), 2);
    assert.equal(auditExitCode([f("critical", true), f("low")]), 1);
  });

  it("docs/audit.md lists every finding id the audit can report", () => {
    const dir = new URL("../../src/audit/", import.meta.url);
    const doc = readFileSync(new URL("../../docs/audit.md", import.meta.url), "utf8");
    const found = new Set<string>();
    for (const f of readdirSync(dir)) {
      const text = readFileSync(new URL(f, dir), "utf8");
      for (const m of text.matchAll(/\bid: ["`]([a-z0-9${}.-]+)["`]/g)) {
        const id = m[1]!;
        // `${spec.command}-stale` and friends exist for both checks.
        const templated = /^\$\{spec\.command\}(.*)$/.exec(id);
        if (templated) for (const c of ["verify", "restore-test"]) found.add(`${c}${templated[1]}`);
        else found.add(id);
      }
    }
    assert.ok(found.size > 30, `found ${found.size} ids`);
    for (const id of found) assert.ok(doc.includes(`| \`${id}\` |`), `docs/audit.md lacks ${id}`);
  });

  it("private addresses", () => {
    // Only ranges no test here may connect to: shared (RFC 6598), link-local and unique-local.
    // The RFC 1918 ranges take the same comparisons in isPrivateHost.
    for (const a of ["100.64.0.1", "100.127.255.254", "169.254.1.1", "fd00::1", "fe80::1"])
      assert.ok(isPrivateHost(a), a);
    for (const a of [
      "100.63.255.255",
      "100.128.0.1",
      "192.0.2.1",
      "198.51.100.7",
      "2001:db8::1",
      "127.0.0.1",
      "db1.example",
    ])
      assert.ok(!isPrivateHost(a), a);
  });

  it("reads [sst] through includes and tells whether it encrypts", async () => {
    const dir = mkdtempSync(join(tmpdir(), "strongbox-cnf-"));
    mkdirSync(join(dir, "conf.d"));
    writeFileSync(join(dir, "my.cnf"), "[mysqld]\nport=3306\n[sst]\nprogress=none\n!includedir conf.d\n");
    writeFileSync(join(dir, "conf.d", "tls.cnf"), "[sst]\nssl_mode = VERIFY_CA\n");
    const sst = (await readCnfSection(join(dir, "my.cnf"), "sst"))!;
    assert.equal(sst.get("ssl-mode"), "VERIFY_CA");
    assert.deepEqual(sstEncrypted(sst), { encrypted: true, how: "[sst] ssl-mode=VERIFY_CA" });
    assert.equal(sstEncrypted(new Map([["encrypt", "0"]])).encrypted, false);
    assert.equal(sstEncrypted(new Map([["encrypt", "3"]])).encrypted, true);
    assert.equal(await readCnfSection(join(dir, "missing.cnf"), "sst"), undefined);
  });
});
