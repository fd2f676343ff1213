// Choosing a donor when no node answers: a problem of this host (TLS, a file, the password) shared by
// every node is reported as itself, not as a cluster that needs to recover.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { StrongboxError } from "../../src/errors.ts";
import { type NodeHealth, rankDonors, unreachable } from "../../src/galera/health.ts";

function failed(name: string, code: "NODE_TLS" | "NODE_UNREACHABLE" | "NODE_CONNECT_FAILED"): NodeHealth {
  const failure = new StrongboxError(code, `cannot connect to node ${name}: ${code}`, {
    hint: `fix ${code}`,
  });
  return unreachable({ name, host: "127.0.0.1", port: 3306 }, failure);
}

const synced = (name: string): NodeHealth => ({
  node: { name, host: "127.0.0.1", port: 3306 },
  reachable: true,
  clusterStatus: "Primary",
  state: "Synced",
  ready: true,
  clusterSize: 3,
  clusterUuid: "u",
  lastCommitted: 1,
  desynced: false,
});

describe("donor choice when nodes fail", () => {
  it("the same TLS (or login) failure on every node is that error, naming the other nodes", () => {
    for (const code of ["NODE_TLS", "NODE_CONNECT_FAILED"] as const) {
      assert.throws(
        () => rankDonors([failed("db1", code), failed("db2", code), failed("db3", code)], {}),
        (e: StrongboxError) =>
          e.code === code &&
          e.oneLine() === `cannot connect to node db1: ${code} (and the same on db2, db3) (fix ${code})`,
      );
    }
  });

  it("nodes that are down, or fail in different ways, are a cluster without a Synced node", () => {
    for (const health of [
      [failed("db1", "NODE_UNREACHABLE"), failed("db2", "NODE_UNREACHABLE")],
      [failed("db1", "NODE_TLS"), failed("db2", "NODE_UNREACHABLE")],
      [{ ...synced("db1"), state: "Donor/Desynced" }, failed("db2", "NODE_TLS")],
    ]) {
      assert.throws(
        () => rankDonors(health, {}),
        (e: StrongboxError) => e.code === "NO_SYNCED_NODE",
      );
    }
    assert.deepEqual(
      rankDonors([failed("db1", "NODE_TLS"), synced("db2")], {}).map((h) => h.node.name),
      ["db2"],
    );
  });
});
