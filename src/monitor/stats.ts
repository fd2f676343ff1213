// Robust statistics for "unusual" runs. Median and MAD instead of mean and standard deviation: one
// run that hung for hours must not raise the bar for every later run, and half the history may be
// odd before the median moves outside the normal runs.

/** MAD × 1.4826 estimates the standard deviation of normally distributed data. */
export const MAD_TO_SIGMA = 1.4826;

function finite(xs: readonly number[]): number[] {
  return xs.filter((x) => Number.isFinite(x));
}

/** The middle value (the mean of the two middle values for an even count); NaN for no values. */
export function median(xs: readonly number[]): number {
  const s = finite(xs).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Median absolute deviation from the median (unscaled); NaN for no values. */
export function mad(xs: readonly number[]): number {
  const m = median(xs);
  return median(finite(xs).map((x) => Math.abs(x - m)));
}

export interface LongRunOptions {
  /** How many spreads above the median a run may take. */
  k: number;
  /** Below this many past values nothing is judged. */
  minHistory: number;
  /**
   * Lower bound of the spread as a fraction of the median. Identical past runs give MAD 0, and a
   * threshold of exactly the median would flag every run a millisecond slower: the floor makes a
   * stable history tolerate k × this fraction (default 0.2: with k = 3, 60 %) above its median.
   */
  minRelativeSpread?: number;
  /** Lower bound of the spread in the values' own unit (default 0), for very short runs. */
  minSpread?: number;
}

export interface LongRunThreshold {
  n: number;
  median: number;
  mad: number;
  /** max(1.4826 × MAD, minRelativeSpread × median, minSpread). */
  spread: number;
  /** median + k × spread: a value above it is unusually long. */
  threshold: number;
}

/** The bar above which a value is unusually long, or undefined while the history is too short. */
export function longRunThreshold(
  history: readonly number[],
  o: LongRunOptions,
): LongRunThreshold | undefined {
  const xs = finite(history);
  if (xs.length === 0 || xs.length < o.minHistory) return undefined;
  const m = median(xs);
  const d = mad(xs);
  const spread = Math.max(MAD_TO_SIGMA * d, (o.minRelativeSpread ?? 0.2) * Math.abs(m), o.minSpread ?? 0);
  return { n: xs.length, median: m, mad: d, spread, threshold: m + o.k * spread };
}

/** median + k·1.4826·MAD of the history (with the floors above), judged only with minHistory values. */
export function isUnusuallyLong(history: readonly number[], value: number, o: LongRunOptions): boolean {
  const t = longRunThreshold(history, o);
  return t !== undefined && value > t.threshold;
}

export interface SizeOptions {
  /** A value below lowFactor × median is unusually small (0 < lowFactor < 1). */
  lowFactor: number;
  /** A value above highFactor × median is unusually large (highFactor > 1). */
  highFactor: number;
  minHistory: number;
}

export interface SizeBounds {
  n: number;
  median: number;
  low: number;
  high: number;
}

export function sizeBounds(history: readonly number[], o: SizeOptions): SizeBounds | undefined {
  const xs = finite(history);
  if (xs.length === 0 || xs.length < o.minHistory) return undefined;
  const m = median(xs);
  return { n: xs.length, median: m, low: o.lowFactor * m, high: o.highFactor * m };
}

/**
 * Sizes are judged by ratio to the median rather than by MAD: sizes of full backups grow slowly
 * and steadily, so a MAD band would be tight and flag plain growth; "half of the usual" or "twice
 * the usual" is what an operator wants to hear about (a lost schema, a runaway table).
 */
export function sizeAnomaly(
  history: readonly number[],
  value: number,
  o: SizeOptions,
): "small" | "large" | undefined {
  const b = sizeBounds(history, o);
  if (!b || !Number.isFinite(value)) return undefined;
  if (value < b.low) return "small";
  if (value > b.high) return "large";
  return undefined;
}

export function isUnusualSize(history: readonly number[], value: number, o: SizeOptions): boolean {
  return sizeAnomaly(history, value, o) !== undefined;
}
