import test from 'ava';
import { MemorySnapshotStore } from '../../src/cache/store.js';
import { queriesSent } from '../../src/db/pg.js';
import { erpPool } from '../helpers/db.js';
import { Device, type PullBody } from '../helpers/device.js';
import { FIXTURE_PASSWORD, loadFixture } from '../helpers/fixture.js';
import { startSecondInstance, startTestServer, type TestServer } from '../helpers/server.js';

const REDIS = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

async function login(s: TestServer, who: string): Promise<string> {
  const res = await s.post('/v1/auth/login', { email: `${who}@fixture.test`, password: FIXTURE_PASSWORD });
  return ((await res.json()) as { token: string }).token;
}
const device = (s: TestServer, who: string, token: string) =>
  new Device(who, (cursor, limit) => s.post('/v1/sync/pull', { ...(cursor && { cursor }), limit }, { authorization: `Bearer ${token}` }), s.url);
const firstPull = async (s: TestServer, token: string) =>
  (await (await s.post('/v1/sync/pull', { limit: 10 }, { authorization: `Bearer ${token}` })).json()) as PullBody;

test('a bucket starting from zero comes from snapshot pages, identical bytes for every caller, plus deltas', async (t) => {
  const s = await startTestServer({ SNAPSHOT_PAGE_ROWS: '10' });
  try {
    await loadFixture(s.db);
    await s.settle();
    const [t1, t2] = [await login(s, 'salesman1'), await login(s, 'salesman2')];
    const a = await firstPull(s, t1);
    const b = await firstPull(s, t2);
    const catA = a.snapshots!.find((x) => x.bucket === 'catalog')!;
    const catB = b.snapshots!.find((x) => x.bucket === 'catalog')!;
    t.is(catA.id, catB.id, 'one snapshot for everyone with this app');
    t.true(catA.pages.length >= 4, `${catA.pages.length} pages of 10 rows`);
    const pageA = await fetch(`${s.url}${catA.pages[1]}`, { headers: { 'accept-encoding': 'gzip' } });
    const pageB = await fetch(`${s.url}${catB.pages[1]}`, { headers: { 'accept-encoding': 'gzip' } });
    t.is(pageA.headers.get('content-encoding'), 'gzip');
    t.is(pageA.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    t.truthy(pageA.headers.get('etag'));
    // compare the raw stored bytes, as a CDN would hold them
    const raw = async (url: string) => {
      const { request } = await import('node:http');
      return new Promise<Buffer>((resolve, reject) => {
        const req = request(`${s.url}${url}`, { headers: { 'accept-encoding': 'gzip' } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve(Buffer.concat(chunks)));
        });
        req.on('error', reject);
        req.end();
      });
    };
    t.deepEqual(await raw(catA.pages[1]!), await raw(catB.pages[1]!), 'the same stored bytes for every caller');
    void pageB;
    const br = await fetch(`${s.url}${catA.pages[0]}`, { headers: { 'accept-encoding': 'br' } });
    t.is(br.headers.get('content-encoding'), 'br');

    // writes after the snapshot: snapshot + deltas must equal the database
    const erp = erpPool(s.tdb.url, 2);
    await erp.none(`UPDATE products SET name_ar = 'بعد اللقطة' WHERE id = 3; DELETE FROM prices WHERE product_id = 4; INSERT INTO categories (id, name, name_ar) VALUES (77, 'New', 'جديد')`);
    await erp.$pool.end();
    await s.settle();
    const d = device(s, 'salesman1', t1);
    await d.catchUp(1000);
    t.true(d.snapshotPages >= catA.pages.length, 'bootstrapped from pages');
    const want = await s.db.map(
      `SELECT p.id::text, i.seq::text AS v, p.name_ar FROM products p JOIN fieldsync.items i ON i.coll = 'products' AND i.row_key = p.id::text AND i.bucket = 'catalog' ORDER BY p.id`,
      [],
      (r: { id: string; v: string; name_ar: string }) => `${r.id}:${r.v}:${r.name_ar}`,
    );
    t.deepEqual([...d.table('products').values()].map((r) => `${r.row.id}:${r.v}:${r.row.name_ar}`).sort(), want.sort());
    t.true(d.table('categories').has('77'));
    const prices = await s.db.map(`SELECT id::text FROM prices WHERE pricelist_id IN (SELECT DISTINCT pricelist_id FROM clients WHERE salesman_id = 1 AND is_active)`, [], (r: { id: string }) => r.id);
    t.deepEqual([...d.table('prices').keys()].sort(), prices.sort(), 'deleted prices gone, the rest there');
  } finally {
    await s.close();
  }
});

