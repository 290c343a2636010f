import test from 'ava';
import pgPromise from 'pg-promise';
import { Indexer } from '../../src/sync/indexer.js';
import { createTestDatabase, erpPool, type TestDatabase } from '../helpers/db.js';

/**
 * Change capture (DESIGN §4.2–4.3) for writes made by plain SQL, as the ERP makes them:
 * the keys fieldsync's triggers put in its outbox and the items its indexer makes of them
 * (one per row and bucket, stamped with the batch number), deletes on DELETE and on
 * bucket-key change, children re-sending their parent, open transactions holding back
 * only their own rows, and nothing added to the ERP's tables.
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

/** The indexing batch that last wrote the row's live items (all of them: they move together). */
const stamp = async (coll: string, id: number | string): Promise<bigint> => {
  const rows = await raw.map(`SELECT DISTINCT seq::text AS x FROM fieldsync.items WHERE coll = $1 AND row_key = $2 AND NOT deleted`, [coll, String(id)], (r: { x: string }) => BigInt(r.x));
  if (rows.length !== 1) throw new Error(`${coll} ${id}: live items stamped ${rows.length} ways`);
  return rows[0]!;
};
/** The buckets a row has left (its deleted items). */
const tombstones = (rowId: string) =>
  raw.map(`SELECT bucket, coll FROM fieldsync.items WHERE row_key = $1 AND deleted ORDER BY bucket`, [rowId], (r) => `${r.coll}@${r.bucket}`);
/** What the outbox holds (visible to this connection: committed). */
const outbox = () => raw.map(`SELECT coll || ':' || coalesce(row_key, '*') AS e FROM fieldsync.changes ORDER BY 1`, [], (r: { e: string }) => r.e);
/** Plain SQL as the ERP writes it, then one indexing run (what the server does at its next poll): the batch number. */
const write = async (sql: string, values?: unknown) => {
  await raw.none(sql, values);
  return tdb.index();
};

test.serial('INSERT and UPDATE by raw SQL put the key in the outbox; the next batch stamps the items with its number', async (t) => {
  await tdb.index();
  await raw.none(`INSERT INTO stock (id, product_id, warehouse_id, qty) VALUES (100, 1, 1, 10)`);
  t.deepEqual(await outbox(), ['stock:100'], 'the capture writes the key only');
  const first = await tdb.index();
  t.deepEqual(await outbox(), [], 'the indexer took it');
  t.is(await stamp('stock', 100), first, 'insert stamped with the batch');
  t.deepEqual(await raw.map(`SELECT bucket FROM fieldsync.items WHERE coll = 'stock' AND row_key = '100'`, [], (r: { bucket: string }) => r.bucket), ['stock:1']);

  const second = await write('UPDATE stock SET qty = qty - 1 WHERE id = 100');
  t.true(second > first);
  t.is(await stamp('stock', 100), second, 'update re-stamped');
  t.is(await tdb.index(), second, 'nothing new: no new batch');
});

test.serial('the ERP tables carry no fieldsync column, index or constraint', async (t) => {
  const columns = await raw.map(`SELECT table_name || '.' || column_name AS c FROM information_schema.columns WHERE table_schema = 'public' AND (column_name LIKE '%tx%' OR column_name LIKE 'sync%')`, [], (r: { c: string }) => r.c);
  t.deepEqual(columns, []);
  const triggers = await raw.map(`SELECT DISTINCT c.relname AS t FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid WHERE g.tgname LIKE 'fieldsync%' ORDER BY 1`, [], (r: { t: string }) => r.t);
  // salesmen: read by the salesman's parameter queries, watched though not synced
  t.deepEqual(triggers, ['categories', 'clients', 'order_lines', 'orders', 'pricelists', 'prices', 'products', 'salesmen', 'stock', 'warehouses']);
});

test.serial('an UPDATE that changes nothing synced keeps the old stamp (no needless re-download)', async (t) => {
  await tdb.index();
  const before = await stamp('clients', 2);
  await raw.none('UPDATE clients SET phone = phone, name = name WHERE id = 2');
  t.deepEqual(await outbox(), [], 'not even an outbox entry');
  await tdb.index();
  t.is(await stamp('clients', 2), before);
  await raw.none(`ALTER TABLE clients ADD COLUMN last_viewed_at timestamptz`);
  await write('UPDATE clients SET last_viewed_at = now() WHERE id = 2');
  t.is(await stamp('clients', 2), before, 'a column fieldsync does not sync');
  await raw.none(`ALTER TABLE clients DROP COLUMN last_viewed_at`);
  await write(`UPDATE clients SET phone = '+966500000000' WHERE id = 2`);
  t.true((await stamp('clients', 2)) > before, 'a synced column');
});

