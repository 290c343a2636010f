import test from 'ava';
import pgPromise from 'pg-promise';
import type pg from 'pg-promise/typescript/pg-subset.js';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { Rand as Rng } from '../../src/seed/random.js';
import { Device } from '../helpers/device.js';
import { FIXTURE_PASSWORD, loadFixture } from '../helpers/fixture.js';
import { erpPool } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/**
 * Convergence (DESIGN §4.1–4.3) as a seeded property test. Several writers act like
 * the ERP in plain SQL on their own connections: inserts, updates, deletes, clients
 * moved between salesmen, pricelists changed, prices moved, delete+reinsert of an id,
 * transactions left open across many pulls then committed or rolled back. Devices of
 * six roles/apps pull with tiny page limits in between, concurrently. At the end every
 * device, pulled until hasMore is false, must hold exactly its bucket set's rows (ids,
 * versions and content) as a direct SQL query sees them, and every checksum must match.
 *
 * SEED=n replays a run; SOAK=1 runs for SOAK_SECONDS (default 300); OPS sets the number
 * of writer operations of a normal run (default 300).
 */
const seed = Number(process.env.SEED ?? Date.now() % 2 ** 31);
const soak = process.env.SOAK === '1';
const soakMs = Number(process.env.SOAK_SECONDS ?? 300) * 1000;
const OPS = Number(process.env.OPS ?? 300);

let s: TestServer;
let erp: pgPromise.IDatabase<unknown>;

test.before(async () => {
  s = await startTestServer({ DOORBELL_POLL_MS: '50' });
  await loadFixture(s.db);
  await s.settle();
  erp = erpPool(s.tdb.url, 8);
});
test.after.always(async () => {
  await erp?.$pool.end();
  await s?.close();
});

/** One ERP-like operation: SQL run in the writer's current transaction. */
type Op = (r: Rng) => string;

const ids = { product: 30, client: 12 };
const orders: string[] = [];

