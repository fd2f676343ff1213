// strongbox check and strongbox alert test, through the CLI, against a real sandbox cluster, a
// real sshd running the agent (key file and ssh-agent), and real HTTP and SMTP receivers. Each
// failing item is one line and sets the exit code; the faults are real (a stopped port, an account
// without grants, a refusing receiver) except mariabackup of another release, a fixture.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, writeFileSync } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { binlogItem, compareToolVersion } from "../../src/commands/check-nodes.ts";
import { BIN, cli, editConfig } from "../helpers/cli.ts";
import { useCluster } from "../helpers/cluster.ts";
import { freePort, type SshServer, startSshd } from "../helpers/sshd.ts";
import {
  type HttpReceiver,
  type SmtpReceiver,
  startHttpReceiver,
  startSmtpReceiver,
  until,
} from "../monitor/receivers.ts";

interface CheckDoc {
  items: { item: string; status: string; detail: string; hint?: string }[];
  exitCode: number;
}

describe("check and alert test", () => {
  const cluster = useCluster({ nodes: 1 });
  let http: HttpReceiver;
  let smtp: SmtpReceiver;
  let sshd: SshServer;
  let work: string;
  let good: string;

  const check = async (config: string, ...args: string[]) => {
    const r = await cli(["--config", config, "--json", "check", ...args]);
    return { ...r, doc: JSON.parse(r.stdout) as CheckDoc };
  };
  const item = (doc: CheckDoc, name: string) => doc.items.find((i) => i.item === name);

  before(
    async () => {
      work = await mkdtemp(join(tmpdir(), "sb-check-"));
      [http, smtp] = await Promise.all([startHttpReceiver(), startSmtpReceiver()]);
      sshd = await startSshd({ forcedCommand: `STRONGBOX_NODE=${process.execPath} exec ${BIN} agent` });
      await sshd.start();
      const password = join(work, "smtp.password");
      writeFileSync(password, smtp.password, { mode: 0o600 });
      good = editConfig(cluster.configPath, join(cluster.dir, "good.yaml"), (c) => {
        delete c.keys.identity;
        c.monitoring = {
          alerts: {
            webhook: { url: http.url },
            email: {
              host: smtp.host,
              port: smtp.port,
              user: smtp.user,
              passwordFile: password,
              from: "sb@localhost",
              to: ["dba@localhost"],
            },
            attempts: 1,
          },
        };
      });
      const init = await cli(["--config", good, "init"]);
      assert.equal(init.code, 0, init.stderr);
    },
    { timeout: 300_000 },
  );
  after(async () => {
    await Promise.all([http?.close(), smtp?.close(), sshd?.destroy()]);
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("a sound deployment: every item OK, one line each, exit 0; the test alert reaches both channels", async () => {
    const r = await cli(["--config", good, "check"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const lines = r.stdout.trim().split("\n");
    assert.match(lines.at(-1)!, /^\d+ ok, 0 warning\(s\), 0 failure\(s\) \(exit 0\)$/);
    assert.deepEqual(
      lines.slice(0, -1).map((l) => l.replace(/:.*/, "")),
      [
        "OK    config",
        "OK    state directory",
        "OK    signing key",
        "OK    recipients",
        "OK    node node1",
        "OK    grants strongbox_backup",
        "OK    binlog node1",
        "OK    mariabackup node1",
        "OK    repository local",
        "OK    alerts webhook",
        "OK    alerts email",
      ],
    );
    await until(() => smtp.mails.length === 1 && http.accepted().length === 1, 10_000, "both test alerts");
    assert.match(smtp.mails[0]!.subject, /test alert/);
  });

  it("alert test: every channel, exit 0; a refusing receiver: exit 2 naming it; no channel: ALERT_NO_CHANNEL", async () => {
    let r = await cli(["--config", good, "alert", "test"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "webhook: test message delivered\nemail: test message delivered\n");
    await until(() => smtp.mails.length === 2 && http.accepted().length === 2, 10_000, "second test alerts");
    http.failNext.push(500);
    r = await cli(["--config", good, "alert", "test"]);
    assert.equal(r.code, 2);
    assert.match(
      r.stdout,
      /^webhook: NOT delivered after 1 attempt\(s\): webhook http:\/\/127\.0\.0\.1:\d+\/hooks\/stron… answered 500: receiver says no$/m,
    );
    const none = editConfig(good, join(cluster.dir, "no-alerts.yaml"), (c) => {
      delete c.monitoring;
    });
    r = await cli(["--config", none, "--json", "alert", "test"]);
    assert.equal(r.code, 78);
    assert.equal(JSON.parse(r.stdout).error.code, "ALERT_NO_CHANNEL");
    assert.match(
      r.stderr,
      /configures no alert channel \(add monitoring\.alerts\.webhook or monitoring\.alerts\.email\)/,
    );
    // check without a channel: a warning, exit 1.
    const c = await check(none);
    assert.equal(c.code, 1);
    assert.equal(item(c.doc, "alerts")?.status, "warn");
  });

  it("a node nobody answers on, and an account without the grants: FAIL lines, exit 2", async () => {
    const port = await freePort();
    const conn = await cluster.connect(1);
    try {
      await conn.query("CREATE USER IF NOT EXISTS 'sb_thin'@'localhost' IDENTIFIED BY 'thin-password-1'");
      await conn.query("GRANT RELOAD ON *.* TO 'sb_thin'@'localhost'");
    } finally {
      await conn.end();
    }
    const pw = join(work, "thin.password");
    writeFileSync(pw, "thin-password-1", { mode: 0o600 });
    const bad = editConfig(good, join(cluster.dir, "bad.yaml"), (c) => {
      c.cluster.nodes.push({ name: "ghost", host: "127.0.0.1", port });
      c.cluster.credentials.backup = { user: "sb_thin", passwordFile: pw };
      delete c.monitoring;
    });
    const r = await check(bad, "--no-alert");
    assert.equal(r.code, 2);
    assert.equal(r.doc.exitCode, 2);
    const ghost = item(r.doc, "node ghost");
    assert.equal(ghost?.status, "fail");
    assert.match(
      ghost!.detail,
      new RegExp(`^unreachable: cannot connect to node ghost \\(127\\.0\\.0\\.1:${port}\\)`),
    );
    const grants = item(r.doc, "grants sb_thin");
    assert.equal(grants?.status, "fail");
    assert.match(grants!.detail, /^missing for physical and logical backups: .*PROCESS/);
    assert.equal(item(r.doc, "node node1")?.status, "ok");
    const text = await cli(["--config", bad, "check", "--no-alert"]);
    assert.match(text.stdout, /^FAIL {2}node ghost: unreachable: .*\(fix: start the node/m);
  });

  it("mariabackup of another release series: FAIL; the repository not initialised: FAIL; --no-connect skips the nodes", async () => {
    const fake = join(work, "mariabackup-10.6");
    writeFileSync(
      fake,
      '#!/bin/sh\necho "mariabackup based on MariaDB server 10.6.18-MariaDB Linux (x86_64)" >&2\n',
    );
    chmodSync(fake, 0o755);
    const other = editConfig(good, join(cluster.dir, "other.yaml"), (c) => {
      c.backup.mariabackupPath = fake;
      c.repositories.push({ name: "empty", storage: { type: "local", path: join(work, "empty") } });
      delete c.monitoring;
    });
    const r = await check(other, "--no-alert");
    assert.equal(r.code, 2);
    const mb = item(r.doc, "mariabackup node1");
    assert.equal(mb?.status, "fail");
    assert.match(
      mb!.detail,
      /^mariabackup 10\.6\.18 cannot back up a 10\.\d+\.\d+ server \(another release series\)$/,
    );
    assert.equal(item(r.doc, "repository empty")?.status, "fail");
    // Its directory does not exist: only init creates a repository (an unmounted disk is no empty one).
    assert.match(
      item(r.doc, "repository empty")!.detail,
      /repository empty: its directory .* does not exist/,
    );
    assert.equal(item(r.doc, "repository local")?.status, "ok");
    const offline = await check(other, "--no-connect", "--no-alert");
    assert.deepEqual(item(offline.doc, "nodes"), { item: "nodes", status: "skip", detail: "--no-connect" });
    assert.equal(item(offline.doc, "mariabackup node1"), undefined);
  });

  it("a node with an agent: the SSH handshake, with a key file and through a real ssh-agent; a dead sshd fails", async () => {
    const withAgent = (name: string, agent: Record<string, unknown>) =>
      editConfig(good, join(cluster.dir, `${name}.yaml`), (c) => {
        c.cluster.nodes[0].agent = {
          host: "127.0.0.1",
          port: sshd.port,
          user: sshd.user,
          hostKey: sshd.hostKeyLine,
          ...agent,
        };
        delete c.monitoring;
      });
    let r = await check(withAgent("agent-key", { privateKey: sshd.userKeyFile }), "--no-alert");
    assert.equal(
      r.code,
      0,
      JSON.stringify(r.doc.items.filter((i) => i.status !== "ok" && i.status !== "skip")),
    );
    assert.match(
      item(r.doc, "agent node1")!.detail,
      /^strongbox \S+ answers as \S+@\S+ \(mariabackup runs there\)$/,
    );
    assert.equal(item(r.doc, "mariabackup node1"), undefined, "mariabackup runs on the node");

    const dir = await mkdtemp(join(tmpdir(), "sb-check-agent-"));
    const socket = join(dir, "agent.sock");
    const agent = spawn("ssh-agent", ["-D", "-a", socket], { stdio: "ignore" });
    try {
      for (
        let i = 0;
        i < 200 &&
        !(await stat(socket).then(
          (s) => s.isSocket(),
          () => false,
        ));
        i++
      )
        await delay(25);
      const add = await new Promise<number | null>((resolve) =>
        spawn("ssh-add", [sshd.userKeyFile], {
          env: { ...process.env, SSH_AUTH_SOCK: socket },
          stdio: "ignore",
        }).once("close", resolve),
      );
      assert.equal(add, 0);
      const viaAgent = withAgent("agent-ssh-agent", {});
      const ok = await cli(["--config", viaAgent, "--json", "check", "--no-alert"], {
        SSH_AUTH_SOCK: socket,
      });
      assert.equal(ok.code, 0, ok.stdout);
      assert.equal(item(JSON.parse(ok.stdout) as CheckDoc, "agent node1")?.status, "ok");
      const noAgent = await cli(["--config", viaAgent, "--json", "check", "--no-alert"], {
        SSH_AUTH_SOCK: "",
      });
      const failed = item(JSON.parse(noAgent.stdout) as CheckDoc, "agent node1");
      assert.equal(failed?.status, "fail");
      assert.match(failed!.detail, /no privateKey is configured and no ssh-agent runs/);
    } finally {
      agent.kill();
      await rm(dir, { recursive: true, force: true });
    }

    r = await check(
      withAgent("agent-dead", { privateKey: sshd.userKeyFile, port: await freePort() }),
      "--no-alert",
    );
    assert.equal(r.code, 2);
    assert.equal(item(r.doc, "agent node1")?.status, "fail");
    assert.match(item(r.doc, "agent node1")!.detail, /cannot connect to/);
  });

  it("compares mariabackup with the server by release series, then patch level", () => {
    assert.equal(compareToolVersion("10.11.6", "10.11.6-MariaDB-log").status, "ok");
    assert.equal(compareToolVersion("10.11.19", "10.11.6-MariaDB").status, "ok");
    assert.deepEqual(compareToolVersion("10.11.5", "10.11.6-MariaDB-0+deb12u1"), {
      status: "warn",
      why: "mariabackup 10.11.5 is older than the server 10.11.6",
    });
    assert.equal(compareToolVersion("10.6.18", "10.11.6").status, "fail");
    assert.equal(compareToolVersion("11.4.2", "10.11.6").status, "fail");
    assert.equal(compareToolVersion("?", "10.11.6").status, "warn");
  });

  it("binary log settings: all ON is OK; off is a warning, or a failure when binlog archiving is configured", () => {
    const node = { name: "db1", host: "db1.example", port: 3306 };
    const facts = (v: Record<string, string>) => ({ node, vars: new Map(Object.entries(v)) });
    const on = { log_bin: "ON", log_slave_updates: "ON", wsrep_on: "ON", wsrep_gtid_mode: "ON" };
    assert.equal(binlogItem(facts(on), true).status, "ok");
    const off = binlogItem(facts({ ...on, log_slave_updates: "OFF", wsrep_gtid_mode: "OFF" }), false);
    assert.equal(off.status, "warn");
    assert.equal(
      off.detail,
      "log_slave_updates=OFF, wsrep_gtid_mode=OFF: point-in-time recovery needs them ON",
    );
    assert.equal(binlogItem(facts({ ...on, log_bin: "OFF" }), true).status, "fail");
    // A server without Galera needs no wsrep_gtid_mode.
    assert.equal(binlogItem(facts({ ...on, wsrep_on: "OFF", wsrep_gtid_mode: "OFF" }), true).status, "ok");
  });
});
