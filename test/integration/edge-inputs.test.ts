import { randomUUID } from 'node:crypto';
import test from 'ava';
import pgPromise from 'pg-promise';
import { fromDatabase, isConnectionLoss } from '../../src/db/errors.js';
import { MAX_JSON_DEPTH } from '../../src/http/edge.js';
import { erpPool } from '../helpers/db.js';
import { FIXTURE_PASSWORD, loadFixture } from '../helpers/fixture.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/**
 * The regressions of issue 12 that are about values (the edge every route passes through):
 * NUL in any string, values PostgreSQL refuses, JSON nested too deep, path parameters, a
 * failure inside a push batch, connections killed under load. Each answer is a 4xx
 * problem with a catalogue code (or 503 with Retry-After for a lost connection), never a
 * 500, and a refused request writes nothing.
 */
let s: TestServer;
let erp: pgPromise.IDatabase<unknown>;
const tokens: Record<string, string> = {};
/** salesman 1's client (pricelist 2) */
const S1_CLIENT = 4;

test.before(async () => {
  s = await startTestServer();
  await loadFixture(s.db);
  erp = erpPool(s.tdb.url, 2);
  for (const who of ['admin', 'salesman1']) {
    const res = await s.post('/v1/auth/login', { email: `${who}@fixture.test`, password: FIXTURE_PASSWORD });
    tokens[who] = ((await res.json()) as { token: string }).token;
  }
  await erp.none('UPDATE stock SET qty = 1000, reserved = 0 WHERE warehouse_id = 1');
});
test.after.always(async () => {
  await erp?.$pool.end();
  await s?.close();
});

const auth = (who: string) => ({ authorization: `Bearer ${tokens[who]}` });
const counts = () =>
  erp.one<{ ledger: number; orders: number; users: number }>(
    `SELECT (SELECT count(*)::int FROM fieldsync.mutations) AS ledger, (SELECT count(*)::int FROM orders) AS orders, (SELECT count(*)::int FROM fieldsync.users) AS users`,
  );
const order = (extra: Record<string, unknown> = {}) => ({
  id: randomUUID(),
  type: 'order.create',
  payload: { orderId: randomUUID(), clientId: S1_CLIENT, lines: [{ productId: 1, qty: 1 }], ...extra },
});
async function problem(t: import('ava').ExecutionContext, res: Response, status: number, code: string, what: string): Promise<Record<string, unknown>> {
  t.is(res.status, status, `${what}: status`);
  t.regex(res.headers.get('content-type') ?? '', /application\/problem\+json/, `${what}: problem+json`);
  const body = (await res.json()) as Record<string, unknown>;
  t.is(body.code, code, `${what}: code`);
  return body;
}

test.serial('NUL in any string field is a 400 naming the field, and nothing is written', async (t) => {
  const before = await counts();
  const cases: [string, string, unknown][] = [
    ['push deviceId', '/v1/sync/push', { deviceId: 'phone\u0000', mutations: [order()] }],
    ['mutation type', '/v1/sync/push', { deviceId: 'phone', mutations: [{ ...order(), type: 'order.create\u0000' }] }],
    ['order notes', '/v1/sync/push', { deviceId: 'phone', mutations: [order({ notes: 'after\u0000noon' })] }],
    ['line note', '/v1/sync/push', { deviceId: 'phone', mutations: [order({ lines: [{ productId: 1, qty: 1, note: '\u0000' }] })] }],
    ['contact address', '/v1/sync/push', { deviceId: 'phone', mutations: [{ id: randomUUID(), type: 'client.update_contact', payload: { clientId: S1_CLIENT, address: 'x\u0000y' } }] }],
    ['a key', '/v1/sync/push', { deviceId: 'phone', mutations: [{ ...order(), payload: { 'k\u0000': 1 } }] }],
  ];
  for (const [what, path, body] of cases) {
    const res = await s.post(path, body, auth('salesman1'));
    const p = await problem(t, res, 400, 'validation-failed', what);
    t.true(JSON.stringify(p.errors).includes('NUL'), `${what}: says why`);
  }
  const admin = await s.post('/v1/admin/users', { email: 'nul@x.test', password: 'long-enough', role: 'admin', displayName: 'A\u0000B' }, auth('admin'));
  await problem(t, admin, 400, 'validation-failed', 'displayName');
  const login = await s.post('/v1/auth/login', { email: 'admin@fixture.test', password: 'x\u0000' });
  await problem(t, login, 400, 'validation-failed', 'login password');
  const query = await s.fetch('/v1/sync/pull?cursor=%00', { headers: auth('salesman1') });
  await problem(t, query, 400, 'validation-failed', 'query string');
  t.deepEqual(await counts(), before, 'nothing written');
});