const ops: Record<string, Op> = {
  productUpdate: (r) => `UPDATE products SET base_price = ${r.int(1, 9999) / 100}, name_ar = 'منتج محدّث ' || ${r.int(1, 999)} WHERE id = ${r.int(1, ids.product)}`,
  productInsert: (r) => {
    const id = ++ids.product;
    return `INSERT INTO products (id, sku, name, name_ar, category_id, base_price) VALUES (${id}, 'NEW-${id}', 'New ${id}', 'جديد ${id}', ${r.int(1, 6)}, ${r.int(100, 900) / 100});
            INSERT INTO prices (pricelist_id, product_id, price) VALUES (${r.int(1, 3)}, ${id}, ${r.int(100, 900) / 100});
            INSERT INTO stock (product_id, warehouse_id, qty) VALUES (${id}, ${r.int(1, 3)}, ${r.int(0, 40)})`;
  },
  productDelete: (r) => {
    const id = r.int(1, ids.product);
    return `DELETE FROM products WHERE id = ${id} AND NOT EXISTS (SELECT 1 FROM order_lines WHERE product_id = ${id})`;
  },
  categoryRename: (r) => `UPDATE categories SET name_ar = 'فئة ' || ${r.int(1, 99)} WHERE id = ${r.int(1, 6)}`,
  stockUpdate: (r) => `UPDATE stock SET qty = ${r.int(0, 500)} WHERE product_id = ${r.int(1, ids.product)}`,
  stockBurst: (r) => `UPDATE stock SET qty = qty + 1 WHERE warehouse_id = ${r.int(1, 3)} AND product_id % 4 = ${r.int(0, 3)}`,
  priceUpdate: (r) => `UPDATE prices SET price = ${r.int(1, 9999) / 100} WHERE product_id = ${r.int(1, ids.product)} AND pricelist_id = ${r.int(1, 3)}`,
  priceMove: (r) => `UPDATE prices SET pricelist_id = ${r.int(1, 3)} WHERE product_id = ${r.int(1, ids.product)} AND pricelist_id = ${r.int(1, 3)}`,
  priceDeleteReinsert: (r) =>
    `WITH d AS (DELETE FROM prices WHERE product_id = ${r.int(1, ids.product)} AND pricelist_id = ${r.int(1, 3)} RETURNING *)
     INSERT INTO prices (id, pricelist_id, product_id, price) SELECT id, ${r.int(1, 3)}, product_id, price + 1 FROM d`,
  priceDelete: (r) => `DELETE FROM prices WHERE product_id = ${r.int(1, ids.product)} AND pricelist_id = ${r.int(1, 3)}`,
  clientMove: (r) => `UPDATE clients SET salesman_id = ${r.chance(0.15) ? 'NULL' : r.int(1, 4)} WHERE id = ${r.int(1, ids.client)}`,
  clientPricelist: (r) => `UPDATE clients SET pricelist_id = ${r.chance(0.1) ? 'NULL' : r.int(1, 3)} WHERE id = ${r.int(1, ids.client)}`,
  clientToggle: (r) => `UPDATE clients SET is_active = NOT is_active WHERE id = ${r.int(2, ids.client)}`,
  clientEdit: (r) => `UPDATE clients SET phone = '+9665${r.int(10000000, 99999999)}', name_ar = 'عميل معدّل ' || ${r.int(1, 99)} WHERE id = ${r.int(1, ids.client)}`,
  clientInsert: (r) => {
    const id = ++ids.client;
    return `INSERT INTO clients (id, code, name, name_ar, type, pricelist_id, salesman_id)
            VALUES (${id}, 'N${id}', 'New client ${id}', 'عميل جديد ${id}', 'retail', ${r.int(1, 3)}, ${r.int(1, 4)})`;
  },
  clientDelete: (r) => {
    const id = r.int(13, Math.max(13, ids.client));
    return `DELETE FROM clients WHERE id = ${id} AND NOT EXISTS (SELECT 1 FROM orders WHERE client_id = ${id})`;
  },
  orderInsert: (r) => {
    const id = r.uuid();
    orders.push(id);
    const client = r.int(1, 12);
    return `INSERT INTO orders (id, client_id, salesman_id, warehouse_id, total)
              SELECT '${id}', c.id, c.salesman_id, ${r.int(1, 3)}, 10 FROM clients c WHERE c.id = ${client};
            INSERT INTO order_lines (order_id, line_no, product_id, qty, unit_price, line_total)
              SELECT '${id}', 1, p.id, 2, 5, 10 FROM products p WHERE p.id = ${r.int(1, 30)} AND EXISTS (SELECT 1 FROM orders WHERE id = '${id}')`;
  },
  orderEdit: (r) =>
    orders.length === 0 ? 'SELECT 1' : `UPDATE order_lines SET qty = qty + 1, line_total = line_total + unit_price WHERE order_id = '${r.pick(orders)}'`,
  orderStatus: (r) =>
    orders.length === 0 ? 'SELECT 1' : `UPDATE orders SET status = '${r.pick(['confirmed', 'picking', 'shipped', 'delivered', 'cancelled'])}' WHERE id = '${r.pick(orders)}'`,
  orderMove: (r) => (orders.length === 0 ? 'SELECT 1' : `UPDATE orders SET salesman_id = ${r.int(1, 4)} WHERE id = '${r.pick(orders)}'`),
  orderDelete: (r) => (orders.length === 0 ? 'SELECT 1' : `DELETE FROM orders WHERE id = '${r.pick(orders)}'`),
};
const opNames = Object.keys(ops);

/** A writer: one connection, maybe an open transaction that outlives many pulls. */
class Writer {
  open = false;
  constructor(readonly conn: pgPromise.IConnected<unknown, pg.IClient>) {}

  async run(sql: string, keepOpen: boolean): Promise<'ok' | 'failed'> {
    try {
      if (!this.open) await this.conn.none('BEGIN');
      this.open = true;
      await this.conn.multi(sql);
      if (!keepOpen) await this.end('COMMIT');
      return 'ok';
    } catch {
      await this.end('ROLLBACK'); // lock timeout, unique or FK violation: the transaction is gone
      return 'failed';
    }
  }

  async end(how: 'COMMIT' | 'ROLLBACK'): Promise<void> {
    if (!this.open) return;
    this.open = false;
    try {
      await this.conn.none(how);
    } catch {
      await this.conn.none('ROLLBACK').catch(() => undefined);
    }
  }
}

interface Spec {
  email: string;
  app: string;
  /** collection -> SQL giving (id, v, check) of the rows the device must hold */
  expect: Record<string, string>;
  /** the wire column compared with `check` */
  check: Record<string, string>;
}

