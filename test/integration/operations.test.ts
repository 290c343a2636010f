import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import test from 'ava';
import pgPromise from 'pg-promise';
import { loadConfig } from '../../src/config.js';
import { createDb } from '../../src/db/pg.js';
import { createLogger } from '../../src/observability/logger.js';
import { Device } from '../helpers/device.js';
import { FIXTURE_PASSWORD, loadFixture } from '../helpers/fixture.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { connected, sockets, until } from '../helpers/sockets.js';

/**
 * Operating the server: log formats and what the access log leaves out, the slow-query
 * log, the pool, socket and Redis gauges, /ready's Redis and draining checks.
 */

const REDIS = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const SLOW_MS = 100;

type LogLine = Record<string, unknown> & { level: number; msg: string };

/** A stream that hands each write to `line`. */
const into = (line: (s: string) => void) =>
  new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      for (const l of chunk.toString().split(/(?<=\n)/)) if (l.trim() !== '') line(l);
      done();
    },
  });

/** A JSON logger at debug whose lines are kept in memory. */
function capture() {
  const lines: LogLine[] = [];
  const log = createLogger('debug', 'json', into((s) => lines.push(JSON.parse(s) as LogLine)));
  return { lines, log, since: (mark: number) => lines.slice(mark) };
}

let s: TestServer;
const logs = capture();
const tokens: Record<string, string> = {};
const { socket, closeAll } = sockets();

test.before(async () => {
  s = await startTestServer({ REDIS_URL: REDIS, DB_SLOW_QUERY_MS: String(SLOW_MS), DB_POOL_MAX: '5' }, { log: logs.log });
  await loadFixture(s.db);
  await s.settle();
  for (const who of ['admin', 'salesman1', 'salesman2']) {
    const res = await s.post('/v1/auth/login', { email: `${who}@fixture.test`, password: FIXTURE_PASSWORD });
    tokens[who] = ((await res.json()) as { token: string }).token;
  }
});
test.after.always(async () => {
  try {
    closeAll();
  } finally {
    await s?.close();
  }
});

/** The samples of a Prometheus exposition: `name{labels}` -> value. */
async function scrape(server: { fetch: TestServer['fetch'] }): Promise<Map<string, number>> {
  const res = await server.fetch('/metrics');
  const text = await res.text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-z_:]+(?:\{[^}]*\})?) (\S+)$/i.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

test.serial('LOG_FORMAT: pretty or json, unset by the terminal; pretty lines are one per entry, the access log compact', (t) => {
  t.is(loadConfig({}).log.format, undefined, 'unset: decided by whether stdout is a terminal');
  t.is(loadConfig({ LOG_FORMAT: 'pretty' }).log.format, 'pretty');
  t.is(loadConfig({ LOG_FORMAT: 'json' }).log.format, 'json');
  t.regex(t.throws(() => loadConfig({ LOG_FORMAT: 'xml' }))!.message, /LOG_FORMAT: .*"xml"/);

  const out: string[] = [];
  const pretty = createLogger('info', 'pretty', into((s) => out.push(s)));
  pretty.info({ requestId: 'r-1', method: 'GET', path: '/v1/sync/pull', status: 200, ms: 3.1 }, 'request');
  pretty.warn({ query: 'SELECT …', ms: 250 }, 'slow query');
  pretty.info({ password: 'hunter2' }, 'secret');
  const text = out.join('');
  t.regex(text, /INFO.*: GET \/v1\/sync\/pull 200 3\.1 ms\n/, 'the access log as one short line');
  t.notRegex(text, /requestId|"method"|hostname|"pid"/, 'the request fields are in the message, not repeated');
  t.regex(text, /WARN.*: slow query \{"query":"SELECT …","ms":250\}\n/, 'other fields on the same line');
  t.notRegex(text, /hunter2/, 'redacted in pretty mode too');
  t.notRegex(text, /^\{/m, 'no JSON lines');

  const json: string[] = [];
  createLogger('info', 'json', into((s) => json.push(s))).info({ method: 'GET', path: '/health', status: 200, ms: 1 }, 'request');
  t.like(JSON.parse(json[0]!), { msg: 'request', method: 'GET', path: '/health', service: 'fieldsync' });
});

test.serial('JSON logs (not a terminal) never load pino-pretty', async (t) => {
  const code = `
    import { createRequire } from 'node:module';
    const { createLogger } = await import(${JSON.stringify(new URL('../../src/observability/logger.ts', import.meta.url).href)});
    createLogger('info').info('hello');
    const loaded = Object.keys(createRequire(import.meta.url).cache).filter((k) => k.includes('pino-pretty'));
    console.error(JSON.stringify(loaded));`;
  const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { env: { ...process.env, LOG_FORMAT: '' } });
  t.like(JSON.parse(stdout.trim()), { level: 30, msg: 'hello' }, 'stdout is a pipe here: JSON');
  t.deepEqual(JSON.parse(stderr.trim().split('\n').at(-1)!), []);
});

