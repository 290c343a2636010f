import type { ColumnSet } from 'pg-promise';
import { hashPassword } from '../auth/passwords.js';
import { pgp, type Db, type Tx } from '../db/pg.js';
import { generateDemo } from './generate.js';
import type { DemoData, DemoUserRow } from './rows.js';

export type DemoTable = keyof DemoData;

type UserInsert = DemoUserRow & { password_hash: string };
type Columns<T> = readonly (keyof T & string)[];

/**
 * Every table the seed writes, in foreign-key order, with the columns it writes. `users`
 * is fieldsync's own login table (`<schema>.users`); the others are the demo ERP's, in
 * public (sql/demo/001.do.erp-schema.sql).
 */
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
  users: ['id', 'email', 'password_hash', 'role', 'display_name', 'claims', 'is_active', 'created_at'],
  orders: ['id', 'client_id', 'salesman_id', 'warehouse_id', 'created_by', 'status', 'requested_delivery', 'notes',
    'total', 'placed_at', 'created_at'],
  order_lines: ['order_id', 'line_no', 'product_id', 'qty', 'unit_price', 'line_total', 'note'],
};

/** Every table the seed writes, in foreign-key order (`users` is in fieldsync's schema). */
export const DEMO_TABLES = Object.keys(COLUMNS) as DemoTable[];

/** The demo ERP's tables (schema public), in foreign-key order. */
export const DEMO_ERP_TABLES = DEMO_TABLES.filter((t) => t !== 'users') as Exclude<DemoTable, 'users'>[];

/** The schema the demo ERP's tables live in. */
export const DEMO_ERP_SCHEMA = 'public';

/** Quoted, schema-qualified name of a seeded table: `users` in fieldsync's schema, the rest in public. */
export function demoTableName(table: DemoTable, schema = 'fieldsync'): string {
  return `${pgp.as.name(table === 'users' ? schema : DEMO_ERP_SCHEMA)}.${pgp.as.name(table)}`;
}

/** Tables whose `id` is an identity the seed writes explicitly (orders use UUIDs, lines a composite key). */
const IDENTITY_TABLES = DEMO_TABLES.filter((t) => t !== 'orders' && t !== 'order_lines');

function columnSet(table: DemoTable, schema: string): ColumnSet {
  const columns = COLUMNS[table].map((name) => (name === 'claims' ? { name, mod: ':json' as const, cast: 'jsonb' } : name));
  return new pgp.helpers.ColumnSet(columns, {
    table: new pgp.helpers.TableName({ table, schema: table === 'users' ? schema : DEMO_ERP_SCHEMA }),
  });
}

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
  /** fieldsync's own schema, where the logins go (the sync config's `schema`; default 'fieldsync') */
  schema?: string;
  /**
   * empty the demo tables, fieldsync's users and its mutation ledger first (TRUNCATE ...
   * RESTART IDENTITY CASCADE; fieldsync's truncate triggers bump the epoch, so devices
   * start over)
   */
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
 * Needs the demo ERP schema (applyDemoSchema) and fieldsync installed (install) in
 * `schema`: the logins go to fieldsync's users table, with the claims the demo config's
 * roles need. Refuses a database that already holds demo rows or users (an ERP's real
 * data, or an earlier seed) unless `reset` is set.
 */
