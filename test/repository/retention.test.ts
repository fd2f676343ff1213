import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  applyRetention,
  dayKey,
  monthKey,
  type RetentionItem,
  weekKey,
  yearKey,
} from "../../src/repository/retention.ts";

const at = (iso: string, id = iso, parent: string | null = null): RetentionItem => ({
  id,
  time: new Date(iso),
  parent,
});

describe("retention arithmetic", () => {
  it("keep-last keeps the newest N", () => {
    const items = ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"].map((t) => at(t));
    const d = applyRetention(items, { keepLast: 2 });
    assert.deepEqual([...d.keep.keys()].sort(), ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"]);
    assert.deepEqual(d.remove, ["2026-01-01T00:00:00Z"]);
  });

  it("keep-daily keeps the newest backup of each of the last N days with backups", () => {
    const items = [
      at("2026-03-01T01:00:00Z", "a"),
      at("2026-03-01T23:00:00Z", "b"),
      at("2026-03-02T10:00:00Z", "c"),
      at("2026-03-04T10:00:00Z", "d"),
    ];
    const d = applyRetention(items, { keepDaily: 2 });
    assert.deepEqual([...d.keep.keys()].sort(), ["c", "d"]);
    assert.deepEqual(d.remove.sort(), ["a", "b"]);
  });

  it("month ends: Jan 31 and Feb 1 are different months; Feb 28/29 handled", () => {
    assert.equal(monthKey(new Date("2026-01-31T23:59:59Z")), "2026-01");
    assert.equal(monthKey(new Date("2026-02-01T00:00:00Z")), "2026-02");
    assert.equal(dayKey(new Date("2028-02-29T12:00:00Z")), "2028-02-29");
    const items = [
      at("2026-01-31T22:00:00Z", "jan"),
      at("2026-02-01T02:00:00Z", "feb1"),
      at("2026-02-27T02:00:00Z", "feb27"),
    ];
    const d = applyRetention(items, { keepMonthly: 2 });
    assert.deepEqual([...d.keep.keys()].sort(), ["feb27", "jan"]);
  });

  it("keep-yearly keeps the newest backup of each of the last N years, in the policy's time zone", () => {
    assert.equal(yearKey(new Date("2026-12-31T23:30:00Z"), "Europe/Berlin"), "2027");
    const items = [
      at("2024-03-01T00:00:00Z", "y24a"),
      at("2024-12-30T00:00:00Z", "y24b"),
      at("2025-06-01T00:00:00Z", "y25"),
      at("2026-01-05T00:00:00Z", "y26"),
    ];
    const d = applyRetention(items, { keepYearly: 2 });
    assert.deepEqual([...d.keep.keys()].sort(), ["y25", "y26"]);
    assert.deepEqual(d.keep.get("y26"), ["keep-yearly 2026"]);
    assert.deepEqual(d.remove.sort(), ["y24a", "y24b"]);
  });

  it("a pinned backup is kept with its chain, whatever the policy", () => {
    const items = [
      at("2026-01-01T00:00:00Z", "full"),
      { ...at("2026-01-02T00:00:00Z", "inc", "full"), pinned: true },
      at("2026-01-03T00:00:00Z", "newest"),
    ];
    const d = applyRetention(items, { keepLast: 1 });
    assert.deepEqual(d.keep.get("inc"), ["pinned"]);
    assert.deepEqual(d.keep.get("full"), ["needed by kept inc"]);
    assert.deepEqual(d.remove, []);
  });

  it("time zones: the same instant falls on different local days", () => {
    const t = new Date("2026-06-30T23:30:00Z");
    assert.equal(dayKey(t, "UTC"), "2026-06-30");
    assert.equal(dayKey(t, "Europe/Berlin"), "2026-07-01");
    assert.equal(monthKey(t, "Europe/Berlin"), "2026-07");
    assert.equal(dayKey(t, "America/Los_Angeles"), "2026-06-30");
    const items = [at("2026-06-30T21:00:00Z", "early"), at("2026-06-30T23:30:00Z", "late")];
    assert.equal(applyRetention(items, { keepDaily: 5, timeZone: "UTC" }).keep.size, 1);
    assert.equal(applyRetention(items, { keepDaily: 5, timeZone: "Europe/Berlin" }).keep.size, 2);
  });

  it("DST: nightly backups at 02:30 local across the spring-forward and fall-back nights stay one per day", () => {
    // Europe/Berlin: 2026-03-29 02:00 → 03:00 (spring forward), 2026-10-25 03:00 → 02:00 (fall back).
    const nights = [
      "2026-03-28T01:30:00Z",
      "2026-03-29T00:30:00Z",
      "2026-03-30T00:30:00Z",
      "2026-10-24T00:30:00Z",
      "2026-10-25T01:30:00Z",
      "2026-10-26T01:30:00Z",
    ];
    const days = nights.map((n) => dayKey(new Date(n), "Europe/Berlin"));
    assert.deepEqual(days, [
      "2026-03-28",
      "2026-03-29",
      "2026-03-30",
      "2026-10-24",
      "2026-10-25",
      "2026-10-26",
    ]);
    const d = applyRetention(
      nights.map((n) => at(n)),
      { keepDaily: 6, timeZone: "Europe/Berlin" },
    );
    assert.equal(d.keep.size, 6);
    // Two backups in the repeated hour of the fall-back night are the same local day.
    const twice = [at("2026-10-25T00:30:00Z", "first-0230"), at("2026-10-25T01:30:00Z", "second-0230")];
    assert.deepEqual(
      [...applyRetention(twice, { keepDaily: 3, timeZone: "Europe/Berlin" }).keep.keys()],
      ["second-0230"],
    );
  });

  it("ISO weeks across the year boundary", () => {
    assert.equal(weekKey(new Date("2026-12-31T12:00:00Z")), "2026-W53");
    assert.equal(weekKey(new Date("2027-01-01T12:00:00Z")), "2026-W53");
    assert.equal(weekKey(new Date("2027-01-04T12:00:00Z")), "2027-W01");
    assert.equal(weekKey(new Date("2025-12-29T12:00:00Z")), "2026-W01");
  });

  it("keep-within keeps everything recent", () => {
    const now = new Date("2026-05-10T00:00:00Z");
    const items = [at("2026-05-09T12:00:00Z", "recent"), at("2026-05-01T00:00:00Z", "old")];
    const d = applyRetention(items, { keepWithin: 2 * 86_400_000 }, now);
    assert.deepEqual([...d.keep.keys()], ["recent"]);
  });

  it("never removes a backup that a kept incremental depends on", () => {
    const items = [
      at("2026-05-01T00:00:00Z", "full"),
      at("2026-05-02T00:00:00Z", "inc1", "full"),
      at("2026-05-03T00:00:00Z", "inc2", "inc1"),
      at("2026-05-04T00:00:00Z", "full2"),
    ];
    const d = applyRetention(items, { keepLast: 1, keepDaily: 0 });
    assert.deepEqual([...d.keep.keys()], ["full2"]);
    const d2 = applyRetention([...items.slice(0, 3)], { keepLast: 1 });
    assert.deepEqual([...d2.keep.keys()].sort(), ["full", "inc1", "inc2"]);
    assert.match(d2.keep.get("full")!.join(), /needed by kept inc/);
    assert.deepEqual(d2.remove, []);
  });

  it("an empty policy keeps nothing and a backup kept for two reasons lists both", () => {
    const items = [at("2026-05-01T00:00:00Z", "x")];
    assert.deepEqual(applyRetention(items, {}).remove, ["x"]);
    assert.deepEqual(applyRetention(items, { keepLast: 1, keepDaily: 1 }).keep.get("x")!.length, 2);
  });
});
