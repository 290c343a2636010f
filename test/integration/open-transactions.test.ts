import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pgPromise from 'pg-promise';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/observability/logger.js';
import { CursorCodec } from '../../src/protocol/cursor.js';
import { startServer } from '../../src/server.js';
import { install } from '../../src/install/apply.js';
import { createTestDatabase, erpPool, TEST_PG } from '../helpers/db.js';
import { Device } from '../helpers/device.js';
import { FIXTURE_PASSWORD, loadFixture } from '../helpers/fixture.js';
import { startTestServer, TEST_SECRET, type TestServer } from '../helpers/server.js';
import { sockets } from '../helpers/sockets.js';
import { until } from '../helpers/wait.js';

/**
 * Issue 11: a commit is delivered as soon as it is visible, whatever else is open; only the
 * rows of a transaction still open wait for it. Devices here audit every answer (no row
 * version twice, every checksum equal to their own sum).
 */
let s: TestServer;
let erp: pgPromise.IDatabase<unknown>;
const tokens: Record<string, string> = {};
const { socket, closeAll } = sockets();

test.before(async () => {
  // the default poll interval: nothing here calls settle() where delivery is timed; pages
  // through pull (snapshots and deltas are the convergence test's)
  s = await startTestServer({ SNAPSHOTS: 'false' });
  await loadFixture(s.db);
  await s.settle();
  erp = erpPool(s.tdb.url, 6);
  for (const who of ['salesman1', 'salesman2']) {
    const res = await s.post('/v1/auth/login', { email: `${who}@fixture.test`, password: FIXTURE_PASSWORD });
    tokens[who] = ((await res.json()) as { token: string }).token;
  }
});
test.after.always(async () => {
  try {
    closeAll(); // throws when an event was off its schema
  } finally {
    await erp?.$pool.end();
    await s?.close();
  }
});

function device(who: string): Device {
  const d = new Device(who, (cursor, limit) => s.post('/v1/sync/pull', { ...(cursor && { cursor }), limit }, { authorization: `Bearer ${tokens[who]}` }), s.url);
  d.audit = true;
  return d;
}
const row = (d: Device, coll: string, id: number) => d.table(coll).get(String(id))?.row;
const stockRow = (d: Device, product: number, warehouse: number) => [...d.table('stock').values()].find((r) => r.row.product === product && r.row.warehouse === warehouse)?.row;

/** A connection holding a write transaction open (to this database, or another of the cluster). */
async function openWriteTransaction(db: pgPromise.IDatabase<unknown>, sql: string) {
  const conn = await db.connect();
  await conn.none('BEGIN');
  await conn.any(sql);
  return {
    end: async (how: 'COMMIT' | 'ROLLBACK') => {
      try {
        await conn.none(how);
      } finally {
        conn.done();
      }
    },
  };
}

