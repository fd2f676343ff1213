import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  isUnusuallyLong,
  isUnusualSize,
  longRunThreshold,
  MAD_TO_SIGMA,
  mad,
  median,
  sizeAnomaly,
} from "../../src/monitor/stats.ts";

/** mulberry32: a small seeded PRNG, so a failing property prints a seed that reproduces it. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function sample(rand: () => number, n: number, center: number, jitter: number): number[] {
  return Array.from({ length: n }, () => center + (rand() * 2 - 1) * jitter);
}

function shuffle<T>(rand: () => number, xs: T[]): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const SEEDS = Array.from({ length: 200 }, (_, i) => 0x5eed + i * 7919);

describe("median and MAD", () => {
  it("known values", () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.equal(median([7]), 7);
    assert.ok(Number.isNaN(median([])));
    assert.equal(median([1, Number.NaN, 3, Number.POSITIVE_INFINITY, 2]), 2);
    // |x - 2| = 1,1,0,0,2,4,7 → median 1
    assert.equal(mad([1, 1, 2, 2, 4, 6, 9]), 1);
    assert.equal(mad([5, 5, 5, 5]), 0);
    assert.ok(Number.isNaN(mad([])));
  });

  it("properties: order-free, within range, shift- and scale-equivariant (seeded)", () => {
    for (const seed of SEEDS) {
      const rand = prng(seed);
      const n = 1 + Math.floor(rand() * 40);
      const xs = sample(rand, n, rand() * 1000, rand() * 500);
      const m = median(xs);
      const d = mad(xs);
      const msg = `seed ${seed}`;
      assert.equal(median(shuffle(rand, xs)), m, msg);
      assert.ok(m >= Math.min(...xs) && m <= Math.max(...xs), msg);
      assert.ok(d >= 0, msg);
      const shift = rand() * 1e4 - 5e3;
      const scale = 0.1 + rand() * 10;
      assert.ok(Math.abs(median(xs.map((x) => x + shift)) - (m + shift)) < 1e-6, msg);
      assert.ok(Math.abs(mad(xs.map((x) => x + shift)) - d) < 1e-6, msg);
      assert.ok(Math.abs(median(xs.map((x) => x * scale)) - m * scale) < 1e-6, msg);
      assert.ok(Math.abs(mad(xs.map((x) => x * scale)) - d * scale) < 1e-6, msg);
      // At least half of the values lie on each side of the median.
      assert.ok(xs.filter((x) => x <= m).length >= n / 2, msg);
      assert.ok(xs.filter((x) => x >= m).length >= n / 2, msg);
    }
  });

  it("property: fewer than half outliers cannot drag the median out of the normal values (seeded)", () => {
    for (const seed of SEEDS) {
      const rand = prng(seed);
      const good = sample(rand, 5 + Math.floor(rand() * 30), 600, 50);
      const outliers = Array.from({ length: Math.floor((good.length - 1) / 2) }, () => 1e6 * (1 + rand()));
      const m = median(shuffle(rand, [...good, ...outliers]));
      assert.ok(m >= Math.min(...good) && m <= Math.max(...good), `seed ${seed}: median ${m}`);
    }
  });
});

describe("isUnusuallyLong", () => {
  const o = { k: 3, minHistory: 5 };

  it("median + k·1.4826·MAD, with the relative floor for a flat history", () => {
    const h = [100, 110, 90, 105, 95, 100, 300]; // one old slow run barely matters
    const t = longRunThreshold(h, { ...o, minRelativeSpread: 0 })!;
    assert.equal(t.median, 100);
    assert.equal(t.mad, 5);
    assert.ok(Math.abs(t.threshold - (100 + 3 * MAD_TO_SIGMA * 5)) < 1e-9);
    assert.ok(isUnusuallyLong(h, 125, { ...o, minRelativeSpread: 0 }));
    assert.ok(!isUnusuallyLong(h, 120, { ...o, minRelativeSpread: 0 }));

    // Identical runs: MAD 0. Without the floor a 1 ms slower run would be "unusual".
    const flat = [200, 200, 200, 200, 200];
    assert.ok(isUnusuallyLong(flat, 201, { ...o, minRelativeSpread: 0 }));
    assert.ok(!isUnusuallyLong(flat, 201, o), "the default floor (20 % of the median) absorbs jitter");
    assert.equal(longRunThreshold(flat, o)!.threshold, 200 + 3 * 40);
    assert.ok(isUnusuallyLong(flat, 2000, o));
    // The absolute floor.
    assert.ok(!isUnusuallyLong(flat, 2000, { ...o, minSpread: 1000 }));
  });

  it("never judges with fewer than minHistory values", () => {
    assert.equal(longRunThreshold([1, 1, 1, 1], o), undefined);
    assert.ok(!isUnusuallyLong([1, 1, 1, 1], 1e9, o));
    assert.ok(!isUnusuallyLong([], 1e9, { k: 3, minHistory: 0 }));
    assert.ok(isUnusuallyLong([1, 1, 1, 1, 1], 1e9, o));
  });

  it("properties: never flags a value at or below the median; monotone; scale-free (seeded)", () => {
    for (const seed of SEEDS) {
      const rand = prng(seed);
      const h = sample(rand, 5 + Math.floor(rand() * 20), 1000 + rand() * 1e5, rand() * 300);
      const opts = { k: 1 + rand() * 4, minHistory: 5, minRelativeSpread: rand() * 0.5 };
      const t = longRunThreshold(h, opts)!;
      const msg = `seed ${seed}`;
      assert.ok(t.threshold >= t.median, msg);
      assert.ok(
        t.spread >= MAD_TO_SIGMA * t.mad - 1e-9 && t.spread >= opts.minRelativeSpread * t.median - 1e-9,
      );
      assert.ok(!isUnusuallyLong(h, median(h), opts), msg);
      assert.ok(!isUnusuallyLong(h, Math.min(...h), opts), msg);
      const v = t.median * (0.5 + rand() * 3);
      const flagged = isUnusuallyLong(h, v, opts);
      if (flagged) assert.ok(isUnusuallyLong(h, v * (1 + rand()), opts), `${msg}: monotone`);
      else assert.ok(!isUnusuallyLong(h, v * rand(), opts), `${msg}: monotone`);
      const c = 0.001 + rand() * 1000;
      assert.equal(
        isUnusuallyLong(
          h.map((x) => x * c),
          v * c,
          opts,
        ),
        flagged,
        `${msg}: the unit of time does not matter`,
      );
    }
  });

  it("property: a stable history with its jitter flags only values far above it (seeded)", () => {
    for (const seed of SEEDS) {
      const rand = prng(seed);
      const center = 100 + rand() * 1e4;
      const h = sample(rand, 10, center, center * 0.05);
      const opts = { k: 3, minHistory: 5 };
      // Another ordinary run: never flagged.
      assert.ok(!isUnusuallyLong(h, center + (rand() * 2 - 1) * center * 0.05, opts), `seed ${seed}`);
      // Ten times as long: always flagged.
      assert.ok(isUnusuallyLong(h, center * 10, opts), `seed ${seed}`);
    }
  });
});

describe("isUnusualSize", () => {
  const o = { lowFactor: 0.5, highFactor: 2, minHistory: 3 };

  it("compares with the median by ratio", () => {
    const h = [1000, 1100, 900, 1050];
    assert.equal(sizeAnomaly(h, 400, o), "small");
    assert.equal(sizeAnomaly(h, 2500, o), "large");
    assert.equal(sizeAnomaly(h, 1000, o), undefined);
    assert.equal(sizeAnomaly(h, 600, o), undefined);
    assert.ok(isUnusualSize(h, 10, o));
    assert.ok(!isUnusualSize([1000, 1000], 10, o), "too little history");
    assert.ok(!isUnusualSize(h, Number.NaN, o));
  });

  it("properties: bounds bracket the median; monotone in both directions (seeded)", () => {
    for (const seed of SEEDS) {
      const rand = prng(seed);
      const h = sample(rand, 3 + Math.floor(rand() * 20), 1e6 + rand() * 1e9, rand() * 1e5);
      const opts = { lowFactor: 0.1 + rand() * 0.8, highFactor: 1.1 + rand() * 4, minHistory: 3 };
      const m = median(h);
      const msg = `seed ${seed}`;
      assert.equal(sizeAnomaly(h, m, opts), undefined, msg);
      const v = m * rand() * 6;
      const a = sizeAnomaly(h, v, opts);
      if (a === "small") assert.equal(sizeAnomaly(h, v * rand(), opts), "small", msg);
      if (a === "large") assert.equal(sizeAnomaly(h, v * (1 + rand()), opts), "large", msg);
      if (a === undefined) {
        assert.ok(v >= m * opts.lowFactor && v <= m * opts.highFactor, msg);
      }
    }
  });
});
