// The throw-away server on a deep scratch directory: a unix socket path has at most 107 bytes, so
// its socket goes to a private directory under the temp dir, removed when it stops.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir, userInfo } from "node:os";
import { dirname, join } from "node:path";
import { after, describe, it } from "node:test";
import { startScratchServer } from "../../src/mariadb/scratch.ts";
import { run } from "../../src/util/proc.ts";

describe("scratch server", () => {
  let root = "";
  after(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  it("starts on a directory too deep for a socket path and cleans up its socket directory", async () => {
    root = await mkdtemp(join(tmpdir(), "sb-scratch-"));
    const work = join(
      root,
      "a-scratch-directory-as-deep-as-a-configured-state-dir",
      "restore-table-x1",
      "pitr-y2",
    );
    await mkdir(work, { recursive: true, mode: 0o700 });
    assert.ok(Buffer.byteLength(join(work, "mysqld.sock")) > 107);
    const user = userInfo().username;
    await run("mariadb-install-db", [
      "--no-defaults",
      `--datadir=${join(work, "data")}`,
      "--skip-test-db",
      "--auth-root-authentication-method=socket",
      `--auth-root-socket-user=${user}`,
      ...(process.getuid?.() === 0 ? ["--user=root"] : []),
    ]);
    const server = await startScratchServer(join(work, "data"), work, {
      bufferPool: "32M",
      socketUser: user,
    });
    try {
      assert.ok(Buffer.byteLength(server.socket) <= 107, server.socket);
      assert.ok(!server.socket.startsWith(work));
      const c = await server.connect();
      const [[r]] = (await c.query("SELECT 1 + 1 AS two")) as unknown as [[{ two: number }]];
      assert.equal(Number(r.two), 2);
      await c.end();
    } finally {
      await server.stop();
    }
    assert.equal(existsSync(dirname(server.socket)), false, "the socket's directory is removed");
  });
});