test.serial('a commit is pulled and poked at once while write transactions stay open here and in another database; theirs come after their commit, never after a rollback', async (t) => {
  const d = device('salesman1');
  await d.catchUp(1000);
  const c = socket(s.url, tokens.salesman1);
  await new Promise<void>((r) => c.once('connect', () => r()));
  const pokes: string[][] = [];
  c.on('sync:poke', (p: { buckets: string[] }) => pokes.push(p.buckets));

  const other = pgPromise()({ connectionString: `${TEST_PG}/postgres`, max: 1 });
  let here: Awaited<ReturnType<typeof openWriteTransaction>> | undefined;
  let elsewhere: Awaited<ReturnType<typeof openWriteTransaction>> | undefined;
  try {
    here = await openWriteTransaction(erp, `UPDATE products SET name = 'held back' WHERE id = 2`);
    elsewhere = await openWriteTransaction(other, 'SELECT pg_current_xact_id()');
    const started = Date.now();
    await erp.none('UPDATE stock SET qty = 41 WHERE product_id = 3 AND warehouse_id = 1');
    // no settle(): the server's own poll, indexer and heads, with both transactions still open
    await until(() => pokes.some((b) => b.includes('stock:1')), 'the poke of stock:1 (the open transactions must not hold it back)', 5_000);
    await d.catchUp(1000);
    t.is(stockRow(d, 3, 1)?.qty, 41, 'pulled while the others are open');
    t.log(`poked and pulled ${Date.now() - started} ms after the commit`);
    t.is(row(d, 'products', 2)?.name, 'Product 2', 'the open transaction\'s own row waits for it');

    const ready = (await (await s.fetch('/ready')).json()) as { changes: { oldestWriteTransaction: { seconds: number; pid: number; database: string } | null; outboxBacklog: number } };
    t.truthy(ready.changes.oldestWriteTransaction, 'the operator sees an open write transaction');
    t.is(typeof ready.changes.outboxBacklog, 'number');
    const metrics = await (await s.fetch('/metrics')).text();
    t.regex(metrics, /^fieldsync_oldest_write_transaction_seconds \d+$/m);
    t.regex(metrics, /^fieldsync_outbox_backlog \d+$/m);

    pokes.length = 0;
    await here.end('COMMIT');
    here = undefined;
    await until(() => pokes.some((b) => b.includes('catalog')), 'the poke of the committed transaction', 5_000);
    await d.catchUp(1000);
    t.is(row(d, 'products', 2)?.name, 'held back', 'after its commit, its row comes');

    const rolledBack = await openWriteTransaction(erp, `UPDATE products SET name = 'never' WHERE id = 2`);
    await rolledBack.end('ROLLBACK');
    await erp.none('UPDATE stock SET qty = 42 WHERE product_id = 3 AND warehouse_id = 1');
    await s.settle();
    await d.catchUp(1000);
    t.is(stockRow(d, 3, 1)?.qty, 42);
    t.is(row(d, 'products', 2)?.name, 'held back', 'a rolled back write never arrives');
    t.deepEqual(d.problems, []);
  } finally {
    await here?.end('ROLLBACK').catch(() => undefined);
    await elsewhere?.end('ROLLBACK').catch(() => undefined);
    await other.$pool.end();
  }
});

test.serial('a transaction that began before a pull and commits after it is delivered by the next pull', async (t) => {
  const d = device('salesman1');
  await d.catchUp(1000);
  const tx = await openWriteTransaction(erp, `UPDATE clients SET phone = '+966511111111' WHERE id = 4`);
  await erp.none('UPDATE stock SET qty = 43 WHERE product_id = 3 AND warehouse_id = 1');
  await s.settle();
  await d.catchUp(1000); // its cursor is now past the batch of the later commit
  t.not(row(d, 'clients', 4)?.phone, '+966511111111');
  await tx.end('COMMIT');
  await s.settle();
  await d.catchUp(1000);
  t.is(row(d, 'clients', 4)?.phone, '+966511111111', 'its row is numbered by the batch that read it, after the cursor');
  t.deepEqual(d.problems, []);
});

test.serial('a commit between two pages of one pull: nothing skipped, nothing delivered twice, checksums exact', async (t) => {
  const d = device('salesman1');
  const first = await d.pullOnce(5);
  t.true((first.body as { hasMore: boolean }).hasMore);
  // every product changes at once: some were in the page already, most were not
  await erp.none(`UPDATE products SET name = name || ' *'`);
  await s.settle();
  await d.catchUp(5);
  const names = await erp.map('SELECT id, name FROM products ORDER BY id', [], (r: { id: number; name: string }) => `${r.id}:${r.name}`);
  t.deepEqual([...d.table('products').values()].map((r) => `${String(r.row.id)}:${String(r.row.name)}`).sort(), names.sort());
  t.deepEqual(d.problems, [], 'no version twice, every checksum the device\'s own sum');
  t.true(Object.keys(d.last!.checksums).length > 0, 'checksums were sent');
});

