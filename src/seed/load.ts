import type { ColumnSet } from 'pg-promise';
import { hashPassword } from '../auth/passwords.js';
import { pgp, type Db, type Tx } from '../db/pg.js';
import { generateDemo } from './generate.js';
import type { DemoData, DemoUserRow } from './rows.js';

export type DemoTable = keyof DemoData;

type UserInsert = DemoUserRow & { password_hash: string };
type Columns<T> = readonly (keyof T & string)[];

/** Every demo table in foreign-key order, with the columns the seed writes. */
const COLUMNS: { [K in DemoTable]: Columns<K extends 'users' ? UserInsert : DemoData[K][number]> } = {
  warehouses: ['id', 'code', 'name', 'name_ar', 'city', 'is_active'],
  categories: ['id', 'parent_id', 'name', 'name_ar', 'sort_order', 'is_active'],
  products: ['id', 'sku', 'barcode', 'name', 'name_ar', 'description', 'description_ar', 'category_id', 'unit',
    'pack_size', 'base_price', 'is_active'],
  pricelists: ['id', 'code', 'name', 'name_ar', 'currency', 'is_active'],
  prices: ['id', 'pricelist_id', 'product_id', 'price'],
  stock: ['id', 'product_id', 'warehouse_id', 'qty', 'reserved'],
  salesmen: ['id', 'code', 'name', 'name_ar', 'phone', 'kind', 'warehouse_id', 'is_active'],
  clients: ['id', 'code', 'name', 'name_ar', 'phone', 'email', 'address', 'city', 'type', 'pricelist_id',
    'salesman_id', 'credit_limit', 'balance', 'allow_backorder', 'is_active'],
  users: ['id', 'email', 'password_hash', 'role', 'display_name', 'salesman_id', 'client_id', 'is_active', 'created_at'],
  orders: ['id', 'client_id', 'salesman_id', 'warehouse_id', 'created_by', 'status', 'requested_delivery', 'notes',
    'total', 'placed_at', 'created_at'],
  order_lines: ['order_id', 'line_no', 'product_id', 'qty', 'unit_price', 'line_total', 'note'],
};

export const DEMO_TABLES = Object.keys(COLUMNS) as DemoTable[];

/** Tables whose `id` is an identity the seed writes explicitly (orders use UUIDs, lines a composite key). */
const IDENTITY_TABLES = DEMO_TABLES.filter((t) => t !== 'orders' && t !== 'order_lines');

const columnSets = Object.fromEntries(
  DEMO_TABLES.map((t) => [t, new pgp.helpers.ColumnSet([...COLUMNS[t]], { table: t })]),
) as Record<DemoTable, ColumnSet>;

/**
 * Rows per multi-row INSERT. The change-capture triggers run once per statement (they are
 * statement-level with transition tables), so a few large statements keep the load fast;
 * 5,000 product rows make a ~2 MB statement, still quick to format and to parse.
 */
const CHUNK = 5000;

export interface SeedOptions {
  scale: number;
  seed: number;
  /** the password of every demo login */
  password: string;
  /** empty the demo tables first (TRUNCATE ... RESTART IDENTITY CASCADE) */
  reset?: boolean;
  log?: (msg: string) => void;
}

export interface SeedReport {
  scale: number;
  seed: number;
  counts: Record<DemoTable, number>;
  elapsedMs: number;
}

/**
 * Writes the demo data set for `scale` and `seed` in one transaction: all of it or none.
 * Refuses a database that already holds any demo-table rows (an ERP's real data, or an
 * earlier seed) unless `reset` is set.
 */
export async function seedDemo(db: Db, opts: SeedOptions): Promise<SeedReport> {
  const started = performance.now();
  const log = opts.log ?? (() => {});
  const data = generateDemo({ scale: opts.scale, seed: opts.seed });
  log(`generated scale ${opts.scale} seed ${opts.seed} in ${Math.round(performance.now() - started)} ms`);

  // One hash shared by every demo user: scrypt costs ~50 ms by design, and at scale 10
  // there are 1,005 users (nearly a minute of hashing). The demo password is public anyway.
  const passwordHash = await hashPassword(opts.password);

  await db.tx('seed', async (t) => {
    if (opts.reset) {
      log('reset: truncating the demo tables');
      await t.none('TRUNCATE $1:name, sync_mutations RESTART IDENTITY CASCADE', [DEMO_TABLES]);
    } else {
      await refuseNonEmpty(t);
    }
    for (const table of DEMO_TABLES) {
      const rows: readonly object[] =
        table === 'users' ? data.users.map((u): UserInsert => ({ ...u, password_hash: passwordHash })) : data[table];
      const tableStarted = performance.now();
      await insertChunked(t, columnSets[table], rows);
      log(`${table}: ${rows.length} rows in ${Math.round(performance.now() - tableStarted)} ms`);
    }
    // Explicit ids leave the identity sequences at 1: move them past the seeded rows so
    // the next INSERT (the ERP's, or a test's) gets a free id.
    for (const table of IDENTITY_TABLES) {
      await t.one(`SELECT setval(pg_get_serial_sequence($1, 'id'), (SELECT max(id) FROM $1:name))`, [table]);
    }
    // Fresh statistics, so the first sync queries after seeding get good plans.
    await t.none('ANALYZE $1:name', [DEMO_TABLES]);
  });

  const counts = Object.fromEntries(DEMO_TABLES.map((t) => [t, data[t].length])) as Record<DemoTable, number>;
  const elapsedMs = Math.round(performance.now() - started);
  log(`seeded in ${elapsedMs} ms`);
  return { scale: opts.scale, seed: opts.seed, counts, elapsedMs };
}

async function refuseNonEmpty(t: Tx): Promise<void> {
  const probes = DEMO_TABLES.map((table) => pgp.as.format('EXISTS (SELECT 1 FROM $1:name) AS $1:name', [table]));
  const found = await t.one<Record<DemoTable, boolean>>(`SELECT ${probes.join(', ')}`);
  const filled = DEMO_TABLES.filter((table) => found[table]);
  if (filled.length > 0) {
    throw new Error(
      `refusing to seed: the database already has data (${filled.join(', ')}). ` +
        'Seeding would mix demo rows into it. Use a fresh database, or pass --reset ' +
        '(seedDemo reset: true) to TRUNCATE every demo table first.',
    );
  }
}

async function insertChunked(t: Tx, columns: ColumnSet, rows: readonly object[]): Promise<void> {
  for (let i = 0; i < rows.length; i += CHUNK) {
    await t.none(pgp.helpers.insert(rows.slice(i, i + CHUNK), columns));
  }
}