test.serial('no-change pulls are logged at debug only (the raw lane not at all); other requests at info', async (t) => {
  const auth = { authorization: `Bearer ${tokens.salesman1}` };
  const device = new Device('salesman1', (cursor, limit) => s.post('/v1/sync/pull', { ...(cursor && { cursor }), limit }, auth), s.url);
  await device.catchUp(1000);
  t.truthy(device.cursor);
  // a token the server has not verified yet goes past both fast lanes to the route, whose
  // pull finds nothing new (a token's iat is in seconds: log in again in the next one)
  await new Promise((r) => setTimeout(r, 1005 - (Date.now() % 1000)));
  const fresh = ((await (await s.post('/v1/auth/login', { email: 'salesman1@fixture.test', password: FIXTURE_PASSWORD })).json()) as { token: string }).token;
  t.not(fresh, tokens.salesman1);
  const mark = logs.lines.length;
  const cursor = device.cursor!;
  t.is((await s.post('/v1/sync/pull', { cursor }, { authorization: `Bearer ${fresh}` })).status, 200);
  // Koa's fast lane (POST), the raw lane (GET), the raw lane's 304
  const post = await s.post('/v1/sync/pull', { cursor }, auth);
  t.is(post.status, 200);
  const get = await s.fetch(`/v1/sync/pull?cursor=${encodeURIComponent(cursor)}`, { headers: auth });
  t.is(get.status, 200);
  const etag = get.headers.get('etag')!;
  t.is((await s.fetch(`/v1/sync/pull?cursor=${encodeURIComponent(cursor)}`, { headers: { ...auth, 'if-none-match': etag } })).status, 304);
  t.is((await s.fetch('/health')).status, 200);
  const requests = logs.since(mark).filter((l) => l.msg === 'request');
  const pulls = requests.filter((l) => l.path === '/v1/sync/pull');
  t.deepEqual(pulls.filter((l) => l.level >= 30), [], 'no no-change pull at info');
  t.is(pulls.length, 2, 'Koa\'s answers (the route\'s, its fast lane\'s) at debug; the raw lane logs nothing');
  t.true(pulls.every((l) => l.level === 20 && l.status === 200));
  t.like(requests.find((l) => l.path === '/health'), { level: 30, status: 200, method: 'GET' });
});

test.serial('a query slower than DB_SLOW_QUERY_MS logs one warn line with its name and duration, never values', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'fieldsync-slow-'));
  try {
    await mkdir(join(dir, 'sql', 'queries'), { recursive: true });
    await writeFile(join(dir, 'sql', 'queries', 'slow-probe.sql'), 'SELECT pg_sleep(${seconds}) AS slept, ${note}::text AS note');
    const file = new pgPromise.QueryFile(join(dir, 'sql', 'queries', 'slow-probe.sql'), { minify: true });
    const mark = logs.lines.length;
    await s.db.one('SELECT pg_sleep($1) AS slept, $2::text AS note', [0.15, 'secret-one']);
    await s.db.task('probe', (tx) => tx.one('SELECT $1::text AS note, pg_sleep(0.15) AS slept', ['secret-two']));
    await s.db.one(file, { seconds: 0.15, note: 'secret-three' });
    await s.db.one('SELECT $1::text AS note', ['secret-fast']);
    // this test's queries (the server's background work, tagged bg:, may be slow too under load)
    const slow = logs.since(mark).filter((l) => l.msg === 'slow query' && l.pool === 'request' && !String(l.query).startsWith('bg:'));
    t.deepEqual(
      slow.map((l) => l.query),
      ['SELECT pg_sleep( …', 'probe: SELECT …', 'sql/queries/slow-probe.sql'],
      'one line per slow query, named by its words up to the first value, its task, or its file',
    );
    for (const l of slow) {
      t.is(l.level, 40);
      t.true(typeof l.ms === 'number' && l.ms >= 150, `took ${String(l.ms)} ms`);
      t.is(l.pool, 'request');
      t.is(l.rows, 1);
    }
    t.notRegex(JSON.stringify(slow), /secret|0\.15/, 'no parameter or row value');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }

  t.is(loadConfig({}).db.slowQueryMs, 200);
  t.is(loadConfig({ DB_SLOW_QUERY_MS: '0' }).db.slowQueryMs, 0);
  const off = capture();
  const db = createDb({ url: `${s.tdb.url}?application_name=slow-log-off`, poolMax: 1, log: off.log, slowQueryMs: 0 });
  try {
    await db.one('SELECT pg_sleep(0.12) AS slept');
    t.deepEqual(off.lines, [], 'DB_SLOW_QUERY_MS=0: off');
  } finally {
    await db.$pool.end();
  }
});