test.serial('values PostgreSQL would refuse are refused at the edge or as the mutation, never a 500', async (t) => {
  const before = await counts();
  // createdAt past what a timestamp holds: the batch is malformed
  const res = await s.post('/v1/sync/push', { deviceId: 'phone', mutations: [{ ...order(), createdAt: Number.MAX_SAFE_INTEGER }] }, auth('salesman1'));
  await problem(t, res, 400, 'validation-failed', 'createdAt');
  const old = await s.post('/v1/sync/push', { deviceId: 'phone', mutations: [{ ...order(), createdAt: '0000-01-01T00:00:00Z' }] }, auth('salesman1'));
  await problem(t, old, 400, 'validation-failed', 'createdAt in year 0');
  t.deepEqual(await counts(), before);
  // a payload value is the mutation's own rejection (the batch goes on)
  const created = order();
  const ok = await s.post('/v1/sync/push', { deviceId: 'phone', mutations: [created] }, auth('salesman1'));
  t.is(ok.status, 200);
  const orderId = (created.payload as { orderId: string }).orderId;
  const bad = [
    { id: randomUUID(), type: 'order.update_notes', payload: { orderId, requestedDelivery: '0000-01-01' } },
    { id: randomUUID(), type: 'order.update_notes', payload: { orderId, requestedDelivery: '10000-01-01' } },
    { id: randomUUID(), type: 'client.update_contact', payload: { clientId: 2 ** 60, address: 'x' } },
  ];
  const answer = await s.post('/v1/sync/push', { deviceId: 'phone', mutations: bad }, auth('salesman1'));
  t.is(answer.status, 200);
  const { results } = (await answer.json()) as { results: { status: string; error?: { code: string } }[] };
  t.deepEqual(results.map((r) => r.error?.code), ['invalid_payload', 'invalid_payload', 'invalid_payload']);
  // a manifest cursor past the bigint range
  for (const cursor of ['1.9223372036854775808', '9223372036854775808.MQ', '99999999999999999999.MQ']) {
    const m = await s.fetch(`/v1/media/manifest?cursor=${encodeURIComponent(cursor)}`, { headers: auth('salesman1') });
    t.true(m.status < 500, `manifest cursor ${cursor}: ${m.status}`);
  }
});

test.serial('a data exception that slips past the edge is a 400; a lost connection a 503 with Retry-After', async (t) => {
  const dateError = await t.throwsAsync(erp.one(`SELECT '0000-01-01'::date`));
  const mapped = fromDatabase(dateError);
  t.is(mapped?.code, 'validation-failed');
  t.is(mapped?.status, 400);
  const rangeError = await t.throwsAsync(erp.one(`SELECT 9223372036854775807::bigint + 1`));
  t.is(fromDatabase(rangeError)?.status, 400);
  const unique = await t.throwsAsync(erp.none(`INSERT INTO warehouses (id, code, name, name_ar) VALUES (1, 'W1', 'x', 'x')`));
  t.is(fromDatabase(unique)?.code, 'conflict');
  // a connection terminated by a DBA, as pg reports it to the query in flight
  const victim = erpPool(s.tdb.url, 1);
  try {
    const pid = (await victim.one<{ pid: number }>('SELECT pg_backend_pid() AS pid')).pid;
    const running = victim.one('SELECT pg_sleep(5)');
    await new Promise((r) => setTimeout(r, 100));
    await erp.one('SELECT pg_terminate_backend($1)', [pid]);
    const lost = await t.throwsAsync(running);
    t.true(isConnectionLoss(lost), (lost as Error).message);
    const answer = fromDatabase(lost);
    t.is(answer?.code, 'unavailable');
    t.is(answer?.extra.headers?.['Retry-After'], '1');
  } finally {
    await victim.$pool.end();
  }
  t.is(fromDatabase(new Error('syntax error')), undefined, 'a defect of ours stays a 500');
});

