import test from 'ava';
import type { PullBody } from '../helpers/device.js';
import { FIXTURE_PASSWORD, loadFixture } from '../helpers/fixture.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { connected, sockets } from '../helpers/sockets.js';

/**
 * CORS for browsers (flutter run -d chrome, an admin page): CORS_ORIGINS lists the origins
 * answered with CORS headers, on every route, the pull fast lanes, problem answers and the
 * Socket.IO polling transport. Without it, no CORS header at all.
 */

const WEB = 'http://localhost:5000'; // flutter run -d chrome --web-port 5000
const ADMIN = 'https://admin.example.com';
const EVIL = 'https://evil.example';

let s: TestServer; // CORS_ORIGINS set
let plain: TestServer; // CORS_ORIGINS unset
let token: string;
let plainToken: string;
const { socket, closeAll } = sockets();

async function login(server: TestServer): Promise<string> {
  const res = await server.post('/v1/auth/login', { email: 'driver@fixture.test', password: FIXTURE_PASSWORD });
  return ((await res.json()) as { token: string }).token;
}

test.before(async () => {
  [s, plain] = await Promise.all([startTestServer({ CORS_ORIGINS: `${WEB},${ADMIN}`, DOORBELL_POLL_MS: '60000' }), startTestServer({ DOORBELL_POLL_MS: '60000' })]);
  for (const server of [s, plain]) {
    await loadFixture(server.db);
    await server.settle();
  }
  [token, plainToken] = await Promise.all([login(s), login(plain)]);
});
test.after.always(async () => {
  try {
    closeAll(); // throws when an event was off its schema
  } finally {
    await Promise.all([s?.close(), plain?.close()]);
  }
});

