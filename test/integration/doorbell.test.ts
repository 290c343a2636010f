import test from 'ava';
import pgPromise from 'pg-promise';
import { pino } from 'pino';
import { Doorbell } from '../../src/db/doorbell.js';
import { Heads } from '../../src/sync/heads.js';
import { Indexer } from '../../src/sync/indexer.js';
import { createTestDatabase, erpPool, type TestDatabase } from '../helpers/db.js';

/**
 * The doorbell polls (nothing rides on the ERP's commits): it rings `pending` when the
 * outbox holds a commit, `watermark` when a batch committed; the heads it drives see a raw
 * SQL write by the ERP in the buckets and collection it touched.
 */
let tdb: TestDatabase;
let erp: pgPromise.IDatabase<unknown>;
const log = pino({ level: 'silent' });

test.before(async () => {
  tdb = await createTestDatabase();
  erp = erpPool(tdb.url);
  await erp.none(`INSERT INTO warehouses (id, code, name, name_ar) VALUES (1, 'W1', 'Riyadh', 'الرياض')`);
});
test.after.always(async () => {
  await erp?.$pool.end();
  await tdb?.drop();
});

function next<T>(bell: Doorbell, match: (v: T) => boolean, ms = 10_000, event: 'watermark' | 'pending' = 'watermark'): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    const on = (v: T) => {
      if (!match(v)) return;
      clearTimeout(timer);
      bell.off(event, on as never);
      resolve(v);
    };
    bell.on(event, on as never);
  });
}

test.serial('polling rings "pending" for a commit in the outbox, and "watermark" once a batch took it', async (t) => {
  await tdb.index();
  const bell = new Doorbell(tdb.db, tdb.model!, { pollMs: 10, log, behind: () => 0n }); // a consumer that never catches up
  await bell.start();
  try {
    const pending = next(bell, () => true, 10_000, 'pending');
    await erp.none(`UPDATE warehouses SET city = 'Al Riyadh' WHERE id = 1`);
    await pending;
    const seq = await tdb.index();
    const wm = await next<bigint>(bell, (w) => w > seq);
    t.is(wm, seq + 1n, 'the watermark is the batch after the last one');
    t.is(bell.watermark, wm);
  } finally {
    await bell.stop();
  }
});

test.serial('a raw SQL write by the ERP reaches the heads with its buckets and collection', async (t) => {
  const heads = new Heads(tdb.db, tdb.model!, log);
  await heads.start();
  const bell = new Doorbell(tdb.db, tdb.model!, { pollMs: 10, log, behind: () => heads.watermark });
  bell.on('pending', () => void tdb.index());
  bell.on('watermark', () => void heads.refresh());
  await bell.start();
  try {
    const advanced = new Promise<{ buckets: string[]; collections: string[] }>((resolve) =>
      heads.on('advanced', (a) => a.buckets.includes('catalog') && resolve(a)),
    );
    await erp.none(`INSERT INTO pricelists (id, code, name, name_ar) VALUES (3, 'P3', 'Key accounts', 'كبار العملاء')`);
    const a = await advanced;
    t.deepEqual(a.collections, ['pricelists']);
    t.true(heads.head('catalog') > 0n);
    t.true(heads.collectionHead('pricelists') > 0n);
    t.is(heads.collectionHead('stock'), 0n);
  } finally {
    await bell.stop();
    await heads.stop();
  }
});

test.serial('a batch of this process moves the heads without a scan, to exactly what a scan finds', async (t) => {
  const indexer = new Indexer(tdb.db, tdb.model!, log);
  await indexer.flush();
  const applied = new Heads(tdb.db, tdb.model!, log); // moved by the batches alone
  const scanned = new Heads(tdb.db, tdb.model!, log); // by its scan alone
  await applied.start();
  await scanned.start();
  let moved = 0;
  let batches = 0;
  indexer.on('indexed', (b) => void (batches++, applied.apply(b) ? moved++ : applied.refresh()));
  try {
    const writes = [
      `INSERT INTO pricelists (id, code, name, name_ar) VALUES (7, 'P7', 'Seven', 'سبعة')`,
      `INSERT INTO salesmen (id, code, name, name_ar) VALUES (7, 'S7', 'Sabah', 'صباح')`,
      `INSERT INTO categories (id, name, name_ar) VALUES (7, 'Seven', 'سبعة');
       INSERT INTO products (id, sku, name, name_ar, category_id, base_price) VALUES (7, 'SEV-7', 'Seven Up', 'سفن أب', 7, 2.50)`,
      `INSERT INTO stock (id, product_id, warehouse_id, qty) VALUES (700, 7, 1, 5)`,
      `UPDATE stock SET qty = 6 WHERE id = 700`,
      `UPDATE salesmen SET warehouse_id = 1 WHERE id = 7`,
      `DELETE FROM stock WHERE id = 700`,
      `UPDATE pricelists SET name = 'Seventh' WHERE id = 7`,
    ];
    for (const sql of writes) {
      await erp.none(sql);
      await indexer.flush();
      await scanned.refresh();
      t.is(applied.watermark, scanned.watermark, sql);
      const names = await erp.map(`SELECT DISTINCT bucket, coll FROM fieldsync.items`, [], (r: { bucket: string; coll: string }) => r);
      for (const { bucket, coll } of names) {
        t.is(applied.head(bucket), scanned.head(bucket), `${sql}: bucket ${bucket}`);
        t.is(applied.collectionHead(coll), scanned.collectionHead(coll), `${sql}: collection ${coll}`);
      }
    }
    t.is(batches, writes.length, 'one batch per write');
    t.is(moved, batches, 'every batch moved the heads without a scan');
  } finally {
    await indexer.stop();
    await applied.stop();
    await scanned.stop();
  }
});