test.serial('DELETE writes a tombstone for every bucket the row was in', async (t) => {
  await write(`INSERT INTO stock (id, product_id, warehouse_id, qty) VALUES (101, 1, 2, 5)`);
  const deleter = await write('DELETE FROM stock WHERE id = 101');
  t.deepEqual(await tombstones('101'), ['stock@stock:2']);
  const { x } = await raw.one<{ x: string }>(`SELECT seq::text AS x FROM fieldsync.items WHERE row_key = '101' AND coll = 'stock'`);
  t.is(BigInt(x), deleter, 'the delete is stamped with the batch that saw it');
});

test.serial('moving a client to another salesman tombstones it in the old bucket only', async (t) => {
  await write('UPDATE clients SET salesman_id = 2 WHERE id = 1');
  t.deepEqual(await tombstones('1'), ['clients@clients:1']);
  await write('UPDATE clients SET salesman_id = NULL WHERE id = 1');
  t.deepEqual(await tombstones('1'), ['clients@clients:1', 'clients@clients:2'], 'unassigning leaves its bucket too');
  await write('UPDATE clients SET salesman_id = 1 WHERE id = 1');
  t.deepEqual(await tombstones('1'), ['clients@clients:2'], 'coming back revives the item');
});

test.serial('moving a price to another pricelist tombstones it in the old pricelist', async (t) => {
  await write('INSERT INTO prices (id, pricelist_id, product_id, price) VALUES (500, 1, 1, 1.40)');
  await write('UPDATE prices SET pricelist_id = 2 WHERE id = 500');
  t.deepEqual(await tombstones('500'), ['prices@prices:1']);
});

test.serial('order lines re-stamp their order; moving or deleting an order tombstones both buckets', async (t) => {
  const id = '6f1c2b8e-3d4a-4c5b-9e6f-7a8b9c0d1e2f';
  await write(`INSERT INTO orders (id, client_id, salesman_id, warehouse_id, total) VALUES ($1, 2, 1, 1, 3.00)`, [id]);
  const created = await stamp('orders', id);
  await raw.none(`INSERT INTO order_lines (order_id, line_no, product_id, qty, unit_price, line_total) VALUES ($1, 1, 1, 2, 1.50, 3.00), ($1, 2, 1, 1, 1.50, 1.50)`, [id]);
  t.deepEqual(await outbox(), [`orders:${id}`], 'two lines in one statement: their order, once');
  await tdb.index();
  const withLine = await stamp('orders', id);
  t.true(withLine > created, 'a new line re-stamps the order');
  await write('UPDATE order_lines SET qty = 3, line_total = 4.50 WHERE order_id = $1 AND line_no = 1', [id]);
  t.true((await stamp('orders', id)) > withLine, 'an edited line re-stamps the order');

  await write('UPDATE orders SET salesman_id = 2 WHERE id = $1', [id]);
  t.deepEqual(await tombstones(id), ['orders@orders:1'], 'client bucket unchanged, old salesman bucket left');
  const moved = await stamp('orders', id);
  await write('DELETE FROM order_lines WHERE order_id = $1', [id]);
  t.true((await stamp('orders', id)) > moved, 'a deleted line re-stamps the order');
  await write('DELETE FROM orders WHERE id = $1', [id]);
  t.deepEqual((await tombstones(id)).sort(), ['orders@client_orders:2', 'orders@orders:1', 'orders@orders:2', 'orders@orders:all']);
});

test.serial('a bulk statement writes one tombstone per row and bucket', async (t) => {
  await write(`INSERT INTO stock (product_id, warehouse_id, qty)
                  SELECT 1, w, 1 FROM (VALUES (1), (2)) v(w) ON CONFLICT (product_id, warehouse_id) DO NOTHING`);
  const ids = await raw.map('SELECT id FROM stock', [], (r: { id: string }) => String(r.id));
  await write('DELETE FROM stock');
  const n = await raw.one<{ n: string }>(`SELECT count(*) AS n FROM fieldsync.items WHERE row_key IN ($1:csv) AND coll = 'stock' AND deleted`, [ids]);
  t.true(ids.length >= 2);
  t.is(Number(n.n), ids.length);
});

test.serial('nothing is sent to the notification queue: commits never wait on the doorbell', async (t) => {
  const conn = await raw.connect({ direct: true });
  const heard: unknown[] = [];
  conn.client.on('notification', (m) => heard.push(m));
  await conn.none('LISTEN fieldsync');
  try {
    await raw.tx(async (tx) => {
      await tx.none(`INSERT INTO stock (product_id, warehouse_id, qty) VALUES (1, 1, 7), (1, 2, 8)`);
      await tx.none(`UPDATE clients SET salesman_id = 2 WHERE id = 1`);
    });
    await new Promise((r) => setTimeout(r, 100));
    t.deepEqual(heard, []);
    t.is((await raw.one<{ u: number }>('SELECT pg_notification_queue_usage() AS u')).u, 0);
  } finally {
    await conn.done(true);
  }
});

