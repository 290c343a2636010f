import { gunzipSync } from 'node:zlib';
import test from 'ava';
import pgPromise from 'pg-promise';
import { queriesSent } from '../../src/db/pg.js';
import { Device, type PullBody } from '../helpers/device.js';
import { FIXTURE_PASSWORD, loadFixture } from '../helpers/fixture.js';
import { erpPool } from '../helpers/db.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

let s: TestServer;
let erp: pgPromise.IDatabase<unknown>;
const tokens: Record<string, string> = {};

test.before(async () => {
  s = await startTestServer({ DOORBELL_POLL_MS: '60000', SNAPSHOTS: '0' }); // paging itself; snapshots: snapshots.test.ts
  await loadFixture(s.db);
  await s.settle();
  erp = erpPool(s.tdb.url, 4);
  for (const who of ['admin', 'salesman1', 'salesman2', 'salesman3', 'client', 'warehouse', 'driver']) {
    const res = await s.post('/v1/auth/login', { email: `${who}@fixture.test`, password: FIXTURE_PASSWORD });
    tokens[who] = ((await res.json()) as { token: string }).token;
  }
});
test.after.always(async () => {
  await erp?.$pool.end();
  await s?.close();
});

const auth = (who: string) => ({ authorization: `Bearer ${tokens[who]}` });
const pull = (who: string, body: Record<string, unknown> = {}) => s.post('/v1/sync/pull', body, auth(who));
const device = (who: string, app?: string) =>
  new Device(who, (cursor, limit) => pull(who, { ...(cursor && { cursor }), ...(app && { app }), limit }), s.url);
/** ERP write, then wait until pull can see it (the doorbell poll is off in this file). */
async function erpWrite(sql: string, params?: unknown[]): Promise<void> {
  await erp.none(sql, params);
  await s.settle();
}

test.serial('page size 1 walks the whole bucket set, one item per page, and ends caught up', async (t) => {
  const d = device('salesman1');
  const pages = await d.catchUp(1);
  const total = [...d.tables.values()].reduce((n, tb) => n + tb.size, 0);
  t.true(total > 100);
  t.true(pages >= total, 'one row per page');
  const all = device('salesman1');
  await all.catchUp(5000);
  for (const name of all.tables.keys()) t.deepEqual([...d.table(name).keys()].sort(), [...all.table(name).keys()].sort(), name);
  t.deepEqual(d.last!.buckets.current, ['catalog', 'prices:2', 'prices:3', 'stock:1', 'clients:1', 'orders:1']);
});

test.serial('the answer is compact: columns once, rows as arrays, money as strings, times in ms', async (t) => {
  const res = await pull('salesman1', { limit: 5000 });
  t.is(res.status, 200);
  const body = (await res.json()) as PullBody;
  const products = body.changes.products!;
  t.deepEqual(products.cols.slice(0, 3), ['b', 'id', 'v']);
  const row = Object.fromEntries(products.cols.map((c, i) => [c, products.rows[0]![i]]));
  t.is(typeof row.id, 'number');
  t.is(typeof row.v, 'number');
  t.regex(row.price as string, /^\d+\.\d{2}$/);
  t.true(typeof row.updated === 'number' && (row.updated as number) > 1.7e12);
  t.is(body.buckets.current[row.b as number], 'catalog');
  t.false(body.hasMore);
  t.deepEqual(body.buckets.added, body.buckets.current, 'no cursor: every bucket starts from zero');
  t.is(Object.keys(body.checksums).length, body.buckets.current.length);
});

test.serial('Arabic text round-trips byte-exact', async (t) => {
  const name = 'تمر سكري فاخر – ١ كغ «ممتاز» 🌴 ‏(RTL)';
  await erpWrite(`UPDATE products SET name_ar = $1 WHERE id = 7`, [name]);
  const d = device('warehouse');
  await d.catchUp(5000);
  t.is(d.table('products').get('7')!.row.name_ar, name);
  t.deepEqual(Buffer.from(d.table('products').get('7')!.row.name_ar as string), Buffer.from(name));
});