const preflight = (server: TestServer, path: string, origin: string, method = 'GET', headers = 'authorization,if-none-match') =>
  server.fetch(path, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': headers } });
const corsHeaders = (res: Response) => [...res.headers.keys()].filter((k) => k.startsWith('access-control-'));
const fastPulls = async (server: TestServer) =>
  Number(/fieldsync_pull_requests_total\{path="fast"\} (\d+)/.exec(await server.fetch('/metrics').then((r) => r.text()))?.[1] ?? 0);

test('a preflight from an allowed origin: 204 with the CORS headers', async (t) => {
  for (const origin of [WEB, ADMIN]) {
    const res = await preflight(s, '/v1/sync/pull', origin);
    t.is(res.status, 204, origin);
    t.is(res.headers.get('access-control-allow-origin'), origin);
    t.is(res.headers.get('access-control-allow-methods'), 'GET,POST,PUT,OPTIONS');
    const allowHeaders = res.headers.get('access-control-allow-headers')!.split(',');
    for (const h of ['authorization', 'content-type', 'content-encoding', 'if-none-match', 'x-request-id']) t.true(allowHeaders.includes(h), h);
    t.is(res.headers.get('access-control-max-age'), '600');
    t.is(res.headers.get('access-control-allow-credentials'), null, 'bearer tokens, not cookies');
    t.regex(res.headers.get('vary') ?? '', /Origin/);
  }
  const push = await preflight(s, '/v1/sync/push', WEB, 'POST', 'authorization,content-type,content-encoding');
  t.is(push.status, 204);
  t.is(push.headers.get('access-control-allow-origin'), WEB);
});

test('a preflight from a refused origin gets no CORS header, and no error', async (t) => {
  for (const origin of [EVIL, 'http://localhost:5001', `${WEB}.evil.example`, 'null']) {
    const res = await preflight(s, '/v1/sync/pull', origin);
    t.deepEqual(corsHeaders(res), [], origin);
    t.true(res.status < 400, `${origin}: ${res.status}`); // the router's own OPTIONS answer (Allow)
  }
  const unknown = await preflight(s, '/v1/nowhere', EVIL);
  t.is(unknown.status, 404, 'an unknown path is a plain 404 problem');
  t.deepEqual(corsHeaders(unknown), []);
});

test('a pull from an allowed origin carries the CORS headers, on the full route and the fast lanes', async (t) => {
  const headers = { origin: WEB, authorization: `Bearer ${token}` };
  // the first pull (no cursor): the full route
  let res = await s.fetch('/v1/sync/pull?limit=5000', { headers });
  t.is(res.status, 200);
  t.is(res.headers.get('access-control-allow-origin'), WEB);
  const exposed = res.headers.get('access-control-expose-headers')!.split(',');
  for (const h of ['ETag', 'X-Request-Id', 'Retry-After', 'WWW-Authenticate', 'Content-Encoding']) t.true(exposed.includes(h), h);
  t.truthy(res.headers.get('etag'));
  t.regex(res.headers.get('vary') ?? '', /Origin/, 'the answer depends on the Origin');
  let body = (await res.json()) as PullBody;
  while (body.hasMore) {
    res = await s.fetch(`/v1/sync/pull?limit=5000&cursor=${encodeURIComponent(body.cursor)}`, { headers });
    body = (await res.json()) as PullBody;
  }
  // caught up: a repeat with the cursor is what the fast lanes answer (the raw one hands a
  // browser's request to Koa, whose fast lane answers it with the CORS headers)
  const url = `/v1/sync/pull?limit=5000&cursor=${encodeURIComponent(body.cursor)}`;
  const before = await fastPulls(s);
  const repeat = await s.fetch(url, { headers });
  t.is(repeat.status, 200);
  t.deepEqual(((await repeat.json()) as PullBody).changes, {});
  t.true((await fastPulls(s)) > before, 'a fast lane answered');
  t.is(repeat.headers.get('access-control-allow-origin'), WEB);
  t.true(repeat.headers.get('access-control-expose-headers')!.split(',').includes('ETag'));
  t.regex(repeat.headers.get('vary') ?? '', /Origin/);
  const etag = repeat.headers.get('etag')!;
  t.truthy(etag);
  const notModified = await s.fetch(url, { headers: { ...headers, 'if-none-match': etag } });
  t.is(notModified.status, 304);
  t.is(notModified.headers.get('access-control-allow-origin'), WEB);
  // a device (no Origin) still takes the raw fast lane: no CORS headers
  const device = await s.fetch(url, { headers: { authorization: `Bearer ${token}` } });
  t.is(device.status, 200);
  t.deepEqual(corsHeaders(device), []);
  // a refused origin: the same answer, without CORS headers (the browser withholds it)
  const refused = await s.fetch(url, { headers: { ...headers, origin: EVIL } });
  t.is(refused.status, 200);
  t.deepEqual(corsHeaders(refused), []);
});

test('problem answers keep the CORS headers for an allowed origin', async (t) => {
  const missing = await s.fetch('/v1/sync/pull', { headers: { origin: WEB } });
  t.is(missing.status, 401);
  t.regex(missing.headers.get('content-type') ?? '', /^application\/problem\+json/);
  t.is(missing.headers.get('access-control-allow-origin'), WEB);
  t.is(missing.headers.get('www-authenticate'), 'Bearer');
  t.true(missing.headers.get('access-control-expose-headers')!.split(',').includes('WWW-Authenticate'), 'the browser app can read why');
  t.is(((await missing.json()) as { code: string }).code, 'token-missing');

  const forged = await s.fetch('/v1/sync/pull?cursor=x', { headers: { origin: ADMIN, authorization: 'Bearer not.a.token' } });
  t.is(forged.status, 401);
  t.is(forged.headers.get('access-control-allow-origin'), ADMIN);

  const wrongPassword = await s.post('/v1/auth/login', { email: 'driver@fixture.test', password: 'wrong-password' }, { origin: WEB });
  t.is(wrongPassword.status, 401);
  t.is(wrongPassword.headers.get('access-control-allow-origin'), WEB);

  const notFound = await s.fetch('/v1/nowhere', { headers: { origin: WEB } });
  t.is(notFound.status, 404);
  t.is(notFound.headers.get('access-control-allow-origin'), WEB);

  const refused = await s.fetch('/v1/sync/pull', { headers: { origin: EVIL } });
  t.is(refused.status, 401);
  t.deepEqual(corsHeaders(refused), []);
});

test('a login from an allowed origin', async (t) => {
  const res = await s.post('/v1/auth/login', { email: 'driver@fixture.test', password: FIXTURE_PASSWORD }, { origin: WEB });
  t.is(res.status, 200);
  t.is(res.headers.get('access-control-allow-origin'), WEB);
  t.truthy(((await res.json()) as { token: string }).token);
});

test('the Socket.IO polling transport answers an allowed origin with the CORS headers', async (t) => {
  const handshake = await s.fetch('/socket.io/?EIO=4&transport=polling', { headers: { origin: WEB } });
  t.is(handshake.status, 200);
  t.is(handshake.headers.get('access-control-allow-origin'), WEB);
  t.is(handshake.headers.get('access-control-allow-credentials'), null);
  t.regex(await handshake.text(), /"sid"/);

  const pre = await preflight(s, '/socket.io/?EIO=4&transport=polling', ADMIN, 'POST', 'content-type');
  t.is(pre.status, 204);
  t.is(pre.headers.get('access-control-allow-origin'), ADMIN);

  const refused = await s.fetch('/socket.io/?EIO=4&transport=polling', { headers: { origin: EVIL } });
  t.is(refused.status, 200, 'served; the browser withholds it');
  t.is(refused.headers.get('access-control-allow-origin'), null);

  // a whole polling session from the allowed origin
  const c = socket(s.url, token, { transports: ['polling'], extraHeaders: { origin: WEB } });
  await t.notThrowsAsync(connected(c));
});

test('without CORS_ORIGINS: no CORS headers at all', async (t) => {
  const pre = await preflight(plain, '/v1/sync/pull', WEB);
  t.deepEqual(corsHeaders(pre), []);
  t.true(pre.status < 500);

  const headers = { origin: WEB, authorization: `Bearer ${plainToken}` };
  const first = await plain.fetch('/v1/sync/pull?limit=5000', { headers });
  t.is(first.status, 200);
  t.deepEqual(corsHeaders(first), []);
  const body = (await first.json()) as PullBody;
  const repeat = await plain.fetch(`/v1/sync/pull?limit=5000&cursor=${encodeURIComponent(body.cursor)}`, { headers });
  t.deepEqual(corsHeaders(repeat), []);
  const problem = await plain.fetch('/v1/sync/pull', { headers: { origin: WEB } });
  t.is(problem.status, 401);
  t.deepEqual(corsHeaders(problem), []);
  t.notRegex(problem.headers.get('vary') ?? '', /Origin/);

  const handshake = await plain.fetch('/socket.io/?EIO=4&transport=polling', { headers: { origin: WEB } });
  t.is(handshake.status, 200);
  t.deepEqual(corsHeaders(handshake), []);
});