const catalog = {
  warehouses: `SELECT id::text, _tx::text AS v, name_ar AS check FROM warehouses`,
  categories: `SELECT id::text, _tx::text AS v, name_ar AS check FROM categories`,
  products: `SELECT id::text, _tx::text AS v, name_ar AS check FROM products`,
  pricelists: `SELECT id::text, _tx::text AS v, name_ar AS check FROM pricelists`,
};
const checkCols = { warehouses: 'name_ar', categories: 'name_ar', products: 'name_ar', pricelists: 'name_ar', prices: 'price', stock: 'qty', clients: 'name_ar', orders: 'total' };
const salesmanPrices = (sid: number) =>
  `SELECT id::text, _tx::text AS v, price::text AS check FROM prices WHERE pricelist_id IN
     (SELECT pricelist_id FROM clients WHERE salesman_id = ${sid} AND is_active AND pricelist_id IS NOT NULL)`;
const salesmanStock = (sid: number) =>
  `SELECT id::text, _tx::text AS v, qty::text AS check FROM stock WHERE warehouse_id IN
     (SELECT coalesce(warehouse_id, w.id) FROM salesmen s, warehouses w WHERE s.id = ${sid} AND (s.warehouse_id IS NULL OR s.warehouse_id = w.id))`;

const specs: Spec[] = [
  {
    email: 'admin@fixture.test',
    app: 'manager',
    expect: {
      ...catalog,
      prices: `SELECT id::text, _tx::text AS v, price::text AS check FROM prices`,
      stock: `SELECT id::text, _tx::text AS v, qty::text AS check FROM stock`,
      clients: `SELECT id::text, _tx::text AS v, name_ar AS check FROM clients`,
      orders: `SELECT id::text, _tx::text AS v, total::text AS check FROM orders`,
    },
    check: checkCols,
  },
  ...[1, 2].map((sid) => ({
    email: `salesman${sid}@fixture.test`,
    app: sid === 1 ? 'salesman' : 'travel_sales',
    expect: {
      ...catalog,
      prices: salesmanPrices(sid),
      stock: salesmanStock(sid),
      clients: `SELECT id::text, _tx::text AS v, name_ar AS check FROM clients WHERE salesman_id = ${sid}`,
      orders: `SELECT id::text, _tx::text AS v, total::text AS check FROM orders WHERE salesman_id = ${sid}`,
    },
    check: checkCols,
  })),
  {
    email: 'salesman3@fixture.test',
    app: 'partner_sales',
    expect: {
      categories: catalog.categories,
      products: catalog.products,
      pricelists: catalog.pricelists,
      prices: salesmanPrices(3),
      stock: salesmanStock(3),
      clients: `SELECT id::text, _tx::text AS v, name_ar AS check FROM clients WHERE salesman_id = 3`,
      orders: `SELECT id::text, _tx::text AS v, total::text AS check FROM orders WHERE salesman_id = 3`,
    },
    check: checkCols,
  },
  {
    email: 'client@fixture.test',
    app: 'client_ordering',
    expect: {
      categories: catalog.categories,
      products: catalog.products,
      pricelists: catalog.pricelists,
      prices: `SELECT id::text, _tx::text AS v, price::text AS check FROM prices WHERE pricelist_id = (SELECT pricelist_id FROM clients WHERE id = 1)`,
      orders: `SELECT id::text, _tx::text AS v, total::text AS check FROM orders WHERE client_id = 1`,
    },
    check: checkCols,
  },
  {
    email: 'warehouse@fixture.test',
    app: 'warehouse',
    expect: {
      warehouses: catalog.warehouses,
      categories: catalog.categories,
      products: catalog.products,
      stock: `SELECT id::text, _tx::text AS v, qty::text AS check FROM stock`,
    },
    check: checkCols,
  },
];

async function login(email: string): Promise<string> {
  const res = await s.post('/v1/auth/login', { email, password: FIXTURE_PASSWORD });
  return ((await res.json()) as { token: string }).token;
}