test.serial('a row written by a long transaction and then by a short one ends with the short one', async (t) => {
  const d = device('salesman1');
  await d.catchUp(1000);
  const long = await openWriteTransaction(erp, 'UPDATE stock SET qty = 11 WHERE product_id = 5 AND warehouse_id = 1');
  const short = erp.none('UPDATE stock SET qty = 12 WHERE product_id = 5 AND warehouse_id = 1'); // waits for the row lock
  await new Promise((r) => setTimeout(r, 100));
  await long.end('COMMIT');
  await short;
  await s.settle();
  await d.catchUp(1000);
  t.is(stockRow(d, 5, 1)?.qty, 12);
  t.deepEqual(d.problems, []);
});

test.serial('deletes and bucket moves inside a long transaction arrive when it commits, in every bucket concerned', async (t) => {
  const one = device('salesman1');
  const two = device('salesman2');
  await one.catchUp(1000);
  await two.catchUp(1000);
  t.truthy(row(one, 'clients', 8));
  t.truthy(stockRow(one, 6, 1));
  const tx = await openWriteTransaction(erp, 'UPDATE clients SET salesman_id = 2 WHERE id = 8; DELETE FROM stock WHERE product_id = 6 AND warehouse_id = 1');
  try {
    await erp.none('UPDATE stock SET qty = 44 WHERE product_id = 3 AND warehouse_id = 1');
    await s.settle();
    await one.catchUp(1000);
    await two.catchUp(1000);
    t.is(stockRow(one, 3, 1)?.qty, 44, 'later commits pass it');
    t.truthy(row(one, 'clients', 8), 'the move is not visible yet');
    t.truthy(stockRow(one, 6, 1), 'nor the delete');
    t.falsy(row(two, 'clients', 8));
  } finally {
    await tx.end('COMMIT');
  }
  await s.settle();
  await one.catchUp(1000);
  await two.catchUp(1000);
  t.falsy(row(one, 'clients', 8), 'moved out of salesman 1\'s bucket');
  t.falsy(stockRow(one, 6, 1), 'deleted');
  t.is(row(two, 'clients', 8)?.id, 8, 'moved into salesman 2\'s');
  t.deepEqual([...one.problems, ...two.problems], []);
});