test.serial('a TRUNCATE resets devices through a batch, which the doorbell rings for', async (t) => {
  const heads = new Heads(tdb.db, tdb.model!, log);
  await tdb.index();
  await heads.start();
  const bell = new Doorbell(tdb.db, tdb.model!, { pollMs: 10, log, behind: () => heads.watermark });
  bell.on('pending', () => void tdb.index());
  bell.on('watermark', () => void heads.refresh());
  await bell.start();
  try {
    const before = heads.epoch;
    const reset = new Promise<boolean>((resolve) => heads.on('advanced', (a) => a.epochChanged && resolve(true)));
    await erp.none('TRUNCATE stock');
    t.true(await reset);
    t.is(heads.epoch, before + 1);
  } finally {
    await bell.stop();
    await heads.stop();
  }
});

test.serial('a failing poll is logged and the doorbell keeps polling', async (t) => {
  const warnings: unknown[] = [];
  const bell = new Doorbell(tdb.db, tdb.model!, { pollMs: 10, log: { warn: (o: unknown) => warnings.push(o) } as never, behind: () => 0n });
  await bell.start();
  try {
    // cut every connection of the pool: the next poll fails, the one after reconnects
    await erp.any(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'fieldsync-test'`);
    const before = bell.watermark!;
    await erp.none(`UPDATE warehouses SET city = 'Riyadh' WHERE id = 1`);
    await tdb.index();
    await next<bigint>(bell, (w) => w > before);
    t.pass();
  } finally {
    await bell.stop();
  }
});

test.serial('while the consumer is behind (a failed refresh), the doorbell rings again at every poll', async (t) => {
  // a database whose watermark stands still (a quiet ERP), so every ring is the doorbell's own
  const still = { $dc: { background: 0 }, $pool: { query: async () => ({ rows: [{ w: '1000', pending: false }] }) } } as never;
  let consumer = 0n;
  const bell = new Doorbell(still, { schema: "fieldsync" }, { pollMs: 10, log, behind: () => consumer });
  let rings = 0;
  bell.on('watermark', () => rings++);
  await bell.start();
  try {
    await new Promise((r) => setTimeout(r, 120));
    t.true(rings >= 3, `rang ${rings} times without the watermark moving`);
    consumer = 1000n; // caught up
    await new Promise((r) => setTimeout(r, 30));
    const settled = rings;
    await new Promise((r) => setTimeout(r, 120));
    t.is(rings, settled, 'no more rings until the database moves on');
  } finally {
    await bell.stop();
  }
});

test.serial('a table the parameter queries read but nobody syncs (salesmen) is watched too', async (t) => {
  const model = tdb.model!;
  t.deepEqual(model.dependencyTables.map((d) => d.key), ['@dep:public.salesmen']);
  t.true(model.roles.get('salesman')!.dependsOn.includes('@dep:public.salesmen'));
  const heads = new Heads(tdb.db, model, log);
  await heads.start();
  try {
    await erp.none(`INSERT INTO salesmen (id, code, name, name_ar) VALUES (9, 'S9', 'Sami', 'سامي')`);
    await tdb.index();
    await erp.none(`UPDATE salesmen SET warehouse_id = 1 WHERE id = 9`);
    await tdb.index();
    for (let i = 0; i < 200 && heads.collectionHead('@dep:public.salesmen') === 0n; i++) {
      await new Promise((r) => setTimeout(r, 25));
      await heads.refresh();
    }
    t.true(heads.collectionHead('@dep:public.salesmen') > 0n);
    t.is(heads.head('@dep'), 0n, 'markers are no bucket');
    const { pruneTombstones } = await import('../../src/sync/prune.js');
    await pruneTombstones(tdb.db, model, 30);
    t.is((await erp.one<{ n: number }>(`SELECT count(*)::int AS n FROM fieldsync.items WHERE bucket = '@dep'`)).n, 1, 'only the newest marker is kept');
  } finally {
    await heads.stop();
  }
});