test.serial('gzip is served when asked and decodes to the same JSON; br for clients that ask', async (t) => {
  const body = JSON.stringify({ limit: 5000 });
  const headers = { ...auth('admin'), 'content-type': 'application/json' };
  const plain = await (await fetch(`${s.url}/v1/sync/pull`, { method: 'POST', headers, body })).json();
  const gz = await import('node:http').then(
    (http) =>
      new Promise<{ encoding: string | undefined; body: Buffer }>((resolve, reject) => {
        const req = http.request(`${s.url}/v1/sync/pull`, { method: 'POST', headers: { ...headers, 'accept-encoding': 'gzip' } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ encoding: res.headers['content-encoding'], body: Buffer.concat(chunks) }));
        });
        req.on('error', reject);
        req.end(body);
      }),
  );
  t.is(gz.encoding, 'gzip');
  const decoded = JSON.parse(gunzipSync(gz.body).toString('utf8')) as PullBody;
  t.deepEqual([decoded.changes, decoded.buckets], [(plain as PullBody).changes, (plain as PullBody).buckets]);
  t.true(gz.body.length < JSON.stringify(plain).length / 3);
  const br = await fetch(`${s.url}/v1/sync/pull`, { method: 'POST', headers: { ...headers, 'accept-encoding': 'br' }, body });
  t.is(br.headers.get('content-encoding'), 'br');
});

test.serial('a salesman never receives another salesman’s clients or orders, also after they move', async (t) => {
  const d = device('salesman2');
  await d.catchUp(3);
  const mine = await s.db.map('SELECT id FROM clients WHERE salesman_id = 2 ORDER BY id', [], (r: { id: number }) => String(r.id));
  t.deepEqual([...d.table('clients').keys()].sort(), mine.sort());
  const theirs = await s.db.one<{ id: number }>('SELECT min(id) AS id FROM clients WHERE salesman_id = 1');
  const moved = (await s.db.one<{ id: number }>('SELECT min(id) AS id FROM clients WHERE salesman_id = 2')).id;
  await erpWrite(`INSERT INTO orders (id, client_id, salesman_id, warehouse_id, total) VALUES ('11111111-1111-4111-8111-111111111111', $1, 1, 1, 5)`, [theirs.id]);
  await erpWrite('UPDATE clients SET salesman_id = 1 WHERE id = $1', [moved]);
  await d.catchUp(3);
  t.false(d.table('clients').has(String(moved)), 'a client moved away is deleted');
  t.false(d.table('orders').has('11111111-1111-4111-8111-111111111111'));
  for (const r of d.table('clients').values()) t.is(r.row.salesman, 2);
  const s1 = device('salesman1');
  await s1.catchUp(50);
  t.true(s1.table('clients').has(String(moved)), 'and arrives at its new salesman');
  t.true(s1.table('orders').has('11111111-1111-4111-8111-111111111111'));
});

test.serial('a bucket the user loses is announced in removed; one gained starts from zero', async (t) => {
  const d = device('salesman3');
  await d.catchUp(100);
  const before = d.last!.buckets.current.filter((b) => b.startsWith('prices:'));
  t.true(before.length > 0);
  // move all of salesman 3's clients to pricelist 1 only
  await erpWrite('UPDATE clients SET pricelist_id = 1 WHERE salesman_id = 3');
  const { body } = await d.pullOnce(100);
  const removed = (body as PullBody).buckets.removed;
  t.deepEqual(removed.sort(), before.filter((b) => b !== 'prices:1').sort());
  t.deepEqual((body as PullBody).buckets.added, before.includes('prices:1') ? [] : ['prices:1']);
  await d.catchUp(100);
  const pricelists = new Set([...d.table('prices').values()].map((r) => r.bucket));
  t.deepEqual([...pricelists], ['prices:1'], 'rows of removed buckets dropped; the gained one filled');
});

test.serial('a salesman moved to another warehouse (salesmen are not synced) gets its stock at the next pull', async (t) => {
  const d = device('salesman1');
  await d.catchUp(1000);
  t.deepEqual(d.last!.buckets.current.filter((b) => b.startsWith('stock:')), ['stock:1']);
  await erpWrite('UPDATE salesmen SET warehouse_id = 2 WHERE id = 1');
  const { body } = await d.pullOnce(1000);
  t.deepEqual((body as PullBody).buckets.removed, ['stock:1']);
  t.deepEqual((body as PullBody).buckets.added, ['stock:2']);
  await d.catchUp(1000);
  t.deepEqual(new Set([...d.table('stock').values()].map((r) => r.bucket)), new Set(['stock:2']));
  await erpWrite('UPDATE salesmen SET warehouse_id = 1 WHERE id = 1');
});

