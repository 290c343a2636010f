import test from 'ava';
import pgPromise from 'pg-promise';
import { pino } from 'pino';
import { Doorbell, type Ring } from '../../src/db/doorbell.js';
import { createTestDatabase, erpPool, type TestDatabase } from '../helpers/db.js';

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

function next<T>(bell: Doorbell, event: 'change' | 'watermark' | 'listening', match: (v: T) => boolean = () => true, ms = 5000): Promise<T> {
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

test.serial('a raw SQL write by the ERP rings the doorbell with its buckets', async (t) => {
  const bell = new Doorbell(tdb.db, { listen: true, pollMs: 60_000, log });
  await bell.start();
  try {
    t.true(bell.isListening);
    const heard = next<Ring>(bell, 'change');
    await erp.none(`INSERT INTO pricelists (id, code, name, name_ar) VALUES (3, 'P3', 'Key accounts', 'كبار العملاء')`);
    t.deepEqual(await heard, { collection: 'pricelists', buckets: ['catalog'] });
  } finally {
    await bell.stop();
  }
});

test.serial('the LISTEN connection re-subscribes after being killed, and hears later changes', async (t) => {
  const bell = new Doorbell(tdb.db, { listen: true, pollMs: 60_000, log });
  await bell.start();
  try {
    const relistened = next(bell, 'listening');
    await erp.one(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                   WHERE datname = current_database() AND query ILIKE 'LISTEN%'`);
    await relistened;
    const heard = next<Ring>(bell, 'change', (r) => r.collection === 'warehouses');
    await erp.none(`UPDATE warehouses SET city = 'Riyadh' WHERE id = 1`);
    t.deepEqual(await heard, { collection: 'warehouses', buckets: ['catalog'] });
  } finally {
    await bell.stop();
  }
});

test.serial('without LISTEN, polling reports the watermark passing a commit', async (t) => {
  const bell = new Doorbell(tdb.db, { listen: false, pollMs: 20, log });
  await bell.start();
  try {
    t.false(bell.isListening);
    const x = await erp.tx(async (tx) => {
      await tx.none(`UPDATE warehouses SET city = 'Al Riyadh' WHERE id = 1`);
      return BigInt((await tx.one<{ x: string }>('SELECT pg_current_xact_id()::text AS x')).x);
    });
    const wm = await next<bigint>(bell, 'watermark', (w) => w > x);
    t.true(wm > x);
    t.is(bell.watermark, wm);
  } finally {
    await bell.stop();
  }
});

test.serial('a malformed NOTIFY on the channel is ignored, not fatal', async (t) => {
  const bell = new Doorbell(tdb.db, { listen: true, pollMs: 60_000, log });
  await bell.start();
  try {
    const heard = next<Ring>(bell, 'change');
    await erp.any(`SELECT pg_notify('fieldsync', 'not json'), pg_notify('fieldsync', '{"c": 1}')`);
    await erp.none(`UPDATE warehouses SET city = 'Riyadh City' WHERE id = 1`);
    t.deepEqual(await heard, { collection: 'warehouses', buckets: ['catalog'] });
  } finally {
    await bell.stop();
  }
});