test.serial(`JSON nested deeper than ${MAX_JSON_DEPTH} levels is a 400 before validation recurses`, async (t) => {
  const before = await counts();
  const nest = (n: number) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);
  for (const depth of [MAX_JSON_DEPTH + 1, 1000, 5000, 50_000]) {
    const body = `{"deviceId":"phone","mutations":[{"id":"${randomUUID()}","type":"order.create","payload":${nest(depth)}}]}`;
    const res = await s.fetch('/v1/sync/push', { method: 'POST', headers: { ...auth('salesman1'), 'content-type': 'application/json' }, body });
    const p = await problem(t, res, 400, 'validation-failed', `depth ${depth}`);
    t.true(JSON.stringify(p.errors).includes('nested deeper'), `depth ${depth}: says why`);
  }
  const claims = await s.fetch('/v1/admin/users', {
    method: 'POST',
    headers: { ...auth('admin'), 'content-type': 'application/json' },
    body: `{"email":"deep@x.test","password":"long-enough","role":"admin","displayName":"D","claims":${nest(5000)}}`,
  });
  await problem(t, claims, 400, 'validation-failed', 'admin claims');
  t.deepEqual(await counts(), before);
});

test.serial('path parameters are validated like bodies: a bad product id is a 400, never a 500', async (t) => {
  for (const id of ['abc', '0', '-1', '1.5', 'NaN', '%00', '1e400', '9223372036854775808', '%F0%28%8C%28', 'x'.repeat(300)]) {
    for (const method of ['PUT', 'POST']) {
      const res = await s.fetch(`/v1/admin/products/${id}/image`, { method, headers: { ...auth('admin'), 'content-type': 'image/png' }, body: Buffer.from([0x89, 0x50]) });
      t.true(res.status >= 400 && res.status < 500, `${method} ${id}: ${res.status}`);
      t.regex(res.headers.get('content-type') ?? '', /problem\+json/);
    }
  }
  for (const path of ['/problems/%00', `/problems/${'x'.repeat(100)}`, '/v1/sync/snapshots/catalog/abc/NaN?exp=1&sig=x', '/v1/sync/snapshots/catalog/%00/1?exp=1&sig=x', '/v1/media/products/1/%00/thumb.webp']) {
    const res = await s.fetch(path);
    t.true(res.status >= 400 && res.status < 500, `${path}: ${res.status}`);
  }
});

test.serial('a push whose mutation fails mid-batch answers 200: the applied stand, the failed one and the rest retry_later', async (t) => {
  await erp.none(`
    CREATE FUNCTION test_boom() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.notes = 'boom' THEN RAISE EXCEPTION 'an ERP trigger failed' USING ERRCODE = 'XX000'; END IF;
      IF NEW.notes = 'out of range' THEN RAISE EXCEPTION 'value out of range' USING ERRCODE = '22003'; END IF;
      RETURN NEW;
    END $$;
    CREATE TRIGGER test_boom BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION test_boom();`);
  try {
    const batch = [order(), order({ notes: 'out of range' }), order(), order({ notes: 'boom' }), order()];
    const res = await s.post('/v1/sync/push', { deviceId: 'phone', mutations: batch }, auth('salesman1'));
    t.is(res.status, 200);
    const { results } = (await res.json()) as { results: { id: string; status: string; error?: { code: string } }[] };
    t.deepEqual(
      results.map((r) => [r.id, r.error?.code ?? r.status]),
      batch.map((m, i) => [m.id, ['applied', 'invalid_payload', 'applied', 'retry_later', 'retry_later'][i]]),
    );
    const ledger = await erp.map(`SELECT id::text FROM fieldsync.mutations WHERE id IN ($1:csv)`, [batch.map((m) => m.id)], (r: { id: string }) => r.id);
    t.deepEqual(ledger.sort(), [batch[0]!.id, batch[2]!.id].sort(), 'only the applied ones are recorded');
    // the rest, sent again once the ERP is mended, apply
    await erp.none('DROP TRIGGER test_boom ON orders');
    const again = await s.post('/v1/sync/push', { deviceId: 'phone', mutations: [{ ...batch[3]!, payload: { ...batch[3]!.payload, notes: 'fine' }, id: randomUUID() }, batch[4]] }, auth('salesman1'));
    const second = (await again.json()) as { results: { status: string }[] };
    t.deepEqual(second.results.map((r) => r.status), ['applied', 'applied']);
  } finally {
    await erp.none('DROP TRIGGER IF EXISTS test_boom ON orders; DROP FUNCTION IF EXISTS test_boom()');
  }
});

