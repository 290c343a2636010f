import test from 'ava';
import pgPromise from 'pg-promise';
import { createTestDatabase, erpPool, type TestDatabase } from '../helpers/db.js';

/**
 * Change capture (DESIGN §4.2–4.3) for writes made by plain SQL, as the ERP makes them:
 * stamps, tombstones on delete and on bucket-key change, and the NOTIFY doorbell.
 */
let tdb: TestDatabase;
let raw: pgPromise.IDatabase<unknown>; // a connection with no fieldsync code in the way

test.before(async () => {
  tdb = await createTestDatabase();
  raw = erpPool(tdb.url);
  await raw.none(`
    INSERT INTO warehouses (id, code, name, name_ar) VALUES (1, 'W1', 'Riyadh', 'الرياض'), (2, 'W2', 'Jeddah', 'جدة');
    INSERT INTO pricelists (id, code, name, name_ar) VALUES (1, 'RET', 'Retail', 'تجزئة'), (2, 'WHO', 'Wholesale', 'جملة');
    INSERT INTO salesmen (id, code, name, name_ar) VALUES (1, 'S1', 'Ali', 'علي'), (2, 'S2', 'Omar', 'عمر');
    INSERT INTO categories (id, name, name_ar) VALUES (1, 'Beverages', 'مشروبات');
    INSERT INTO products (id, sku, name, name_ar, category_id, base_price) VALUES (1, 'BEV-1', 'Water 1L', 'مياه ١ لتر', 1, 1.50);
    INSERT INTO clients (id, code, name, name_ar, type, pricelist_id, salesman_id)
      VALUES (1, 'C1', 'Noor Grocery', 'بقالة النور', 'retail', 1, 1), (2, 'C2', 'Hilal Market', 'سوق الهلال', 'wholesale', 2, 1);
  `);
});
test.after.always(async () => {
  await raw?.$pool.end();
  await tdb?.drop();
});

const stamp = async (table: string, id: number | string): Promise<bigint> =>
  BigInt((await raw.one<{ x: string }>('SELECT _tx::text AS x FROM $1:name WHERE id = $2', [table, id])).x);
const tombstones = (rowId: string) =>
  raw.map('SELECT bucket, collection FROM sync_tombstones WHERE row_id = $1 ORDER BY id', [rowId], (r) => `${r.collection}@${r.bucket}`);

test.serial('INSERT and UPDATE by raw SQL stamp the writing transaction id', async (t) => {
  const result = await raw.tx(async (tx) => {
    await tx.none(`INSERT INTO stock (id, product_id, warehouse_id, qty) VALUES (100, 1, 1, 10)`);
    return BigInt((await tx.one<{ x: string }>('SELECT pg_current_xact_id()::text AS x')).x);
  });
  t.is(await stamp('stock', 100), result, 'insert stamped with its transaction');

  const updater = await raw.tx(async (tx) => {
    await tx.none('UPDATE stock SET qty = qty - 1 WHERE id = 100');
    return BigInt((await tx.one<{ x: string }>('SELECT pg_current_xact_id()::text AS x')).x);
  });
  t.true(updater > result);
  t.is(await stamp('stock', 100), updater, 'update re-stamped');
});

test.serial('a forged _tx written by the ERP is overwritten by the trigger', async (t) => {
  await raw.none(`UPDATE products SET name = 'Water 1 L', _tx = '1'::xid8 WHERE id = 1`);
  t.true((await stamp('products', 1)) > 1n);
});

test.serial('an UPDATE that changes nothing keeps the old stamp (no needless re-download)', async (t) => {
  const before = await stamp('clients', 2);
  await raw.none('UPDATE clients SET phone = phone, name = name WHERE id = 2');
  t.is(await stamp('clients', 2), before);
});

test.serial('DELETE writes a tombstone for every bucket the row was in', async (t) => {
  await raw.none(`INSERT INTO stock (id, product_id, warehouse_id, qty) VALUES (101, 1, 2, 5)`);
  const deleter = await raw.tx(async (tx) => {
    await tx.none('DELETE FROM stock WHERE id = 101');
    return BigInt((await tx.one<{ x: string }>('SELECT pg_current_xact_id()::text AS x')).x);
  });
  t.deepEqual(await tombstones('101'), ['stock@stock:2']);
  const { x } = await raw.one<{ x: string }>(`SELECT _tx::text AS x FROM sync_tombstones WHERE row_id = '101'`);
  t.is(BigInt(x), deleter, 'tombstone stamped with the deleting transaction');
});

test.serial('moving a client to another salesman tombstones it in the old bucket only', async (t) => {
  await raw.none('UPDATE clients SET salesman_id = 2 WHERE id = 1');
  t.deepEqual(await tombstones('1'), ['clients@clients:1']);
  await raw.none('UPDATE clients SET salesman_id = NULL WHERE id = 1');
  t.deepEqual(await tombstones('1'), ['clients@clients:1', 'clients@clients:2'], 'unassigning leaves its bucket too');
});

test.serial('moving a price to another pricelist tombstones it in the old pricelist', async (t) => {
  await raw.none('INSERT INTO prices (id, pricelist_id, product_id, price) VALUES (500, 1, 1, 1.40)');
  await raw.none('UPDATE prices SET pricelist_id = 2 WHERE id = 500');
  t.deepEqual(await tombstones('500'), ['prices@prices:1']);
});

