import { buildCategories, buildPricelists, buildPrices, buildProducts, buildStock } from './catalog.js';
import { buildOrders } from './orders.js';
import { buildClients, buildSalesmen, buildUsers, buildWarehouses, Phones } from './people.js';
import { randomStreams } from './random.js';
import type { DemoData } from './rows.js';

/**
 * The fixed "now" of the demo data. Orders and accounts are dated relative to it, never
 * to the clock, so a seed run today and one next year write identical rows.
 */
export const DEMO_EPOCH_MS = Date.UTC(2026, 0, 1);

export interface DemoCounts {
  products: number;
  clients: number;
  salesmen: number;
  orders: number;
}

// Scale 1 is today's business, scale 10 the growth target (DESIGN §1).
const AT_1: DemoCounts = { products: 2218, clients: 500, salesmen: 100, orders: 300 };
const AT_10: DemoCounts = { products: 20_000, clients: 5000, salesmen: 1000, orders: 3000 };
// Floors for tiny fractional scales: enough rows for every relation to be exercised.
const MIN: DemoCounts = { products: 0, clients: 5, salesmen: 3, orders: 5 };
export const MAX_SCALE = 100;

export interface GenerateOptions {
  /** > 0; 1 = today's business, 10 = growth target, linear in between and beyond */
  scale: number;
  /** integer 0..2^32-1 */
  seed: number;
}

export function validateOptions(opts: GenerateOptions): void {
  if (!Number.isFinite(opts.scale) || opts.scale <= 0 || opts.scale > MAX_SCALE) {
    throw new Error(`seed: scale must be a number > 0 and <= ${MAX_SCALE} (got ${opts.scale})`);
  }
  if (!Number.isInteger(opts.seed) || opts.seed < 0 || opts.seed > 0xffff_ffff) {
    throw new Error(`seed: seed must be an integer from 0 to 4294967295 (got ${opts.seed})`);
  }
}

/** Row counts for a scale: linear through (1, today) and (10, growth target). */
export function demoCounts(scale: number): DemoCounts {
  const at = (k: keyof DemoCounts) => Math.max(MIN[k], Math.round(AT_1[k] + ((scale - 1) * (AT_10[k] - AT_1[k])) / 9));
  return { products: at('products'), clients: at('clients'), salesmen: at('salesmen'), orders: at('orders') };
}

/**
 * All demo rows for a scale and seed. Pure: no I/O, no clock, no Math.random; the same
 * options always give the same rows, ids included (1..n per table, so foreign keys are
 * known before anything is written).
 */
export function generateDemo(opts: GenerateOptions): DemoData {
  validateOptions(opts);
  const counts = demoCounts(opts.scale);
  const rand = randomStreams(opts.seed, ['products', 'prices', 'stock', 'people', 'clients', 'orders'] as const);

  const warehouses = buildWarehouses();
  const categories = buildCategories();
  const catalog = buildProducts(rand.products, categories.leaves, Math.max(counts.products, categories.leaves.length));
  const pricelists = buildPricelists();
  const prices = buildPrices(rand.prices, catalog);
  const stock = buildStock(rand.stock, catalog, warehouses);
  const phones = new Phones(rand.people);
  const salesmen = buildSalesmen(rand.people, phones, counts.salesmen);
  const clients = buildClients(rand.clients, phones, counts.clients, salesmen);
  // Accounts predate the oldest order (90 days).
  const users = buildUsers(salesmen.rows, clients, new Date(DEMO_EPOCH_MS - 120 * 86_400_000).toISOString());
  const orders = buildOrders(rand.orders, counts.orders, {
    epochMs: DEMO_EPOCH_MS,
    products: catalog.rows,
    clients,
    salesmen: salesmen.rows,
    users,
    prices: prices.table,
  });

  return {
    warehouses,
    categories: categories.rows,
    products: catalog.rows,
    pricelists,
    prices: prices.rows,
    stock,
    salesmen: salesmen.rows,
    clients,
    users,
    orders: orders.orders,
    order_lines: orders.lines,
  };
}
