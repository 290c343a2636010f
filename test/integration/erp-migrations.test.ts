import test from 'ava';
import pgPromise from 'pg-promise';
import { install } from '../../src/install/apply.js';
import { Device, type PullBody } from '../helpers/device.js';
import { erpPool } from '../helpers/db.js';
import { FIXTURE_PASSWORD, loadFixture } from '../helpers/fixture.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/**
 * The ERP keeps migrating its own schema under fieldsync (issue 10, item 6): sync keeps
 * working, or fails loudly (a refused DROP, or 503 config-drift with a metric, a log line
 * and /ready saying why), never delivering wrong data silently.
 */
let s: TestServer;
let erp: pgPromise.IDatabase<unknown>;
let token: string;

test.before(async () => {
  s = await startTestServer({ DOORBELL_POLL_MS: '10' });
  await loadFixture(s.db);
  await s.settle();
  erp = erpPool(s.tdb.url, 2);
  const res = await s.post('/v1/auth/login', { email: 'admin@fixture.test', password: FIXTURE_PASSWORD });
  token = ((await res.json()) as { token: string }).token;
});
test.after.always(async () => {
  await erp?.$pool.end();
  await s?.close();
});

const device = () => new Device('admin', (cursor, limit) => s.post('/v1/sync/pull', { ...(cursor && { cursor }), limit }, { authorization: `Bearer ${token}` }), s.url);

test.serial('added columns, an index, and unsynced columns renamed or dropped: sync goes on', async (t) => {
  const d = device();
  await d.catchUp(1000);
  await erp.none(`ALTER TABLE products ADD COLUMN supplier_code text; CREATE INDEX products_supplier ON products (supplier_code)`);
  await erp.none(`ALTER TABLE products RENAME COLUMN supplier_code TO vendor_code`);
  await erp.none(`UPDATE products SET vendor_code = 'V1', name_ar = 'مياه معدلة' WHERE id = 1`);
  await erp.none(`INSERT INTO products (id, sku, name, name_ar, category_id, base_price, vendor_code) VALUES (501, 'N-501', 'New', 'جديد', 2, 3.50, 'V2')`);
  await erp.none(`ALTER TABLE products DROP COLUMN vendor_code`);
  await s.settle();
  t.true((await s.drift.check()).ok);
  await d.catchUp(1000);
  t.is(d.table('products').get('1')!.row.name_ar, 'مياه معدلة');
  t.is(d.table('products').get('501')!.row.sku, 'N-501');
});

test.serial('dropping a synced column is refused by PostgreSQL, naming fieldsync', async (t) => {
  const err = await t.throwsAsync(erp.none('ALTER TABLE prices DROP COLUMN price'));
  t.regex((err as { detail?: string }).detail ?? '', /fieldsync\.v_prices/);
  t.true((await s.drift.check()).ok, 'nothing changed');
});

test.serial('a table recreated by a deploy: pulls answer 503 config-drift until sync:install, then its buckets start over', async (t) => {
  const d = device();
  await d.catchUp(1000);
  const before = d.cursor;
  // the deploy: rename, recreate, copy, drop the old one (its fieldsync functions go with it)
  await erp.tx(async (tx) => {
    await tx.none(`ALTER TABLE stock RENAME TO stock_old`);
    await tx.none(`CREATE TABLE stock (LIKE stock_old INCLUDING ALL)`);
    await tx.none(`INSERT INTO stock SELECT * FROM stock_old`);
    await tx.none(`DROP TABLE stock_old CASCADE`);
  });
  // written while nothing captured it
  await erp.none(`UPDATE stock SET qty = 4242 WHERE product_id = 1 AND warehouse_id = 1`);
  const state = await s.drift.check();
  t.false(state.ok);
  t.true(state.problems.some((p) => /stock/.test(p)), state.problems.join('\n'));
  t.regex(await s.metrics.registry.metrics(), /fieldsync_config_drift 1/);
  const pull = await s.post('/v1/sync/pull', { cursor: before }, { authorization: `Bearer ${token}` });
  t.is(pull.status, 503);
  t.like(await pull.json(), { code: 'config-drift' });
  const ready = await s.fetch('/ready');
  t.is(ready.status, 503);
  t.regex(JSON.stringify(await ready.json()), /syncConfig.*stock/);

  // the operator runs sync:install: stock's buckets are rebuilt and reset
  const report = await install(s.db, s.model);
  t.deepEqual(report.resetBuckets, ['stock']);
  t.true((await s.drift.check()).ok);
  t.regex(await s.metrics.registry.metrics(), /fieldsync_config_drift 0/);
  await s.settle();
  const again = await s.post('/v1/sync/pull', { cursor: before }, { authorization: `Bearer ${token}` });
  t.is(again.status, 410);
  const body = (await again.json()) as { buckets: string[]; resetCursor: string };
  t.deepEqual(body.buckets.sort(), ['stock:1', 'stock:2', 'stock:3']);
  for (const b of body.buckets) d.dropBucket(b);
  d.cursor = body.resetCursor;
  await d.catchUp(1000);
  const row = [...d.table('stock').values()].find((r) => r.row.product === 1 && r.row.warehouse === 1);
  t.is(row?.row.qty, 4242, 'the write made while capture was missing arrived');
  t.is(d.table('stock').size, 90);
  // and capture works on the new table
  await erp.none(`UPDATE stock SET qty = 7 WHERE product_id = 2 AND warehouse_id = 1`);
  await s.settle();
  await d.catchUp(1000);
  t.is([...d.table('stock').values()].find((r) => r.row.product === 2 && r.row.warehouse === 1)?.row.qty, 7);
  t.is(((d.last as PullBody).checksums['stock:1'] ?? d.checksum('stock:1')), d.checksum('stock:1'));
});

test.serial('a bucket definition changed by a new config: its buckets answer 410 with resetCursor, the others go on', async (t) => {
  const { checkShape } = await import('../../src/model/config.js');
  const { loadConfigFile, loadModel } = await import('../../src/model/load.js');
  const d = device();
  await d.catchUp(1000);
  const demo = await loadConfigFile(undefined);
  // prices now leave out prices of 0 (a definition change): only prices:* start over
  const changed = checkShape({ ...demo, buckets: { ...demo.buckets, prices: { rows: { prices: 'CASE WHEN r.price > 0 THEN r.pricelist_id END' }, snapshot: true } } });
  const report = await install(s.db, await loadModel(s.db, changed));
  t.deepEqual(report.resetBuckets, ['prices']);
  await s.settle();
  const res = await s.post('/v1/sync/pull', { cursor: d.cursor }, { authorization: `Bearer ${token}` });
  t.is(res.status, 410);
  const body = (await res.json()) as { buckets: string[]; resetCursor: string };
  t.deepEqual(body.buckets.sort(), ['prices:1', 'prices:2', 'prices:3']);
  const kept = d.table('clients').size;
  for (const b of body.buckets) d.dropBucket(b);
  d.cursor = body.resetCursor;
  await d.catchUp(1000);
  t.is(d.table('clients').size, kept, 'other buckets continue where they were');
  const want = await s.db.one<{ n: number }>('SELECT count(*)::int AS n FROM prices WHERE price > 0');
  t.is(d.table('prices').size, want.n);
  // back to the demo's definition for the other tests
  await install(s.db, s.model);
});