test.serial('order lines re-stamp their order; moving or deleting an order tombstones both buckets', async (t) => {
  const id = '6f1c2b8e-3d4a-4c5b-9e6f-7a8b9c0d1e2f';
  await raw.none(`INSERT INTO orders (id, client_id, salesman_id, warehouse_id, total) VALUES ($1, 2, 1, 1, 3.00)`, [id]);
  const created = await stamp('orders', id);
  await raw.none(`INSERT INTO order_lines (order_id, line_no, product_id, qty, unit_price, line_total) VALUES ($1, 1, 1, 2, 1.50, 3.00)`, [id]);
  const withLine = await stamp('orders', id);
  t.true(withLine > created, 'a new line re-stamps the order');
  await raw.none('UPDATE order_lines SET qty = 3, line_total = 4.50 WHERE order_id = $1', [id]);
  t.true((await stamp('orders', id)) > withLine, 'an edited line re-stamps the order');

  await raw.none('UPDATE orders SET salesman_id = 2 WHERE id = $1', [id]);
  t.deepEqual(await tombstones(id), ['orders@orders:1'], 'client bucket unchanged, old salesman bucket left');
  await raw.none('DELETE FROM orders WHERE id = $1', [id]);
  t.deepEqual((await tombstones(id)).slice(1).sort(), ['orders@client_orders:2', 'orders@orders:2', 'orders@orders:all']);
});

test.serial('a bulk statement writes one tombstone per row and bucket', async (t) => {
  await raw.none(`INSERT INTO stock (product_id, warehouse_id, qty)
                  SELECT 1, w, 1 FROM (VALUES (1), (2)) v(w) ON CONFLICT (product_id, warehouse_id) DO NOTHING`);
  const ids = await raw.map('SELECT id FROM stock', [], (r: { id: string }) => String(r.id));
  await raw.none('DELETE FROM stock');
  const n = await raw.one<{ n: string }>(`SELECT count(*) AS n FROM sync_tombstones WHERE row_id IN ($1:csv) AND collection = 'stock'`, [ids]);
  t.true(ids.length >= 2);
  t.is(Number(n.n), ids.length);
});

test.serial('the doorbell NOTIFY names the touched buckets, once per transaction', async (t) => {
  const conn = await raw.connect({ direct: true });
  const heard: unknown[] = [];
  conn.client.on('notification', (m) => heard.push(JSON.parse(m.payload ?? 'null')));
  await conn.none('LISTEN fieldsync');
  try {
    await raw.tx(async (tx) => {
      await tx.none(`INSERT INTO stock (product_id, warehouse_id, qty) VALUES (1, 1, 7), (1, 2, 8)`);
      await tx.none(`UPDATE stock SET qty = qty + 1`); // same buckets again: folded by PostgreSQL
      await tx.none(`UPDATE clients SET salesman_id = 1 WHERE id = 1`);
    });
    await new Promise((r) => setTimeout(r, 200));
    t.deepEqual(heard, [
      { c: 'stock', b: ['stock:1', 'stock:2'] },
      { c: 'clients', b: ['clients:1', 'clients:all'] },
    ]);
  } finally {
    await conn.done(true);
  }
});

test.serial('the watermark stays at an open transaction until it finishes', async (t) => {
  const conn = await raw.connect();
  try {
    await conn.none('BEGIN');
    await conn.none(`UPDATE products SET base_price = 2.00 WHERE id = 1`);
    const open = BigInt((await conn.one<{ x: string }>('SELECT pg_current_xact_id()::text AS x')).x);
    // a later transaction commits while the first is still open
    await raw.none(`UPDATE categories SET name = 'Drinks' WHERE id = 1`);
    const wm = BigInt((await raw.one<{ w: string }>('SELECT sync_watermark()::text AS w')).w);
    t.true(wm <= open, 'watermark does not pass the open transaction');
    t.true((await stamp('categories', 1)) > open, 'the later commit is above it: readers must wait for the watermark');
    await conn.none('COMMIT');
    // The watermark is cluster-wide: transactions of other test files (other databases)
    // may hold it a moment longer, so wait for it rather than expect it at once.
    let after = 0n;
    for (let i = 0; i < 100 && after <= open; i++) {
      after = BigInt((await raw.one<{ w: string }>('SELECT sync_watermark()::text AS w')).w);
      if (after <= open) await new Promise((r) => setTimeout(r, 50));
    }
    t.true(after > open, 'after commit the watermark passes it');
  } finally {
    conn.done();
  }
});

test.serial('TRUNCATE of a synced table bumps the sync epoch (it writes no tombstones)', async (t) => {
  const before = await raw.one<{ epoch: number }>('SELECT epoch FROM sync_state');
  await raw.none('TRUNCATE order_lines');
  const after = await raw.one<{ epoch: number }>('SELECT epoch FROM sync_state');
  t.is(after.epoch, before.epoch + 1);
});

test.serial('the SQL triggers name the same buckets as the sync registry', async (t) => {
  const { collections, triggerBucketExpression } = await import('../../src/sync/collections.js');
  const rows = await raw.any<{ tbl: string; registration: string }>(
    `SELECT c.relname AS tbl, obj_description(t.oid, 'pg_trigger') AS registration
       FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE t.tgname = c.relname || '_sync_ins'`,
  );
  const registered = Object.fromEntries(rows.map((r) => [r.tbl, JSON.parse(r.registration) as { collection: string; buckets: string }]));
  for (const col of Object.values(collections)) {
    const { collection, buckets } = registered[col.table] ?? {};
    t.is(collection, col.name, `${col.table} is tracked as ${col.name}`);
    t.is(buckets, triggerBucketExpression(col), `${col.table}'s trigger buckets`);
  }
});
