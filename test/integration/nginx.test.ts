import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent } from 'node:http';
import type { Socket as NetSocket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import sharp from 'sharp';
import { clientAddress } from '../../src/lib/client-address.js';
import type { RunningServer } from '../../src/server.js';
import { startEmbeddedS3 } from '../../src/storage/embedded.js';
import { erpPool } from '../helpers/db.js';
import { Device } from '../helpers/device.js';
import { FIXTURE_PASSWORD, loadFixture } from '../helpers/fixture.js';
import { requireNginx, startNginx, type RunningNginx } from '../helpers/nginx.js';
import { startSecondInstance, startTestServer, type TestServer } from '../helpers/server.js';
import { connected, record, sockets, until, wait, type Client } from '../helpers/sockets.js';

/**
 * docker-compose.yml's load balancer, for real: the nginx binary with the project's own
 * deploy/nginx.conf (only the upstream addresses and the listen port replaced) in front of
 * two fieldsync processes sharing PostgreSQL, Redis and an S3 store, as the compose stack
 * runs them. Everything a phone does goes through nginx; then one replica dies mid-run.
 *
 * nginx hashes the push channel by client address: every test client would come from
 * 127.0.0.1 and land on one replica, so sockets connect from other loopback addresses
 * (127.0.<n>.1, a different /24 each, so ip_hash would spread them too) through an HTTP
 * agent bound to that address.
 */

const REDIS = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

let app1: TestServer;
let app2: RunningServer;
let lb: RunningNginx;
let erp: ReturnType<typeof erpPool>;
let s3: { endpoint: string; stop(): Promise<void> } | undefined;
let s3Dir: string | undefined;
const tokens: Record<string, string> = {};
const { socket, closeAll } = sockets();
type Replica = 'app1' | 'app2';
/** every request each replica received (after nginx): path and X-Forwarded-For */
const served: { replica: Replica; method: string; url: string; xff: string }[] = [];
/** app1's TCP connections, HTTP and upgraded WebSockets: what a crash cuts */
const app1Connections = new Set<NetSocket>();
const agents: Agent[] = [];
/** set when replica 1 is crashed (its io no longer answers for sockets) */
let app1Killed = false;

test.before(async () => {
  await requireNginx(); // fails here, clearly, when the binary is missing
  s3Dir = await mkdtemp(join(tmpdir(), 'fieldsync-nginx-s3-'));
  s3 = await startEmbeddedS3(s3Dir, 'fieldsync-media'); // the replicas share one store, as MinIO in compose
  const env = { REDIS_URL: REDIS, TRUST_PROXY: '1', POKE_WINDOW_MS: '100', S3_ENDPOINT: s3.endpoint, S3_ACCESS_KEY_ID: 'S3RVER', S3_SECRET_ACCESS_KEY: 'S3RVER' };
  app1 = await startTestServer(env);
  await loadFixture(app1.db);
  await app1.settle();
  app2 = await startSecondInstance(app1, env);
  app1.http.on('connection', (c: NetSocket) => {
    app1Connections.add(c);
    c.once('close', () => app1Connections.delete(c));
  });
  for (const [replica, s] of [['app1', app1], ['app2', app2]] as const) {
    s.http.on('request', (req) => served.push({ replica, method: req.method ?? '', url: req.url ?? '', xff: String(req.headers['x-forwarded-for'] ?? '') }));
  }
  lb = await startNginx({ 'app1:3000': `127.0.0.1:${app1.bound.port}`, 'app2:3000': `127.0.0.1:${app2.bound.port}` });
  erp = erpPool(app1.tdb.url, 2);
  for (const who of ['admin', 'salesman1']) {
    const res = await post('/v1/auth/login', { email: `${who}@fixture.test`, password: FIXTURE_PASSWORD });
    if (res.status !== 200) throw new Error(`login through nginx answered ${res.status}: ${await res.text()}`);
    tokens[who] = ((await res.json()) as { token: string }).token;
  }
});

test.after.always(async () => {
  try {
    closeAll(); // throws when an event was off its schema
  } finally {
    for (const a of agents) a.destroy();
    await lb?.stop();
    await erp?.$pool.end();
    await app2?.stop();
    await app1?.close();
    await s3?.stop();
    if (s3Dir) await rm(s3Dir, { recursive: true, force: true });
  }
});

const api = (path: string, init: RequestInit = {}) => fetch(lb.url + path, init);
function post(path: string, body: unknown, token?: string): Promise<Response> {
  return api(path, { method: 'POST', headers: { 'content-type': 'application/json', ...(token && { authorization: `Bearer ${token}` }) }, body: JSON.stringify(body) });
}
const auth = (who: string) => ({ authorization: `Bearer ${tokens[who]}` });

/** Which replica holds a connected socket (the client's id is the server's socket id). */
function replicaOf(c: Client): Replica | undefined {
  if (c.id === undefined) return undefined;
  if (!app1Killed && app1.io.of('/').sockets.has(c.id)) return 'app1';
  if (app2.io.of('/').sockets.has(c.id)) return 'app2';
  return undefined;
}
/** The client address the replica holding the socket read from its handshake (TRUST_PROXY=1). */
function addressSeen(c: Client): string | undefined {
  const r = replicaOf(c);
  const s = r && (r === 'app1' ? app1 : app2).io.of('/').sockets.get(c.id!);
  return s ? clientAddress(s.handshake.address, s.handshake.headers['x-forwarded-for'], 1) : undefined;
}

/** A push channel client through nginx from a loopback address of its own. */
function clientFrom(address: string, opts: Record<string, unknown> = {}): Client {
  const agent = new Agent({ localAddress: address, keepAlive: true });
  agents.push(agent);
  return socket(lb.url, tokens.salesman1, { agent, reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 500, randomizationFactor: 0, ...opts });
}
const describe = (p: { polling: boolean; address: string; replica: Replica }) => `${p.polling ? 'polling' : 'WebSocket'} socket from ${p.address} on ${p.replica}`;
const poked = (got: ReturnType<typeof record>, bucket: string) => got.filter((e) => e.event === 'sync:poke' && (e.data.buckets as string[]).includes(bucket));

test.serial('the HTTP API through nginx: login, pull (POST, GET with ETag and 304), snapshot pages, push, an image; balanced over both replicas, the client appended to X-Forwarded-For', async (t) => {
  const from = served.length;
  // a device bootstraps through nginx: snapshot pages, then the pages of its buckets
  const d = new Device('salesman1', (cursor, limit) => post('/v1/sync/pull', { ...(cursor && { cursor }), limit }, tokens.salesman1), lb.url);
  await d.catchUp(1000);
  t.true(d.snapshotPages > 0, 'snapshot pages fetched through nginx');
  t.is(d.table('products').size, 30);

  // GET with the cursor: both replicas answer the same bytes, so the same ETag, and a 304
  // holds whichever answers (once each has the buckets' checksums cached: a replica that
  // has not answered this device yet leaves them out once and computes them meanwhile)
  const url = `/v1/sync/pull?cursor=${encodeURIComponent(d.cursor!)}&limit=10`;
  let etag: string | null = null;
  for (let tries = 0; ; tries++) {
    const [x, y] = [await api(url, { headers: auth('salesman1') }), await api(url, { headers: auth('salesman1') })];
    t.is(x.status, 200);
    t.is(y.status, 200);
    if (x.headers.get('etag') === y.headers.get('etag')) {
      etag = x.headers.get('etag');
      break;
    }
    if (tries === 50) t.fail('the two replicas kept answering this GET with different ETags');
    await wait(20);
  }
  t.truthy(etag);
  for (let i = 0; i < 4; i++) t.is((await api(url, { headers: { ...auth('salesman1'), 'if-none-match': etag! } })).status, 304, `conditional GET ${i}`);
  const gets = served.slice(from).filter((r) => r.method === 'GET' && r.url.startsWith('/v1/sync/pull?'));
  t.deepEqual([...new Set(gets.map((r) => r.replica))].sort(), ['app1', 'app2'], 'the conditional GETs reached both replicas');

  // push: applied once, the retry a duplicate (whichever replica answers it)
  const m = { id: randomUUID(), type: 'order.create', payload: { orderId: randomUUID(), clientId: 4, lines: [{ productId: 1, qty: 1 }] } };
  for (const want of ['applied', 'duplicate']) {
    const res = await post('/v1/sync/push', { deviceId: 'lb-phone', mutations: [m] }, tokens.salesman1);
    t.is(res.status, 200);
    t.is(((await res.json()) as { results: { status: string }[] }).results[0]!.status, want);
  }

  // an image (admin), then its thumb through nginx
  const png = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#2980b9' } }).png().toBuffer();
  const form = new FormData();
  form.append('image', new Blob([png], { type: 'image/png' }), 'p.png');
  const up = await api('/v1/admin/products/5/image', { method: 'POST', headers: auth('admin'), body: form });
  t.is(up.status, 201, await up.clone().text());
  const thumb = ((await up.json()) as { image: { variants: Record<string, { key: string }> } }).image.variants.thumb!.key;
  for (let i = 0; i < 2; i++) {
    const img = await api(`/v1/media/${thumb}`); // one from each replica: one shared store
    t.is(img.status, 200);
    t.regex(img.headers.get('content-type') ?? '', /^image\//);
  }
  // nginx lets a body up to the app's limit through: over it, the app's own 413 answers
  const big = await api('/v1/admin/products/5/image', { method: 'PUT', headers: { ...auth('admin'), 'content-type': 'application/octet-stream' }, body: Buffer.alloc(app1.config.media.maxBytes + 1, 1) });
  t.is(big.status, 413);
  t.is(big.headers.get('content-type'), 'application/problem+json', 'the app’s answer (problem+json), not nginx’s');

  // X-Forwarded-For: nginx appends the peer to what the client wrote
  await api('/health', { headers: { 'x-forwarded-for': '203.0.113.9' } });
  const forged = served.slice(from).find((r) => r.url === '/health')!;
  t.is(forged.xff, '203.0.113.9, 127.0.0.1');
  const api1 = served.slice(from).filter((r) => r.url.startsWith('/v1/'));
  t.true(api1.every((r) => r.xff.split(',').at(-1)!.trim() === '127.0.0.1'), 'every API request carries the client nginx saw');
  const by = (r: Replica) => api1.filter((x) => x.replica === r).length;
  t.true(by('app1') > 0 && by('app2') > 0, `API requests on both replicas (app1 ${by('app1')}, app2 ${by('app2')})`);
  t.log(`API requests: app1 ${by('app1')}, app2 ${by('app2')}`);
});

/** long-lived sockets from the sticky test, by the replica they landed on */
const pinned: { address: string; replica: Replica; c: Client; got: ReturnType<typeof record>; polling: boolean }[] = [];

test.serial('the push channel through nginx: each client address sticks to one replica, over WebSocket and polling only; a write reaches sockets on both replicas once', async (t) => {
  // WebSocket: two connections per address land on the same replica; addresses until each replica holds two
  for (let n = 1; pinned.filter((p) => p.replica === 'app1').length < 2 || pinned.filter((p) => p.replica === 'app2').length < 2; n++) {
    if (n > 48) throw new Error(`48 client addresses, and not two on each replica: ${JSON.stringify(pinned.map((p) => [p.address, p.replica]))}`);
    const address = `127.0.${n}.1`;
    const c = clientFrom(address);
    const got = record(c);
    await connected(c);
    const replica = replicaOf(c)!;
    t.truthy(replica);
    t.is(addressSeen(c), address, 'the replica reads the client’s address from X-Forwarded-For');
    const again = clientFrom(address, { reconnection: false });
    await connected(again);
    t.is(replicaOf(again), replica, `${address}: a second connection lands on the same replica`);
    again.disconnect();
    pinned.push({ address, replica, c, got, polling: false });
  }
  // polling only, one address on each replica: the handshake and every request after it
  // must reach the replica holding the session (else 400 Session ID unknown)
  for (const replica of ['app1', 'app2'] as const) {
    const { address } = pinned.find((p) => p.replica === replica)!;
    const c = clientFrom(address, { transports: ['polling'] });
    const got = record(c);
    await connected(c);
    t.is(replicaOf(c), replica, `${address}: polling lands where its WebSockets do`);
    t.is(c.io.engine.transport.name, 'polling');
    pinned.push({ address, replica, c, got, polling: true });
  }
  // the replicas see each other's sockets through the Redis adapter
  for (const s of [app1, app2]) t.is((await s.io.of('/').fetchSockets()).length, pinned.length, 'every socket, on either replica, seen from each');
  await wait(300); // quiet spell: the next change pokes at once

  // an ERP write, noticed by both processes: one of them sends the poke (a lease in
  // Redis), the Redis adapter carries it to the sockets the other one holds; so each
  // socket gets it once, on either replica
  await erp.none('UPDATE stock SET qty = 4321 WHERE product_id = 3 AND warehouse_id = 1');
  await until(() => pinned.every((p) => poked(p.got, 'stock:1').length > 0), 'every socket poked for stock:1');
  await wait(400); // no duplicate may follow
  for (const p of pinned) t.is(poked(p.got, 'stock:1').length, 1, `${describe(p)}: the ERP write once`);
  // a write handled by replica 1 (a push sent to it directly): the sockets on replica 2 are poked
  for (const p of pinned) p.got.length = 0;
  const m = { id: randomUUID(), type: 'order.create', payload: { orderId: randomUUID(), clientId: 4, lines: [{ productId: 2, qty: 1 }] } };
  const res = await app1.post('/v1/sync/push', { deviceId: 'direct', mutations: [m] }, auth('salesman1'));
  t.is(res.status, 200);
  await until(() => pinned.every((p) => poked(p.got, 'orders:1').length > 0), 'every socket poked for orders:1');
  await wait(400);
  for (const p of pinned) {
    // (a push indexed over two batches is a leading and a trailing poke: each one event)
    const heads = poked(p.got, 'orders:1').map((e) => e.data.head as string);
    t.deepEqual(heads, [...new Set(heads)], `${describe(p)}: each poke of replica 1's push once`);
    t.true(p.c.connected, describe(p));
  }
  // the polling clients' requests: all on one replica, none refused
  const log = await lb.accessLog();
  for (const p of pinned.filter((x) => x.polling)) {
    const reqs = log.filter((l) => l.remote === p.address && l.uri === '/socket.io/' && /transport=polling/.test(l.args));
    t.true(reqs.length >= 5, `${p.address}: ${reqs.length} polling requests`);
    t.deepEqual(reqs.filter((l) => l.status !== 200), [], `${p.address}: every polling request answered 200`);
    t.is(new Set(reqs.map((l) => l.upstream)).size, 1, `${p.address}: one upstream for the whole session`);
  }
});

test.serial('replica 1 dies mid-run: every pushed mutation is applied exactly once, its sockets reconnect through nginx to replica 2 and get later pokes', async (t) => {
  t.true(pinned.some((p) => p.replica === 'app1'), 'sockets on replica 1 (the sticky test ran)');
  const PRODUCT = 7;
  await erp.none('UPDATE stock SET qty = 100000, reserved = 0 WHERE product_id = $1 AND warehouse_id = 1', [PRODUCT]);
  const batches = Array.from({ length: 30 }, () =>
    Array.from({ length: 4 }, () => ({ id: randomUUID(), type: 'order.create', payload: { orderId: randomUUID(), clientId: 4, lines: [{ productId: PRODUCT, qty: 1 }] } })),
  );
  // the crash: when replica 1 receives its 4th push of this run, it dies with that push in flight
  let pushesAt1 = 0;
  let killed: Promise<void> | undefined;
  const onRequest = (req: { url?: string }) => {
    // a few milliseconds in: the push may be reading its body, in its transaction, or committed
    if (req.url === '/v1/sync/push' && ++pushesAt1 === 4) setTimeout(() => (killed = crashApp1()), 5);
  };
  app1.http.on('request', onRequest);

  // the device: one batch at a time through nginx; on any failure the same mutations again
  const failures: string[] = [];
  const outcome = new Map<string, string>();
  for (const batch of batches) {
    let pending = batch;
    const deadline = Date.now() + 30_000;
    while (pending.length > 0) {
      if (Date.now() > deadline) throw new Error(`a batch did not go through in 30 s: ${failures.join(', ')}`);
      const res = await post('/v1/sync/push', { deviceId: 'lb-phone-2', mutations: pending }, tokens.salesman1).catch((err: Error) => err);
      if (res instanceof Error || res.status !== 200) {
        failures.push(res instanceof Error ? res.message : String(res.status));
        await wait(100);
        continue;
      }
      const { results } = (await res.json()) as { results: { id: string; status: string; error?: { code: string } }[] };
      for (const r of results) if (!(r.status === 'rejected' && r.error?.code === 'retry_later')) outcome.set(r.id, r.error ? `${r.status} ${r.error.code}` : r.status);
      pending = pending.filter((m) => !outcome.has(m.id));
    }
  }
  app1.http.off('request', onRequest);
  t.truthy(killed, 'replica 1 died during the run');
  await killed;
  if (failures.length > 3) t.log(`nginx's errors:\n${(await lb.errorLog()).split('\n').filter((l) => /\[(error|warn|alert|crit)\]/.test(l)).slice(0, 20).join('\n')}`);
  const duplicates = [...outcome.values()].filter((s) => s === 'duplicate').length;
  t.log(`replica 1 died with its 4th push of the run in flight; the device saw ${failures.length} failed attempts (${[...new Set(failures)].join(', ') || 'none'}), ${duplicates} mutations answered duplicate on retry`);

  // exactly once: the ledger, the orders, the reservations
  const ids = batches.flat().map((m) => m.id);
  const orderIds = batches.flat().map((m) => m.payload.orderId);
  t.deepEqual([...new Set(outcome.values())].filter((s) => s !== 'applied' && s !== 'duplicate'), [], 'every mutation answered applied or duplicate');
  const ledger = await erp.any<{ status: string; n: number }>('SELECT status, count(*)::int AS n FROM fieldsync.mutations WHERE id = ANY($1::uuid[]) GROUP BY status', [ids]);
  t.deepEqual(ledger, [{ status: 'applied', n: ids.length }], 'one applied ledger row per mutation');
  const orders = await erp.one<{ n: number; distinct: number }>('SELECT count(*)::int AS n, count(DISTINCT id)::int AS distinct FROM orders WHERE id = ANY($1::uuid[])', [orderIds]);
  t.deepEqual(orders, { n: orderIds.length, distinct: orderIds.length }, 'one order per mutation');
  t.is((await erp.one<{ reserved: number }>('SELECT reserved FROM stock WHERE product_id = $1 AND warehouse_id = 1', [PRODUCT])).reserved, ids.length, 'reserved once per order');

  // the sockets replica 1 held reconnect (through nginx, hashed to a dead upstream: passed
  // on to the live one), WebSocket and polling alike
  await until(() => pinned.every((p) => p.c.connected && replicaOf(p.c) === 'app2'), 'every socket connected to replica 2', 30_000);
  const moved = pinned.filter((p) => p.replica === 'app1');
  t.true(moved.length >= 3, `${moved.length} sockets moved`);
  // what the run's last batches sent (and what recovering sockets get replayed) first
  await until(() => pinned.every((p) => (p.got.at(-1)?.at ?? 0) < Date.now() - 500), 'quiet on every socket');
  for (const p of pinned) p.got.length = 0;
  await erp.none('UPDATE stock SET qty = 1234 WHERE product_id = 4 AND warehouse_id = 1');
  await until(() => pinned.every((p) => poked(p.got, 'stock:1').length > 0), 'a later poke on every socket, the moved ones included');
  await wait(300);
  for (const p of pinned) t.is(poked(p.got, 'stock:1').length, 1, `${p.address} (was on ${p.replica}): once`);
  const after = (await lb.accessLog()).filter((l) => l.upstream.includes(`:${app1.bound.port}`) && l.upstream.includes(`:${app2.bound.port}`));
  t.log(`nginx passed ${after.length} requests from the dead replica to the live one`);
});

/**
 * A crash, as near as one process can play it: replica 1 stops accepting and every TCP
 * connection it holds (keep-alive HTTP, requests in flight, WebSockets, polls) is cut at
 * once, with no close frame or answer; then the rest of it (pools, doorbell, adapter) is
 * stopped. Its in-flight handlers may still commit: a retry must then be a duplicate.
 */
async function crashApp1(): Promise<void> {
  app1Killed = true;
  app1.http.close();
  for (const c of app1Connections) c.destroy();
  await app1.stop();
}