test.serial('pool, socket and Redis gauges are read at each scrape and move with traffic', async (t) => {
  const before = await scrape(s);
  t.is(before.get('fieldsync_redis_up'), 1);
  t.true(before.get('fieldsync_db_pool_connections{pool="request"}')! >= 1, 'the doorbell holds one');
  t.true(before.has('fieldsync_db_pool_connections{pool="indexer"}'));
  t.true(before.has('fieldsync_db_pool_idle_connections{pool="request"}'));
  t.true(before.has('fieldsync_db_pool_waiting{pool="request"}'));
  t.is(before.get('fieldsync_push_channel_sockets{app="none",role="salesman"}'), 0, 'every role of the config, at 0');
  t.is(before.get('fieldsync_push_channel_sockets{app="none",role="admin"}'), 0);

  // the app from the handshake when the role may use it, else the role's default
  const clients = [
    socket(s.url, tokens.salesman1),
    socket(s.url, tokens.salesman2, { auth: { token: tokens.salesman2, app: 'travel_sales' } }),
    socket(s.url, tokens.admin, { auth: { token: tokens.admin, app: 'warehouse_of_the_moon' } }),
  ];
  await Promise.all(clients.map(connected));
  // more statements than the pool (DB_POOL_MAX=5) has connections: some wait
  const busy = Promise.all(Array.from({ length: 8 }, () => s.db.one('SELECT pg_sleep(0.5) AS slept')));
  await until(() => s.db.$pool.waitingCount > 0, 'queries waiting for a connection', 5000);
  const during = await scrape(s);
  await busy;
  t.is(during.get('fieldsync_db_pool_connections{pool="request"}'), 5);
  t.true(during.get('fieldsync_db_pool_waiting{pool="request"}')! >= 1);
  t.is(during.get('fieldsync_push_channel_sockets{app="salesman",role="salesman"}'), 1);
  t.is(during.get('fieldsync_push_channel_sockets{app="travel_sales",role="salesman"}'), 1);
  t.is(during.get('fieldsync_push_channel_sockets{app="manager",role="admin"}'), 1, 'an app the config does not know: the default');

  for (const c of clients) c.disconnect();
  await until(async () => !(await scrape(s)).has('fieldsync_push_channel_sockets{app="salesman",role="salesman"}'), 'the sockets gone from the gauge', 5000);
  await until(async () => {
    const after = await scrape(s);
    return after.get('fieldsync_db_pool_waiting{pool="request"}') === 0 && after.get('fieldsync_db_pool_idle_connections{pool="request"}')! >= 1;
  }, 'nothing waiting, the connections idle again', 5000);
  t.pass();
});

test.serial('/ready checks Redis when configured', async (t) => {
  const res = await s.fetch('/ready');
  t.is(res.status, 200);
  t.like(await res.json(), { status: 'ready', checks: { postgres: 'ok', s3: 'ok', redis: 'ok', syncConfig: 'ok' } });
});

test.serial('with Redis unreachable: /ready names redis but stays ready (degraded, not down), fieldsync_redis_up is 0', async (t) => {
  const down = await startTestServer({ REDIS_URL: 'redis://127.0.0.1:1' });
  try {
    const res = await down.fetch('/ready');
    t.is(res.status, 200, 'a Redis outage must not take every replica out of the load balancer');
    const body = (await res.json()) as { status: string; checks: Record<string, string> };
    t.is(body.status, 'ready');
    t.like(body.checks, { postgres: 'ok', s3: 'ok', syncConfig: 'ok' });
    t.not(body.checks.redis, 'ok');
    t.is((await scrape(down)).get('fieldsync_redis_up'), 0);
    const without = await scrape(s);
    t.true(without.has('fieldsync_redis_up'));
  } finally {
    await down.close();
  }
});

/**
 * Raw HTTP/1.1 on one connection: the first request's body is held back until the server
 * has begun stopping, the second is pipelined behind it, so it is answered while draining.
 */
test.serial('once stopping begins, /ready answers 503 with a draining check', async (t) => {
  const { port } = new URL(s.url);
  const conn = tcpConnect(Number(port), '127.0.0.1');
  await new Promise<void>((resolve, reject) => conn.once('connect', resolve).once('error', reject));
  let received = '';
  conn.on('data', (d: Buffer) => (received += d.toString('latin1')));
  const ended = new Promise<void>((resolve) => conn.once('close', () => resolve()));
  const body = JSON.stringify({ email: 'salesman1@fixture.test', password: FIXTURE_PASSWORD });
  conn.write(`POST /v1/auth/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`);
  await new Promise((r) => setTimeout(r, 100)); // the request is in flight, waiting for its body
  t.is(received, '');
  const stopping = s.stop();
  await new Promise((r) => setTimeout(r, 100));
  conn.write(`${body.slice(10)}GET /ready HTTP/1.1\r\nHost: test\r\n\r\n`);
  await Promise.race([ended, new Promise((r) => setTimeout(r, 10_000))]);
  conn.destroy();
  await stopping;
  const answers = received.split(/(?=HTTP\/1\.1 \d{3} )/);
  t.is(answers.length, 2, received);
  t.regex(answers[0]!, /^HTTP\/1\.1 200 /, 'the request in flight is answered');
  t.regex(answers[1]!, /^HTTP\/1\.1 503 /);
  const ready = JSON.parse(answers[1]!.slice(answers[1]!.indexOf('\r\n\r\n') + 4)) as { status: string; checks: Record<string, string> };
  t.is(ready.status, 'not-ready');
  t.is(ready.checks.draining, 'shutting down');
});