test('a row moved or deleted by a commit not indexed yet never reaches its old bucket with its new values, and checksums stay exact', async (t) => {
  // no poll for a minute: only pulls and pushes run the indexer here
  const quiet = await startTestServer({ DOORBELL_POLL_MS: '60000', SNAPSHOTS: 'false' });
  const raw = erpPool(quiet.tdb.url, 2);
  try {
    await loadFixture(quiet.db);
    await quiet.settle();
    const login = await quiet.post('/v1/auth/login', { email: 'salesman1@fixture.test', password: FIXTURE_PASSWORD });
    const token = ((await login.json()) as { token: string }).token;
    type Answer = { changes?: Record<string, { cols: string[]; rows: unknown[][] }>; buckets: { current: string[] } };
    const answers: Answer[] = [];
    const device = (name: string) => {
      const dev = new Device(name, async (cursor, limit) => {
        const res = await quiet.post('/v1/sync/pull', { ...(cursor && { cursor }), limit }, { authorization: `Bearer ${token}` });
        answers.push((await res.clone().json()) as Answer);
        return res;
      }, quiet.url);
      dev.audit = true;
      return dev;
    };
    const d = device('salesman1');
    await d.catchUp(1000);
    t.truthy(row(d, 'clients', 8));
    // client 8 moves to salesman 2 with a new phone; nobody indexes
    await raw.none(`UPDATE clients SET salesman_id = 2, phone = '+966500000088' WHERE id = 8`);
    t.deepEqual(await raw.map('SELECT coll FROM fieldsync.changes', [], (r: { coll: string }) => r.coll), ['clients']);
    // a device reading the bucket from the start meets the stale item
    const fresh = device('salesman1-fresh');
    await fresh.catchUp(1000);
    await d.catchUp(1000);
    const leaked = answers.flatMap((a) =>
      Object.entries(a.changes ?? {}).flatMap(([name, sec]) =>
        name !== 'clients' ? [] : sec.rows.filter((r) => r[sec.cols.indexOf('id')] === 8 && a.buckets.current[r[0] as number] === 'clients:1').map((r) => JSON.stringify(r)),
      ),
    );
    t.deepEqual(leaked.filter((r) => r.includes('+966500000088')), [], 'the moved row\'s new values never went out in clients:1');
    for (const dev of [d, fresh]) t.falsy(row(dev, 'clients', 8), `${dev.name}: moved out`);

    // a deleted row, not indexed either: never sent as a delete the bucket's checksum would not count
    await raw.none('DELETE FROM stock WHERE product_id = 6 AND warehouse_id = 1');
    const third = device('salesman1-third');
    await third.catchUp(1000);
    await d.catchUp(1000);
    for (const dev of [d, third]) t.falsy(stockRow(dev, 6, 1), `${dev.name}: deleted`);
    t.deepEqual([...d.problems, ...fresh.problems, ...third.problems], [], 'no checksum off, no version twice');
    t.deepEqual(await raw.any('SELECT 1 FROM fieldsync.changes'), [], 'the pull had the indexer catch up');

    // a row deleted with the triggers bypassed (session_replication_role = replica, as a
    // restore or a replication tool does): the first pull that meets it mends its items for
    // every device, and no checksum is off
    await raw.tx(async (tx) => {
      await tx.none(`SET LOCAL session_replication_role = replica`);
      await tx.none('DELETE FROM stock WHERE product_id = 7 AND warehouse_id = 1');
    });
    t.deepEqual(await raw.any('SELECT 1 FROM fieldsync.changes'), [], 'nothing captured');
    const fourth = device('salesman1-fourth');
    await fourth.catchUp(1000);
    await d.catchUp(1000);
    for (const dev of [d, fourth]) t.falsy(stockRow(dev, 7, 1), `${dev.name}: deleted`);
    const stale = await raw.any(
      `SELECT 1 FROM fieldsync.items i WHERE coll = 'stock' AND NOT deleted AND NOT EXISTS (SELECT 1 FROM stock s WHERE s.id::text = i.row_key)`,
    );
    t.deepEqual(stale, [], 'the bypassed delete is tombstoned in the items');
    t.deepEqual([...d.problems, ...fourth.problems], [], 'no checksum off after the bypass');
  } finally {
    await raw.$pool.end();
    await quiet.close();
  }
});