test.serial('an open transaction holds back nothing but its own rows, which come after its commit (and never after a rollback)', async (t) => {
  await tdb.index();
  const conn = await raw.connect();
  try {
    await conn.none('BEGIN');
    await conn.none(`UPDATE products SET base_price = 2.00 WHERE id = 1`);
    const productBefore = await stamp('products', 1);
    // a later transaction commits while the first is still open: indexed at once
    const later = await write(`UPDATE categories SET name = 'Drinks' WHERE id = 1`);
    t.is(await stamp('categories', 1), later, 'the later commit is indexed while the other transaction is open');
    t.is(await stamp('products', 1), productBefore, 'the open transaction\'s row waits for it');
    await conn.none('COMMIT');
    const after = await tdb.index();
    t.true(after > later);
    t.is(await stamp('products', 1), after, 'after its commit, its row comes, after the later one');

    await conn.none('BEGIN');
    await conn.none(`UPDATE products SET base_price = 9.99 WHERE id = 1`);
    await conn.none('ROLLBACK');
    t.is(await tdb.index(), after, 'a rolled back write leaves nothing to index');
    t.is(await stamp('products', 1), after);
  } finally {
    conn.done();
  }
});

test.serial('TRUNCATE of a synced table bumps the sync epoch and clears its items; of a child table, re-sends the parents', async (t) => {
  const epoch = async () => (await raw.one<{ epoch: number }>('SELECT epoch FROM fieldsync.state')).epoch;
  const id = '0b7d3c52-1a2b-4c3d-8e4f-5a6b7c8d9e0f';
  await raw.none(`INSERT INTO orders (id, client_id, salesman_id, warehouse_id, total) VALUES ($1, 2, 1, 1, 3.00)`, [id]);
  await write(`INSERT INTO order_lines (order_id, line_no, product_id, qty, unit_price, line_total) VALUES ($1, 1, 1, 2, 1.50, 3.00)`, [id]);
  const before = await epoch();
  const stamped = await stamp('orders', id);
  await write('TRUNCATE order_lines');
  t.is(await epoch(), before, 'no reset: the orders are re-sent without lines');
  t.true((await stamp('orders', id)) > stamped);
  await write('TRUNCATE stock');
  t.is(await epoch(), before + 1);
  t.is((await raw.one<{ n: number }>(`SELECT count(*)::int AS n FROM fieldsync.items WHERE coll = 'stock'`)).n, 0);
});

test.serial('a child TRUNCATE and row changes of its parents in one batch: the rows are indexed as they are, the rest re-sent', async (t) => {
  const gone = '1c8e4d63-2b3c-4d4e-9f50-6a7b8c9d0e1f';
  const kept = '2d9f5e74-3c4d-4e5f-8061-7b8c9d0e1f20';
  await write(`INSERT INTO orders (id, client_id, salesman_id, warehouse_id, total) VALUES ($1, 2, 1, 1, 1.00), ($2, 2, 1, 1, 1.00)`, [gone, kept]);
  const stamped = await stamp('orders', kept);
  // one transaction: the lines truncated, one order deleted (both in the outbox of one batch)
  await raw.tx(async (tx) => {
    await tx.none('TRUNCATE order_lines');
    await tx.none('DELETE FROM orders WHERE id = $1', [gone]);
  });
  await tdb.index();
  t.deepEqual(await tombstones(gone), ['orders@client_orders:2', 'orders@orders:1', 'orders@orders:all'], 'the deleted order is tombstoned in every bucket, not re-sent as live');
  t.true((await stamp('orders', kept)) > stamped, 'the other orders are re-sent');
});

test.serial('a TRUNCATE in a long ERP transaction holds back no other change; the reset comes when it commits', async (t) => {
  const epoch = async () => (await raw.one<{ epoch: number }>('SELECT epoch FROM fieldsync.state')).epoch;
  await tdb.index();
  const before = await epoch();
  const conn = await raw.connect();
  try {
    await conn.none('BEGIN');
    await conn.none('TRUNCATE stock');
    // meanwhile the ERP changes a client: a batch takes it at once
    const batch = await Promise.race([write(`UPDATE clients SET name = 'Noor Grocery 2' WHERE id = 1`), new Promise<'blocked'>((r) => setTimeout(() => r('blocked'), 5000))]);
    t.not(batch, 'blocked', 'the batch did not wait for the open TRUNCATE');
    t.is(await stamp('clients', 1), batch as bigint);
    t.is(await epoch(), before, 'no reset while the TRUNCATE is not committed');
    await conn.none('COMMIT');
  } finally {
    conn.done();
  }
  await tdb.index();
  t.is(await epoch(), before + 1, 'the reset once it committed');
  t.is((await raw.one<{ n: number }>(`SELECT count(*)::int AS n FROM fieldsync.items WHERE coll = 'stock'`)).n, 0);
});

