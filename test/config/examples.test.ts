// The example configuration the Debian package installs as /etc/strongbox/strongbox.yaml, and the
// quickstart that shows it: a valid configuration for the quickstart's cluster, shown verbatim.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parseConfigText } from "../../src/config/load.ts";

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), "utf8");
const EXAMPLE = read("packaging/strongbox.yaml");

describe("the example configuration", () => {
  it("is valid, for three database hosts reached through their agents and a backup host", () => {
    const c = parseConfigText(EXAMPLE, "packaging/strongbox.yaml");
    assert.deepEqual(
      c.cluster.nodes.map((n) => [n.name, n.host, n.agent?.user]),
      [
        ["db1", "db1.example", "strongbox"],
        ["db2", "db2.example", "strongbox"],
        ["db3", "db3.example", "strongbox"],
      ],
    );
    assert.equal(c.stateDir, "/var/lib/strongbox");
    const [local, offsite] = c.repositories;
    assert.deepEqual(local?.storage, { type: "local", path: "/var/backups/strongbox" });
    assert.equal(local?.retention?.keepYearly, 3);
    assert.equal(offsite?.storage.type === "s3" && offsite.storage.credentialsFile, undefined);
    assert.equal(offsite?.appendOnly, true);
    assert.equal(c.keys.identity, undefined, "the backup host holds no identity");
  });

  it("is shown verbatim in docs/quickstart.md", () => {
    const blocks = [...read("docs/quickstart.md").matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]);
    assert.ok(blocks.includes(EXAMPLE), "the quickstart's strongbox.yaml is packaging/strongbox.yaml");
  });
});