test('a cursor from before the outbox (transaction ids as positions) continues after the upgrade: only what changed after it', async (t) => {
  const tdb = await createTestDatabase();
  const raw = erpPool(tdb.url, 2);
  let server: Awaited<ReturnType<typeof startServer>> | undefined;
  const dataDir = await mkdtemp(join(tmpdir(), 'fieldsync-test-upgrade-'));
  try {
    await loadFixture(tdb.db);
    await tdb.index();
    const model = tdb.model!;
    // Back to the layout before migration 002: items stamped with transaction ids (what the
    // old capture triggers wrote), positions of the old cursors in the same numbers.
    await tdb.db.tx(async (x) => {
      await x.none(`
        DROP TABLE fieldsync.changes;
        ALTER TABLE fieldsync.state DROP COLUMN seq;
        ALTER TABLE fieldsync.items RENAME COLUMN seq TO tx;
        ALTER TABLE fieldsync.items ALTER COLUMN tx TYPE xid8 USING tx::text::xid8;
        ALTER INDEX fieldsync.items_seq RENAME TO items_tx;
        ALTER TABLE fieldsync.prune_horizon RENAME COLUMN pruned_seq TO pruned_tx;
        ALTER TABLE fieldsync.prune_horizon ALTER COLUMN pruned_tx TYPE xid8 USING pruned_tx::text::xid8;
        ALTER TABLE fieldsync.bucket_defs RENAME COLUMN reset_seq TO reset_tx;
        ALTER TABLE fieldsync.bucket_defs ALTER COLUMN reset_tx TYPE xid8 USING '1'::xid8;
        ALTER TABLE fieldsync.images RENAME COLUMN seq TO tx;
        ALTER TABLE fieldsync.images ALTER COLUMN tx TYPE xid8 USING '1'::xid8;
        ALTER TABLE fieldsync.images ALTER COLUMN tx SET NOT NULL;
        ALTER TABLE fieldsync.images ALTER COLUMN tx SET DEFAULT pg_current_xact_id();
        ALTER INDEX fieldsync.images_seq RENAME TO images_tx;
        ALTER TABLE fieldsync.mutations ADD COLUMN tx xid8;
        CREATE FUNCTION fieldsync.watermark() RETURNS xid8 LANGUAGE sql STABLE AS $$ SELECT pg_snapshot_xmin(pg_current_snapshot()) $$;
        DELETE FROM fieldsync.schema_migrations WHERE version = 2;`);
    });
    const old = await raw.tx(async (x) => {
      await x.none('UPDATE fieldsync.items SET tx = pg_current_xact_id()');
      return BigInt((await x.one<{ x: string }>('SELECT pg_current_xact_id()::text AS x')).x);
    });
    // the device's old cursor: caught up with everything below old + 1 in the catalog
    const { id: userId } = await raw.one<{ id: string }>(`SELECT id::text AS id FROM fieldsync.users WHERE email = 'salesman1@fixture.test'`);
    const { epoch } = await raw.one<{ epoch: number }>('SELECT epoch FROM fieldsync.state');
    const app = model.apps.get('salesman')!;
    const cursor = new CursorCodec(TEST_SECRET).encode({ epoch, userId, app: app.name, profile: app.hash, buckets: { catalog: [(old + 1n).toString(), null, null] } });
    // written by the old triggers after that cursor was issued: product 7
    await raw.tx((x) => x.none(`UPDATE fieldsync.items SET tx = pg_current_xact_id() WHERE coll = 'products' AND row_key = '7'`));

    const report = await install(tdb.db, model); // migration 002, and the capture as it is now
    t.deepEqual(report.migrations, ['002.do.outbox.sql']);
    t.deepEqual(report.resetBuckets, [], 'no bucket starts over');

    server = await startServer(
      loadConfig({ DATABASE_URL: tdb.url, JWT_SECRET: TEST_SECRET, HOST: '127.0.0.1', PORT: '0', SEED_DEMO: '0', LOG_LEVEL: 'silent', DATA_DIR: dataDir }),
      createLogger('silent'),
    );
    const login = await fetch(`${server.url}/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'salesman1@fixture.test', password: FIXTURE_PASSWORD }) });
    const token = ((await login.json()) as { token: string }).token;
    const d = new Device('salesman1', (c, limit) =>
      fetch(`${server!.url}/v1/sync/pull`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ ...(c && { cursor: c }), limit }) }),
      server.url,
    );
    d.cursor = cursor;
    const { status, body } = await d.pullOnce(5000);
    t.is(status, 200, JSON.stringify(body));
    const catalog = d.last!.buckets.current.indexOf('catalog');
    const catalogRows = Object.entries(d.last!.changes).flatMap(([name, sec]) => sec.rows.filter((r) => r[0] === catalog).map((r) => `${name}:${String(r[1])}`));
    t.deepEqual(catalogRows, ['products:7'], 'the catalog continues from the old position: only the product changed after it');

    await raw.none(`UPDATE products SET name = 'after the upgrade' WHERE id = 8`);
    await server.indexer.flush();
    await server.heads.refresh();
    await d.catchUp(5000);
    t.is(d.table('products').get('8')?.row.name, 'after the upgrade');
  } finally {
    await server?.stop();
    await raw.$pool.end();
    await tdb.drop();
    await rm(dataDir, { recursive: true, force: true });
  }
});