test('a tampered or expired page URL is refused; an unknown page is gone', async (t) => {
  const s = await startTestServer();
  try {
    await loadFixture(s.db);
    await s.settle();
    const body = await firstPull(s, await login(s, 'warehouse'));
    const url = body.snapshots![0]!.pages[0]!;
    t.is((await fetch(`${s.url}${url}`)).status, 200);
    t.is((await fetch(`${s.url}${url.replace('/0?', '/1?')}`)).status, 403, 'another page with this signature');
    t.is((await fetch(`${s.url}${url.replace(/sig=[\w-]+/, 'sig=AAAAAAAAAAAAAAAAAAAAAA')}`)).status, 403, 'a forged signature');
    const [, bucket, id] = /\/v1\/sync\/snapshots\/([^/]+)\/([^/]+)\//.exec(url)!;
    const expired = s.snapshots!.pageUrl(decodeURIComponent(bucket!), id!, 0, Math.floor(Date.now() / 1000) - 1);
    const res = await fetch(`${s.url}${expired}`);
    t.is(res.status, 403, 'expired');
    t.is(res.headers.get('content-type'), 'application/problem+json');
    const gone = s.snapshots!.pageUrl(decodeURIComponent(bucket!), id!, 999, Math.floor(Date.now() / 1000) + 60);
    t.like(await (await fetch(`${s.url}${gone}`)).json(), { status: 410, code: 'snapshot-gone' });
  } finally {
    await s.close();
  }
});

test('two app instances sharing Redis build each snapshot once under concurrent first requests', async (t) => {
  const a = await startTestServer({ REDIS_URL: REDIS });
  try {
    await loadFixture(a.db);
    await a.settle();
    const b = await startSecondInstance(a, { REDIS_URL: REDIS });
    try {
      const token = await login(a, 'warehouse');
      const builds = async (srv: { metrics: { registry: { metrics(): Promise<string> } } }) =>
        Number(/fieldsync_snapshot_build_seconds_count\{kind="catalog"\} (\d+)/.exec(await srv.metrics.registry.metrics())?.[1] ?? 0);
      await new Promise((r) => setTimeout(r, 500)); // let the start-up warm-up (salesman app) finish
      const before = (await builds(a)) + (await builds(b));
      const pulls = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          fetch(`${(i % 2 ? a : b).url}/v1/sync/pull`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"limit":10}' }).then(
            (r) => r.json() as Promise<PullBody>,
          ),
        ),
      );
      const ids = new Set(pulls.flatMap((p) => p.snapshots!.filter((x) => x.bucket === 'catalog').map((x) => x.id)));
      t.is(ids.size, 1, `one catalog snapshot, not ${ids.size}`);
      t.is((await builds(a)) + (await builds(b)) - before, 1, 'built once across both');
    } finally {
      await b.stop();
    }
  } finally {
    await a.close();
  }
});

test('Redis down: pulls page from PostgreSQL, never an error to the phone', async (t) => {
  const s = await startTestServer({ REDIS_URL: 'redis://127.0.0.1:1' }); // nothing listens there
  try {
    await loadFixture(s.db);
    await s.settle();
    const token = await login(s, 'salesman1');
    const d = device(s, 'salesman1', token);
    await d.catchUp(5000);
    t.is(d.snapshotPages, 0);
    t.true(d.table('products').size >= 30, 'the catalog came from PostgreSQL');
    t.regex(await s.metrics.registry.metrics(), /fieldsync_snapshot_offers_total\{result="fallback"\} [1-9]/);
  } finally {
    await s.close();
  }
});

test('a snapshot whose bucket changed past the limit is rebuilt; the old one keeps serving meanwhile', async (t) => {
  const s = await startTestServer({ SNAPSHOT_MAX_DELTA_ROWS: '0' });
  try {
    await loadFixture(s.db);
    await s.settle();
    const token = await login(s, 'driver');
    const first = (await firstPull(s, token)).snapshots![0]!;
    const erp = erpPool(s.tdb.url, 1);
    await erp.none(`UPDATE products SET name = name || '+' WHERE id = 1`);
    await erp.$pool.end();
    await s.settle();
    const meanwhile = (await firstPull(s, token)).snapshots![0]!;
    t.truthy(meanwhile, 'served while rebuilding');
    let next = meanwhile;
    for (let i = 0; i < 100 && next.id === first.id; i++) {
      await new Promise((r) => setTimeout(r, 50));
      next = (await firstPull(s, token)).snapshots![0]!;
    }
    t.not(next.id, first.id, 'rebuilt');
    t.true(BigInt(next.position) > BigInt(first.position));
  } finally {
    await s.close();
  }
});

