// `strongbox agent` run by hand or fed garbage: a person at a terminal is told what it is for
// (exit 64); a peer that does not speak the protocol gets an error frame and a failing exit status.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { FrameType } from "../../src/protocol/frames.ts";
import { BIN } from "../helpers/cli.ts";

describe("strongbox agent, not started by a backup host", () => {
  const env = { ...process.env, STRONGBOX_NODE: process.execPath };

  it("at a terminal: one line saying what it is for, exit 64", () => {
    // script(1) gives the agent a pseudo-terminal as stdin, as an interactive shell would.
    const r = spawnSync("script", ["-qec", `${BIN} agent`, "/dev/null"], {
      encoding: "utf8",
      env,
      input: "",
    });
    assert.equal(r.status, 64, r.stdout + r.stderr);
    assert.match(
      r.stdout + r.stderr,
      /strongbox: error: strongbox agent speaks the agent protocol on stdin\/stdout: sshd starts it/,
    );
  });

  it("a peer that sends no handshake gets an error frame and exit status 2", () => {
    const r = spawnSync(BIN, ["agent"], { env, input: Buffer.from("GET / HTTP/1.1\r\n\r\n") });
    assert.equal(r.status, 2, r.stderr.toString());
    assert.equal(r.stdout[0], FrameType.error, "the answer is a protocol error frame");
    assert.match(r.stdout.subarray(5).toString(), /"code":"AGENT_PROTOCOL"/);
  });
});