test('devices of every role converge to their bucket sets under concurrent ERP writes', async (t) => {
  t.timeout(soak ? soakMs + 600_000 : 300_000);
  t.log(`seed=${seed} (replay with SEED=${seed})`);
  const r = new Rng(xoroshiro128plus(seed));
  const devices = await Promise.all(
    specs.map(async (spec) => {
      const token = await login(spec.email);
      return new Device(spec.email, (cursor, limit) =>
        s.post('/v1/sync/pull', { ...(cursor && { cursor }), app: spec.app, limit }, { authorization: `Bearer ${token}` }), s.url,
      );
    }),
  );
  const writers: Writer[] = [];
  for (let i = 0; i < 4; i++) {
    const conn = await erp.connect();
    await conn.none(`SET lock_timeout = '150ms'; SET statement_timeout = '5s'`);
    writers.push(new Writer(conn));
  }

  const stats = { ops: 0, failed: 0, commits: 0, rollbacks: 0, pulls: 0, longTx: 0 };
  const started = Date.now();
  const done = () => (soak ? Date.now() - started > soakMs : stats.ops >= OPS);
  const leaks: string[] = [];
  try {
    while (!done()) {
      const batch: Promise<unknown>[] = [];
      const busy = new Set<Writer>();
      for (let k = r.int(1, 4); k > 0; k--) {
        if (r.chance(0.55)) {
          const w = r.pick(writers);
          if (busy.has(w)) continue; // one statement at a time per connection
          busy.add(w);
          if (w.open && r.chance(0.35)) {
            const how = r.chance(0.75) ? 'COMMIT' : 'ROLLBACK';
            how === 'COMMIT' ? stats.commits++ : stats.rollbacks++;
            batch.push(w.end(how));
          } else {
            const keepOpen = w.open ? r.chance(0.5) : r.chance(0.25);
            if (keepOpen && !w.open) stats.longTx++;
            stats.ops++;
            batch.push(w.run(ops[r.pick(opNames)]!(r), keepOpen).then((x) => x === 'failed' && stats.failed++));
          }
        } else {
          const d = r.pick(devices);
          if (batch.length > 0 && r.chance(0.3)) await Promise.all(batch.splice(0)); // vary the overlap
          stats.pulls++;
          batch.push(
            d.pullOnce(r.int(1, 8)).then(({ status, body }) => {
              if (status !== 200 && status !== 410) leaks.push(`${d.name}: ${status} ${JSON.stringify(body)}`);
              const sid = /^salesman(\d)@/.exec(d.name)?.[1];
              if (status === 200 && sid) {
                for (const [name, sec] of Object.entries((body as { changes: Record<string, { cols: string[]; rows: unknown[][] }> }).changes)) {
                  if (name !== 'clients' && name !== 'orders') continue;
                  const col = sec.cols.indexOf('salesman');
                  for (const row of sec.rows) if (row[col] !== Number(sid)) leaks.push(`${d.name} got ${name} ${row[1]} of salesman ${row[col]}`);
                }
              }
            }),
          );
        }
      }
      await Promise.all(batch);
    }
  } finally {
    for (const w of writers) {
      await w.end(r.chance(0.7) ? 'COMMIT' : 'ROLLBACK');
      w.conn.done();
    }
  }
  t.log({ ...stats, seconds: Math.round((Date.now() - started) / 1000) });
  t.deepEqual(leaks, [], `seed=${seed}: no errors, no other salesman's rows`);

  // quiet: the heads catch up with the last commit, then every device catches up
  await s.settle();
  for (const [i, d] of devices.entries()) {
    await d.catchUp(r.int(1, 50));
    const spec = specs[i]!;
    for (const [name, sql] of Object.entries(spec.expect)) {
      const sorted = (pairs: [string, string][]) => Object.fromEntries(pairs.sort(([a], [b]) => a.localeCompare(b)));
      const want = sorted((await s.db.any<{ id: string; v: string; check: string }>(sql)).map((x) => [x.id, `${x.v}|${x.check}`]));
      const got = sorted([...d.table(name)].map(([id, x]) => [id, `${x.v}|${String(x.row[spec.check[name]!])}`]));
      t.deepEqual(got, want, `seed=${seed}: ${d.name} (${spec.app}) ${name}`);
    }
    const synced = new Set(Object.keys(spec.expect));
    for (const name of d.tables.keys()) t.true(synced.has(name), `seed=${seed}: ${d.name} holds no ${name}`);
  }

  // every bucket's checksum is given once quiet, and matches the device's own computation
  for (const d of devices) {
    let sums: Record<string, number> = {};
    for (let attempt = 0; attempt < 20; attempt++) {
      await d.pullOnce(100);
      sums = d.last!.checksums;
      if (Object.keys(sums).length === d.last!.buckets.current.length) break;
      await new Promise((res) => setTimeout(res, 25));
    }
    t.deepEqual(Object.keys(sums).sort(), [...d.last!.buckets.current].sort(), `seed=${seed}: ${d.name} has every checksum`);
    for (const [b, sum] of Object.entries(sums)) t.is(d.checksum(b), sum, `seed=${seed}: ${d.name} checksum of ${b}`);
  }
});