test.serial('connections killed under load: reads are retried once, nothing answers 500', async (t) => {
  const statuses: number[] = [];
  const kill = () => erp.any(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'fieldsync%' AND application_name <> 'fieldsync-test' AND pid <> pg_backend_pid()`);
  for (let round = 0; round < 5; round++) {
    const requests = Array.from({ length: 8 }, (_, i) =>
      i % 2 === 0
        ? s.post('/v1/sync/pull', { limit: 50 }, auth('salesman1'))
        : s.post('/v1/sync/push', { deviceId: 'phone', mutations: [order()] }, auth('salesman1')),
    );
    await kill();
    for (const res of await Promise.all(requests)) {
      statuses.push(res.status);
      if (res.status === 503) t.is(res.headers.get('retry-after'), '1');
      await res.arrayBuffer();
    }
  }
  t.false(statuses.some((x) => x >= 500 && x !== 503), `statuses: ${statuses.join(',')}`);
  // and the pull alone, after its idle connections were killed, is answered (retried on a fresh one)
  await kill();
  const pull = await s.post('/v1/sync/pull', { limit: 50 }, auth('salesman1'));
  t.is(pull.status, 200);
});

test.serial('every code of the catalogue is in the README table and served at /problems/<code>', async (t) => {
  const { errorCatalogue } = await import('../../src/errors.js');
  const { readFile } = await import('node:fs/promises');
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
  for (const [code, { status }] of Object.entries(errorCatalogue)) {
    t.true(readme.includes(`| \`${code}\` | ${status} |`), `${code} (${status}) is in the README's table`);
    const res = await s.fetch(`/problems/${code}`);
    t.is(res.status, 200, code);
    t.like(await res.json(), { code, status });
  }
});

test.serial('a JSON body is read only for a route that takes one, after its caller is known', async (t) => {
  const broken = { 'content-type': 'application/json' };
  // no token: refused before the (malformed) body is looked at
  const anonymous = await s.fetch('/v1/sync/push', { method: 'POST', headers: broken, body: '{"not json' });
  await problem(t, anonymous, 401, 'token-missing', 'push without a token');
  // the image route takes bytes, not JSON: 415 whatever the JSON holds
  const image = await s.fetch('/v1/admin/products/1/image', { method: 'PUT', headers: { ...broken, ...auth('admin') }, body: '{"not json' });
  await problem(t, image, 415, 'unsupported-media-type', 'JSON on the image route');
  // an unknown path: 404, not a JSON error
  const unknown = await s.fetch('/v1/nowhere', { method: 'POST', headers: broken, body: '{"not json' });
  await problem(t, unknown, 404, 'not-found', 'unknown path');
});

test.serial('a push whose writes committed but whose indexing failed answers its results, visibleAfter null', async (t) => {
  const flush = s.indexer.flush.bind(s.indexer);
  s.indexer.flush = () => Promise.reject(new Error('the indexer failed'));
  try {
    const m = order();
    const res = await s.post('/v1/sync/push', { deviceId: 'phone', mutations: [m] }, auth('salesman1'));
    t.is(res.status, 200);
    const body = (await res.json()) as { results: { status: string }[]; visibleAfter: string | null };
    t.deepEqual(body.results.map((r) => r.status), ['applied']);
    t.is(body.visibleAfter, null);
  } finally {
    s.indexer.flush = flush;
  }
  await s.settle(); // and a later batch takes the writes
  t.deepEqual(await erp.any('SELECT 1 FROM fieldsync.changes'), []);
});