test('a snapshot older than its maximum age is rebuilt, the old one serving meanwhile', async (t) => {
  const s = await startTestServer({ SNAPSHOT_MAX_AGE_SECONDS: '1' });
  try {
    await loadFixture(s.db);
    await s.settle();
    const token = await login(s, 'driver');
    const first = (await firstPull(s, token)).snapshots![0]!;
    await new Promise((r) => setTimeout(r, 1200)); // no data change: only age decides
    let next = first;
    for (let i = 0; i < 100 && next.id === first.id; i++) {
      next = (await firstPull(s, token)).snapshots![0]!;
      t.truthy(next, 'always an offer');
      if (next.id === first.id) await new Promise((r) => setTimeout(r, 50));
    }
    t.not(next.id, first.id, 'rebuilt by age');
  } finally {
    await s.close();
  }
});

test('the no-change pull after a snapshot bootstrap still touches no PostgreSQL', async (t) => {
  const s = await startTestServer();
  try {
    await loadFixture(s.db);
    await s.settle();
    const d = device(s, 'warehouse', await login(s, 'warehouse'));
    await d.catchUp(1000);
    for (let i = 0; i < 100 && Object.keys(d.last!.checksums).length < d.last!.buckets.current.length; i++) {
      await new Promise((r) => setTimeout(r, 20));
      await d.pullOnce(1000);
    }
    const before = queriesSent(s.db);
    for (let i = 0; i < 5; i++) await d.pullOnce(1000);
    t.is(queriesSent(s.db) - before, 0);
    for (const [b, sum] of Object.entries(d.last!.checksums)) t.is(d.checksum(b), sum, `checksum of ${b} after a snapshot bootstrap`);
  } finally {
    await s.close();
  }
});

test('the in-memory store respects its byte bound, evicting the oldest pages', async (t) => {
  const store = new MemorySnapshotStore(10_000);
  for (let i = 0; i < 20; i++) await store.putPage('snap', i, { gzip: Buffer.alloc(1000), br: Buffer.alloc(500) }, 60_000);
  t.true(store.size <= 10_000, `${store.size} bytes`);
  t.is(await store.getPage('snap', 0, 'gzip'), undefined, 'the oldest went first');
  t.truthy(await store.getPage('snap', 19, 'gzip'));
  const lock = await store.lock('x', 60_000);
  t.truthy(lock);
  t.is(await store.lock('x', 60_000), undefined, 'one holder at a time');
  await store.unlock('x', lock!);
  t.truthy(await store.lock('x', 60_000));
});

test('Redis cut mid-run: the next pulls still work, and snapshots come back when Redis does', async (t) => {
  const s = await startTestServer({ REDIS_URL: REDIS });
  const { Redis } = await import('ioredis');
  const admin = new Redis(REDIS);
  try {
    await loadFixture(s.db);
    await s.settle();
    const token = await login(s, 'salesman2');
    const offered = (await firstPull(s, token)).snapshots ?? [];
    t.true(offered.length > 0, 'snapshots while Redis is up');
    // cut this server's main connection (snapshots, leases), found by its name
    const list = (await admin.client('LIST')) as string;
    const ids = list.split('\n').filter((l) => l.includes(`name=fieldsync:${s.tdb.name} `)).map((l) => /id=(\d+)/.exec(l)![1]!);
    t.true(ids.length > 0);
    for (const id of ids) await admin.client('KILL', 'ID', id);
    // a page read while the store reconnects: served, or gone (pull again), never a 500
    const page = await fetch(`${s.url}${offered[0]!.pages.at(-1)!}`);
    t.true(page.status === 200 || page.status === 410, `a page during the cut: ${page.status}`);
    await page.arrayBuffer();
    const d = device(s, 'salesman2', token);
    await d.catchUp(5000);
    t.true(d.table('products').size >= 30, 'the pull right after the cut worked');
    let back = false;
    for (let i = 0; i < 50 && !back; i++) {
      await new Promise((r) => setTimeout(r, 100));
      back = ((await firstPull(s, token)).snapshots ?? []).length > 0;
    }
    t.true(back, 'snapshots again once reconnected');
  } finally {
    admin.disconnect();
    await s.close();
  }
});
