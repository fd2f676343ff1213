// Sizing the dataset: how many rows of each table make the requested InnoDB volume.
import { DEPARTMENTS } from "./dataset-values.ts";

// ---------------------------------------------------------------------------------------------------------
// Sizing. The target is what information_schema reports (data_length + index_length), which counts the
// pages InnoDB has reserved: each index segment takes single 16 KiB pages up to 32, then whole 1 MiB
// extents. Small datasets are dominated by that rounding, so the plan models it instead of dividing by an
// average row size. Row shapes are bytes per row measured on MariaDB 10.11 (clustered index, then each
// secondary index).

export interface Shape {
  data: number;
  indexes: readonly number[];
}

export const SHAPES = {
  departments: { data: 100, indexes: [40] },
  employees: { data: 1633, indexes: [40, 40] },
  customers: { data: 300, indexes: [60, 45, 41] },
  products: { data: 2856, indexes: [31, 31] },
  orders: { data: 366, indexes: [40, 40] },
  orderItems: { data: 67, indexes: [35] },
  events: { data: 609, indexes: [22, 26, 26] },
  orderStatusLog: { data: 0, indexes: [0] },
} as const satisfies Record<string, Shape>;

export const ITEMS_PER_ORDER = 3.5;
export const PAGE = 16384;
export const FRAGMENT_PAGES = 32;
export const EXTENT_PAGES = 64;
/** Where the volume goes; the big three (events, orders, order_items) take 80%. */
export const MEDIUM_SHARES = { employees: 0.07, customers: 0.09, products: 0.04 } as const;
export const BIG_SHARES = { events: 0.38, orders: 0.42 } as const;
export const MIN_ROWS = 10;
export const DEPARTMENT_COUNT = DEPARTMENTS.length * 2;

export interface DatasetPlan {
  departments: number;
  employees: number;
  customers: number;
  products: number;
  orders: number;
  events: number;
}

export function segmentBytes(bytes: number): number {
  const pages = Math.max(1, Math.ceil(bytes / PAGE));
  // Page fill varies a little, so a segment near the fragment limit is counted as already holding an
  // extent: plans then keep clear of the 1 MiB cliff instead of landing on either side of it by chance.
  if (pages <= FRAGMENT_PAGES - 3) return pages * PAGE;
  const extents = Math.max(1, Math.ceil((pages - FRAGMENT_PAGES) / EXTENT_PAGES));
  return (FRAGMENT_PAGES + extents * EXTENT_PAGES) * PAGE;
}

export function tableBytes(shape: Shape, rows: number): number {
  let total = segmentBytes(rows * shape.data);
  for (const i of shape.indexes) total += segmentBytes(rows * i);
  return total;
}

export function bigBytes(orders: number, events: number): number {
  return (
    tableBytes(SHAPES.orders, orders) +
    tableBytes(SHAPES.orderItems, Math.round(orders * ITEMS_PER_ORDER)) +
    tableBytes(SHAPES.events, events)
  );
}

/** The most rows (at least MIN_ROWS) whose modelled size stays within budget. */
export function rowsWithin(size: (rows: number) => number, budget: number): number {
  let lo = MIN_ROWS;
  let hi = MIN_ROWS;
  while (size(hi * 2) <= budget) hi *= 2;
  hi *= 2;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (size(mid) <= budget) lo = mid;
    else hi = mid;
  }
  return lo;
}

/** Row counts for a dataset of about sizeBytes. */
export function planDataset(sizeBytes: number): DatasetPlan {
  const fixed = tableBytes(SHAPES.departments, DEPARTMENT_COUNT) + tableBytes(SHAPES.orderStatusLog, 0);
  const medium = {
    employees: rowsWithin((n) => tableBytes(SHAPES.employees, n), sizeBytes * MEDIUM_SHARES.employees),
    customers: rowsWithin((n) => tableBytes(SHAPES.customers, n), sizeBytes * MEDIUM_SHARES.customers),
    products: rowsWithin((n) => tableBytes(SHAPES.products, n), sizeBytes * MEDIUM_SHARES.products),
  };
  const rest =
    sizeBytes -
    fixed -
    tableBytes(SHAPES.employees, medium.employees) -
    tableBytes(SHAPES.customers, medium.customers) -
    tableBytes(SHAPES.products, medium.products);
  // The big tables grow together (in units of 1 KB of their share) until they fill what is left; the step
  // just past the budget wins when it lands closer.
  const orderBytes = SHAPES.orders.data + ITEMS_PER_ORDER * SHAPES.orderItems.data;
  const big = (k: number) => ({
    orders: Math.max(MIN_ROWS, Math.round((k * 1000 * BIG_SHARES.orders) / orderBytes)),
    events: Math.max(MIN_ROWS, Math.round((k * 1000 * BIG_SHARES.events) / SHAPES.events.data)),
  });
  const sizeOf = (k: number) => {
    const b = big(k);
    return bigBytes(b.orders, b.events);
  };
  const k = rowsWithin(sizeOf, rest);
  const chosen = Math.abs(sizeOf(k + 1) - rest) < Math.abs(rest - sizeOf(k)) ? k + 1 : k;
  return { departments: DEPARTMENT_COUNT, ...medium, ...big(chosen) };
}

/** Modelled data + index volume of a plan, per table. */
export function planBytes(p: DatasetPlan): Record<keyof DatasetPlan, number> {
  return {
    departments: tableBytes(SHAPES.departments, p.departments) + tableBytes(SHAPES.orderStatusLog, 0),
    employees: tableBytes(SHAPES.employees, p.employees),
    customers: tableBytes(SHAPES.customers, p.customers),
    products: tableBytes(SHAPES.products, p.products),
    orders: bigBytes(p.orders, p.events) - tableBytes(SHAPES.events, p.events),
    events: tableBytes(SHAPES.events, p.events),
  };
}