export async function seedDemo(db: Db, opts: SeedOptions): Promise<SeedReport> {
  const started = performance.now();
  const schema = opts.schema ?? 'fieldsync';
  const log = opts.log ?? (() => {});
  const data = generateDemo({ scale: opts.scale, seed: opts.seed });
  log(`generated scale ${opts.scale} seed ${opts.seed} in ${Math.round(performance.now() - started)} ms`);

  // One hash shared by every demo user: scrypt costs ~50 ms by design, and at scale 10
  // there are 1,005 users (nearly a minute of hashing). The demo password is public anyway.
  const passwordHash = await hashPassword(opts.password);
  const name = (table: DemoTable) => demoTableName(table, schema);

  await db.tx('seed', async (t) => {
    await requireTables(t, schema);
    if (opts.reset) {
      log(`reset: truncating the demo tables, ${schema}.users and ${schema}.mutations`);
      const all = [...DEMO_TABLES.map(name), `${pgp.as.name(schema)}.mutations`];
      await t.none(`TRUNCATE ${all.join(', ')} RESTART IDENTITY CASCADE`);
    } else {
      await refuseNonEmpty(t, schema);
    }
    for (const table of DEMO_TABLES) {
      const rows: readonly object[] =
        table === 'users' ? data.users.map((u): UserInsert => ({ ...u, password_hash: passwordHash })) : data[table];
      const tableStarted = performance.now();
      await insertChunked(t, columnSet(table, schema), rows);
      log(`${table}: ${rows.length} rows in ${Math.round(performance.now() - tableStarted)} ms`);
    }
    // Explicit ids leave the identity sequences at 1: move them past the seeded rows so
    // the next INSERT (the ERP's, a login created by an admin, a test's) gets a free id.
    for (const table of IDENTITY_TABLES) {
      await t.one(`SELECT setval(pg_get_serial_sequence($1, 'id'), (SELECT max(id) FROM $1:raw))`, [name(table)]);
    }
    // Fresh statistics, so the first sync queries after seeding get good plans (the items
    // are written after this, by the indexer, which analyzes them after a large change).
    await t.none(`ANALYZE ${DEMO_TABLES.map(name).join(', ')}`);
  });

  const counts = Object.fromEntries(DEMO_TABLES.map((t) => [t, data[t].length])) as Record<DemoTable, number>;
  const elapsedMs = Math.round(performance.now() - started);
  log(`seeded in ${elapsedMs} ms`);
  return { scale: opts.scale, seed: opts.seed, counts, elapsedMs };
}

/** A clear error instead of "relation does not exist" when a step before seeding was skipped. */
async function requireTables(t: Tx, schema: string): Promise<void> {
  const erp = DEMO_ERP_TABLES.map((table) => demoTableName(table, schema));
  const own = ['users', 'mutations', 'items'].map((table) => `${pgp.as.name(schema)}.${pgp.as.name(table)}`);
  const missing = new Set(
    await t.map('SELECT name FROM unnest($1::text[]) name WHERE to_regclass(name) IS NULL', [[...erp, ...own]], (r: { name: string }) => r.name),
  );
  const erpMissing = erp.filter((n) => missing.has(n));
  if (erpMissing.length > 0) {
    throw new Error(`cannot seed: the demo ERP schema is missing (${erpMissing.join(', ')}). Apply it first: applyDemoSchema (npm run seed does).`);
  }
  if (missing.size > 0) {
    throw new Error(`cannot seed: fieldsync is not installed in schema "${schema}" (${[...missing].join(', ')} missing). Install it first: install() (npm run seed does).`);
  }
}

async function refuseNonEmpty(t: Tx, schema: string): Promise<void> {
  const probes = DEMO_TABLES.map((table) => pgp.as.format('EXISTS (SELECT 1 FROM $1:raw) AS $2:name', [demoTableName(table, schema), table]));
  const found = await t.one<Record<DemoTable, boolean>>(`SELECT ${probes.join(', ')}`);
  const filled = DEMO_TABLES.filter((table) => found[table]).map((table) => (table === 'users' ? `${schema}.users` : table));
  if (filled.length > 0) {
    throw new Error(
      `refusing to seed: the database already has data (${filled.join(', ')}). ` +
        'Seeding would mix demo rows into it. Use a fresh database, or pass --reset ' +
        `(seedDemo reset: true) to TRUNCATE every demo table and ${schema}.users first.`,
    );
  }
}

async function insertChunked(t: Tx, columns: ColumnSet, rows: readonly object[]): Promise<void> {
  for (let i = 0; i < rows.length; i += CHUNK) {
    await t.none(pgp.helpers.insert(rows.slice(i, i + CHUNK), columns));
  }
}