test.serial('a tombstone older (by transaction id) than a later-committed re-insert does not delete the row', async (t) => {
  // T1 gets a lower transaction id, stays open; T2 deletes price 5 and commits; T1 re-inserts it and commits.
  // The row then carries T1 < T2's tombstone: sent in id order, the delete would wrongly come last.
  const d = device('admin');
  await d.catchUp(5000);
  const price = await s.db.one<{ id: number; pricelist_id: number; product_id: number }>('SELECT id, pricelist_id, product_id FROM prices ORDER BY id LIMIT 1');
  const t1 = await erp.connect();
  try {
    await t1.none('BEGIN');
    await t1.none('UPDATE warehouses SET city = city WHERE id = 3; UPDATE categories SET sort_order = sort_order + 1 WHERE id = 6');
    await erp.none('DELETE FROM prices WHERE id = $1', [price.id]); // not erpWrite: settling would wait for T1 itself
    await s.heads.refresh();
    await d.pullOnce(1); // nothing new below the watermark yet: T1 holds it
    await t1.none('INSERT INTO prices (id, pricelist_id, product_id, price) VALUES ($1, $2, $3, 9.99)', [price.id, price.pricelist_id, price.product_id]);
    await t1.none('COMMIT');
  } finally {
    t1.done();
  }
  await s.settle();
  // page size 1: row (T1) and tombstone (T2) arrive in separate pages, row first
  await d.catchUp(1);
  t.is(d.table('prices').get(String(price.id))?.row.price, '9.99');
});

test.serial('the no-change pull is answered without any PostgreSQL query', async (t) => {
  const d = device('salesman1');
  await d.catchUp(5000);
  // checksums are computed in the background after a change: wait until all are there
  for (let i = 0; i < 200 && Object.keys(d.last!.checksums).length < d.last!.buckets.current.length; i++) {
    await new Promise((r) => setTimeout(r, 20));
    await d.pullOnce(5000);
  }
  const before = queriesSent(s.db);
  const fast0 = await s.fetch('/metrics').then((r) => r.text());
  for (let i = 0; i < 20; i++) {
    const { status, body } = await d.pullOnce(100);
    t.is(status, 200);
    t.false((body as PullBody).hasMore);
    t.deepEqual((body as PullBody).changes, {});
  }
  t.is(queriesSent(s.db) - before, 0, 'no query for 20 no-change pulls');
  const fast = (text: string) => Number(/fieldsync_pull_requests_total\{path="fast"\} (\d+)/.exec(text)?.[1] ?? 0);
  t.true(fast(await s.fetch('/metrics').then((r) => r.text())) - fast(fast0) >= 20);
  t.is(Object.keys(d.last!.checksums).length, d.last!.buckets.current.length);

  await erpWrite('UPDATE stock SET qty = qty + 1 WHERE warehouse_id = 1 AND product_id = 3');
  const { body } = await d.pullOnce(100);
  t.is((body as PullBody).changes.stock?.rows.length, 1, 'a change is picked up right after');
});

test.serial('GET with the cursor in the query string answers the same, with an ETag and 304', async (t) => {
  const d = device('driver');
  await d.catchUp(5000);
  const url = `/v1/sync/pull?cursor=${encodeURIComponent(d.cursor!)}&limit=10`;
  const first = await s.fetch(url, { headers: auth('driver') });
  t.is(first.status, 200);
  const etag = first.headers.get('etag')!;
  t.truthy(etag);
  t.is(first.headers.get('cache-control'), 'private, no-cache');
  const post = await pull('driver', { cursor: d.cursor, limit: 10 });
  t.is(post.headers.get('etag'), etag, 'POST and GET give the same answer');
  const again = await s.fetch(url, { headers: { ...auth('driver'), 'if-none-match': etag } });
  t.is(again.status, 304);
  t.truthy(again.headers.get('x-request-id'), 'the fast lane sets the same headers');
  const mine = await s.fetch(url, { headers: { ...auth('driver'), 'x-request-id': 'trace-42' } });
  t.is(mine.headers.get('x-request-id'), 'trace-42');
  const repeated = await s.fetch(`${url}&cursor=${encodeURIComponent(d.cursor!)}`, { headers: auth('driver') });
  t.is(repeated.status, 400, 'a repeated parameter falls through to the route, which refuses it');
  t.is((await s.fetch(url)).status, 401, 'no token: the full route answers');
  const changed = await s.fetch(url, { headers: { ...auth('driver'), 'if-none-match': etag } });
  t.is(changed.status, 304, 'unchanged');
  await erpWrite(`UPDATE products SET name = name || '?' WHERE id = 2`);
  const after = await s.fetch(url, { headers: { ...auth('driver'), 'if-none-match': etag } });
  t.is(after.status, 200, 'a change changes the ETag');
});