test.serial('a failing batch leaves its entries in the outbox, logs once, and the next batch takes them', async (t) => {
  const warnings: unknown[] = [];
  const infos: unknown[] = [];
  const log = { warn: (o: unknown) => warnings.push(o), info: (o: unknown) => infos.push(o), debug: () => undefined } as never;
  const indexer = new Indexer(tdb.db, tdb.model!, log);
  await indexer.flush();
  await raw.none(`UPDATE categories SET name = 'Soft drinks' WHERE id = 1`);
  await raw.none('ALTER TABLE fieldsync.items RENAME TO items_away'); // the batch cannot write
  try {
    for (let i = 0; i < 3; i++) await t.throwsAsync(indexer.flush());
    t.deepEqual(await outbox(), ['categories:1'], 'rolled back: the entry is still there');
    t.is(warnings.length, 1, 'said once, not at every poll');
  } finally {
    await raw.none('ALTER TABLE fieldsync.items_away RENAME TO items');
  }
  const seq = await indexer.flush();
  t.deepEqual(await outbox(), []);
  t.is(await stamp('categories', 1), seq);
  t.is(infos.length, 1, 'and the recovery');
});

/**
 * The indexer's upkeep after a large write: a fresh indexer (its counters at zero) drains
 * the outbox, the write is made and drained, and `measure` is read until it moves (the
 * upkeep runs after the flush is answered), at most 2 s.
 */
async function upkeepAfter(write: string, measure: () => Promise<number>): Promise<{ before: number; after: number }> {
  const indexer = new Indexer(tdb.db, tdb.model!, { warn: () => undefined, info: () => undefined, debug: () => undefined } as never);
  await indexer.flush();
  const before = await measure();
  await raw.none(write);
  await indexer.flush();
  let after = before;
  for (let i = 0; i < 100 && after === before; i++) {
    await new Promise((r) => setTimeout(r, 20));
    after = await measure();
  }
  return { before, after };
}

test.serial('the indexer vacuums the outbox after draining a thousand entries (autovacuum is too slow for a queue)', async (t) => {
  const vacuums = () => raw.one<{ n: number }>(`SELECT vacuum_count::int AS n FROM pg_stat_user_tables WHERE schemaname = 'fieldsync' AND relname = 'changes'`).then((r) => r.n);
  const { before, after } = await upkeepAfter(`INSERT INTO categories (id, name, name_ar) SELECT i, 'Bulk ' || i, 'صنف ' || i FROM generate_series(1000, 2099) i`, vacuums);
  t.true(after > before, 'VACUUM ran on fieldsync.changes');
  t.deepEqual(await outbox(), []);
});

test.serial('after a large change the indexer takes the items\' statistics (the planner would read a whole collection per batch)', async (t) => {
  const estimate = () => raw.one<{ n: number }>(`SELECT reltuples::int AS n FROM pg_class WHERE oid = 'fieldsync.items'::regclass`).then((r) => r.n);
  const { before, after } = await upkeepAfter(`INSERT INTO categories (id, name, name_ar) SELECT i, 'Many ' || i, 'صنف ' || i FROM generate_series(10000, 21999) i`, estimate);
  t.true(after >= 12_000, `the estimate moved from ${before} to ${after}`);
  await raw.none('DELETE FROM categories WHERE id BETWEEN 10000 AND 21999');
  await tdb.index();
});

test.serial('a synced column cannot be dropped from under fieldsync; one it does not sync can', async (t) => {
  const err = await t.throwsAsync(raw.none('ALTER TABLE clients DROP COLUMN salesman_id'));
  t.regex(err!.message, /cannot drop column salesman_id of table clients because other objects depend on it/);
  t.regex((err as { detail?: string }).detail ?? '', /function fieldsync\.b_clients\(clients\) depends on column salesman_id/);
  const named = await t.throwsAsync(raw.none('ALTER TABLE clients DROP COLUMN name_ar'));
  t.regex((named as { detail?: string }).detail ?? '', /function fieldsync\.v_clients\(clients\) depends on column name_ar/);
  await raw.none('ALTER TABLE clients ADD COLUMN fax text');
  await raw.none('ALTER TABLE clients RENAME COLUMN fax TO fax_number');
  await raw.none('CREATE INDEX clients_fax ON clients (fax_number)');
  await raw.none('ALTER TABLE clients DROP COLUMN fax_number');
  await raw.none(`UPDATE clients SET name = 'Noor' WHERE id = 1`);
  t.pass();
});
