import test from 'ava';
import type pgPromise from 'pg-promise';
import { runConvergence, type DeviceSpec, type Op } from '../helpers/convergence.js';
import { FIXTURE_PASSWORD, loadFixture } from '../helpers/fixture.js';
import { erpPool } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/**
 * Convergence (DESIGN §4.1–4.3) as a seeded property test on the demo ERP (the second
 * ERP's is convergence-tsh.test.ts; both run test/helpers/convergence.ts). Several
 * writers act like the ERP in plain SQL on their own connections: inserts, updates,
 * deletes, clients moved between salesmen, pricelists changed, prices moved,
 * delete+reinsert of an id, transactions left open across many pulls then committed or
 * rolled back. Devices of six roles/apps pull with tiny page limits in between,
 * concurrently; no salesman ever receives another salesman's clients or orders, the
 * client app no other client's orders. At the end every device, pulled until hasMore
 * is false, must hold exactly its bucket set's rows (ids, versions and content) as a
 * direct SQL query sees them, and every checksum must match.
 *
 * A row's expected version is the transaction of its live items in fieldsync's items
 * table (all live items of a demo row share one); membership and content come from the
 * ERP tables.
 *
 * SEED=n replays a run; SOAK=1 runs for SOAK_SECONDS (default 300); OPS sets the number
 * of writer operations of a normal run (default 300).
 */

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

/** SQL: the expected version of row r of a collection (its table has the same name). */
const v = (coll: string) => `(SELECT max(i.seq)::text FROM fieldsync.items i WHERE i.coll = '${coll}' AND i.row_key = r.id::text AND NOT i.deleted)`;
/** SQL: (id, v, check) of the rows of a collection matching `where` (over r). */
const rows = (coll: string, check: string, where = 'true') =>
  `SELECT r.id::text AS id, ${v(coll)} AS v, json_build_array(${check}) AS check FROM ${coll} r WHERE ${where}`;
const lines = `(SELECT coalesce(json_agg(json_build_array(l.line_no, l.product_id, l.qty, l.unit_price::text, l.line_total::text, l.note) ORDER BY l.line_no), '[]')
                  FROM order_lines l WHERE l.order_id = r.id)`;

const catalog = {
  warehouses: rows('warehouses', 'r.name_ar'),
  categories: rows('categories', 'r.name_ar'),
  products: rows('products', 'r.name_ar'),
  pricelists: rows('pricelists', 'r.name_ar'),
};
const checkCols = {
  warehouses: ['name_ar'],
  categories: ['name_ar'],
  products: ['name_ar'],
  pricelists: ['name_ar'],
  prices: ['price'],
  stock: ['qty'],
  clients: ['name_ar'],
  orders: ['total', 'lines'],
};
const price = `r.price::text`;
const orderCheck = `r.total::text, ${lines}`;
const salesmanPrices = (sid: number) =>
  rows('prices', price, `r.pricelist_id IN (SELECT pricelist_id FROM clients WHERE salesman_id = ${sid} AND is_active AND pricelist_id IS NOT NULL)`);
const salesmanStock = (sid: number) =>
  rows('stock', 'r.qty', `r.warehouse_id IN
     (SELECT coalesce(warehouse_id, w.id) FROM salesmen s, warehouses w WHERE s.id = ${sid} AND (s.warehouse_id IS NULL OR s.warehouse_id = w.id))`);
/** a salesman's device never receives another salesman's clients or orders */
const salesmanLeak = (sid: number) => (name: string, row: Record<string, unknown>) =>
  (name === 'clients' || name === 'orders') && row.salesman !== sid ? `of salesman ${String(row.salesman)}` : undefined;

interface Spec extends Omit<DeviceSpec, 'name' | 'token'> {
  email: string;
}

const specs: Spec[] = [
  {
    email: 'admin@fixture.test',
    app: 'manager',
    expect: {
      ...catalog,
      prices: rows('prices', price),
      stock: rows('stock', 'r.qty'),
      clients: rows('clients', 'r.name_ar'),
      orders: rows('orders', orderCheck),
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
      clients: rows('clients', 'r.name_ar', `r.salesman_id = ${sid}`),
      orders: rows('orders', orderCheck, `r.salesman_id = ${sid}`),
    },
    check: checkCols,
    leak: salesmanLeak(sid),
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
      clients: rows('clients', 'r.name_ar', 'r.salesman_id = 3'),
      orders: rows('orders', orderCheck, 'r.salesman_id = 3'),
    },
    check: checkCols,
    leak: salesmanLeak(3),
  },
  {
    email: 'client@fixture.test',
    app: 'client_ordering',
    expect: {
      categories: catalog.categories,
      products: catalog.products,
      pricelists: catalog.pricelists,
      prices: rows('prices', price, 'r.pricelist_id = (SELECT pricelist_id FROM clients WHERE id = 1)'),
      orders: rows('orders', orderCheck, 'r.client_id = 1'),
    },
    check: checkCols,
    leak: (name, row) => (name === 'orders' && row.client !== 1 ? `of client ${String(row.client)}` : undefined),
  },
  {
    email: 'warehouse@fixture.test',
    app: 'warehouse',
    expect: {
      warehouses: catalog.warehouses,
      categories: catalog.categories,
      products: catalog.products,
      stock: rows('stock', 'r.qty'),
    },
    check: checkCols,
  },
];

async function login(email: string): Promise<string> {
  const res = await s.post('/v1/auth/login', { email, password: FIXTURE_PASSWORD });
  if (res.status !== 200) throw new Error(`login ${email}: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { token: string }).token;
}

test('devices of every role converge to their bucket sets under concurrent ERP writes', async (t) => {
  const devices = await Promise.all(specs.map(async ({ email, ...spec }) => ({ ...spec, name: email, token: await login(email) })));
  await runConvergence(t, { server: s, erp, ops, devices });
});