test.serial('bad requests: 401 without a token, 400 for garbage, tampered or foreign cursors and unknown apps, 403 for an app of another role', async (t) => {
  const problem = async (res: Response) => ({ status: res.status, type: res.headers.get('content-type'), code: ((await res.json()) as { code: string }).code });
  t.like(await problem(await s.post('/v1/sync/pull', {})), { status: 401, code: 'token-missing' });
  t.like(await problem(await pull('salesman1', { cursor: 'garbage' })), { status: 400, code: 'cursor-invalid', type: 'application/problem+json' });
  const d = device('salesman1');
  await d.pullOnce(10);
  const [body, sig] = d.cursor!.split('.');
  const payload = JSON.parse(Buffer.from(body!, 'base64url').toString());
  payload.b.catalog = ['0', -1, null];
  const forged = `${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${sig}`;
  t.like(await problem(await pull('salesman1', { cursor: forged })), { status: 400, code: 'cursor-invalid' });
  t.like(await problem(await pull('salesman2', { cursor: d.cursor })), { status: 400, code: 'cursor-invalid' }, "another user's cursor");
  t.like(await problem(await pull('salesman1', { cursor: d.cursor, app: 'travel_sales' })), { status: 400, code: 'cursor-invalid' }, "another app's cursor");
  t.like(await problem(await pull('salesman1', { app: 'spaceship' })), { status: 400, code: 'validation-failed' });
  t.like(await problem(await pull('salesman1', { limit: 5001 })), { status: 400, code: 'validation-failed' });
  t.like(await problem(await pull('salesman1', { limit: 0 })), { status: 400, code: 'validation-failed' });
  t.like(await problem(await pull('salesman1', { cursor: d.cursor, buckets: ['clients:2'] })), { status: 400, code: 'validation-failed' }, 'a client cannot name its buckets');
  t.like(await problem(await pull('salesman1', { app: 'manager' })), { status: 403, code: 'forbidden' });
  t.like(await problem(await pull('driver', { app: 'salesman' })), { status: 403, code: 'forbidden' });
  t.is((await pull('salesman1', { cursor: d.cursor })).status, 200, 'the good cursor still works');
});

test.serial('410 cursor-expired: pruned tombstones name their buckets with a reset cursor; an epoch change resets all', async (t) => {
  const d = device('admin');
  await d.catchUp(5000);
  await erpWrite('DELETE FROM stock WHERE product_id = 29 AND warehouse_id = 2');
  await erp.none(`UPDATE fieldsync.items SET deleted_at = now() - interval '31 days' WHERE bucket = 'stock:2' AND deleted`);
  const { pruneTombstones } = await import('../../src/sync/prune.js');
  t.true((await pruneTombstones(s.db, s.model, 30)) >= 1);
  const res = await pull('admin', { cursor: d.cursor });
  t.is(res.status, 410);
  const body = (await res.json()) as { type: string; code: string; buckets: string[]; resetCursor: string };
  t.regex(body.type, /cursor-expired$/);
  t.deepEqual(body.buckets, ['stock:2']);
  d.dropBucket('stock:2');
  d.cursor = body.resetCursor;
  await d.catchUp(5000);
  const want = await s.db.one<{ n: number }>('SELECT count(*) AS n FROM stock WHERE warehouse_id = 2');
  t.is([...d.table('stock').values()].filter((r) => r.bucket === 'stock:2').length, want.n, 'the bucket restarted from zero');

  await erp.none('TRUNCATE stock'); // bumps the sync epoch (no deletes can be recorded)
  await s.settle();
  const reset = await pull('admin', { cursor: d.cursor });
  t.is(reset.status, 410);
  t.like(await reset.json(), { code: 'cursor-expired', resetCursor: null });
});

test.serial('an empty database answers every bucket empty and caught up', async (t) => {
  const empty = await startTestServer();
  try {
    await empty.db.none(`INSERT INTO fieldsync.users (email, password_hash, role, display_name) VALUES ('a@x.test', (SELECT $1), 'admin', 'A')`, [
      (await s.db.one<{ h: string }>(`SELECT password_hash AS h FROM fieldsync.users WHERE email = 'admin@fixture.test'`)).h,
    ]);
    await empty.settle();
    const login = await empty.post('/v1/auth/login', { email: 'a@x.test', password: FIXTURE_PASSWORD });
    const token = ((await login.json()) as { token: string }).token;
    const res = await empty.post('/v1/sync/pull', {}, { authorization: `Bearer ${token}` });
    t.is(res.status, 200);
    const body = (await res.json()) as PullBody;
    t.false(body.hasMore);
    t.deepEqual(body.changes, {});
    t.deepEqual(body.buckets.current, ['catalog', 'clients:all', 'orders:all']);
    t.deepEqual(body.checksums, { catalog: 0, 'clients:all': 0, 'orders:all': 0 });
  } finally {
    await empty.close();
  }
});
