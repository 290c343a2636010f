import test from 'ava';
import { FIXTURE_PASSWORD, loadFixture } from '../helpers/fixture.js';
import { startSecondInstance, startTestServer, type TestServer } from '../helpers/server.js';
import { connected, record, refusedWith, signToken, sockets } from '../helpers/sockets.js';

const REDIS = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * Who may use the push channel: the handshake's token checks (missing, forged, expired,
 * no exp, too long a lifetime), a session ended when its token expires, and the
 * connection limit per client IP (behind a trusted proxy, and across instances sharing
 * Redis). What connected sockets receive: realtime.test.ts.
 */
let s: TestServer;
const tokens: Record<string, string> = {};
const { socket, closeAll } = sockets();

test.before(async () => {
  s = await startTestServer();
  await loadFixture(s.db);
  const res = await s.post('/v1/auth/login', { email: 'salesman1@fixture.test', password: FIXTURE_PASSWORD });
  tokens.salesman1 = ((await res.json()) as { token: string }).token;
});
test.after.always(async () => {
  try {
    closeAll(); // throws when an event was off its schema
  } finally {
    await s?.close();
  }
});

/** A token of the config's admin (no claims, so no data is needed to connect). */
const adminToken = () => signToken({ role: 'admin' }, { exp: '1h' });

test.serial('the handshake refuses missing, forged and expired tokens, and accepts a good one', async (t) => {
  const missing = await connected(socket(s.url, undefined)).catch((e: Error & { data?: { code: string } }) => e);
  t.like(missing, { data: { code: 'token-missing' } });
  const forged = await connected(socket(s.url, 'x.y.z')).catch((e: Error & { data?: { code: string } }) => e);
  t.like(forged, { data: { code: 'token-invalid' } });
  const expired = await signToken({ role: 'admin' }, { exp: Math.floor(Date.now() / 1000) - 10 });
  t.like(await connected(socket(s.url, expired)).catch((e: Error & { data?: { code: string } }) => e), { data: { code: 'token-expired' } });
  const good = socket(s.url, tokens.salesman1);
  await connected(good);
  t.true(good.connected);
});

test.serial('the handshake refuses a token without exp or living longer than the maximum', async (t) => {
  const now = Math.floor(Date.now() / 1000);
  const sign = (exp?: number) => signToken({ role: 'admin' }, { iat: now, ...(exp !== undefined && { exp }) });
  const refusal = async (token: string) => connected(socket(s.url, token)).then(() => undefined, (e: Error & { data?: { code: string } }) => e);
  const noExp = await refusal(await sign());
  t.like(noExp, { data: { code: 'token-invalid' } });
  t.regex(String(noExp?.message), /no exp/);
  const tooLong = await refusal(await sign(now + 31 * 24 * 3600));
  t.like(tooLong, { data: { code: 'token-invalid' } });
  t.regex(String(tooLong?.message), /at most 2592000 s/);
  t.is(await refusal(await sign(now + 3600)), undefined, 'an hour is fine');
  t.is(await refusal(await sign(now + 29 * 24 * 3600)), undefined, '29 days is fine (past the longest timer: the expiry is armed in steps)');
});

test('connections are limited per client IP', async (t) => {
  const limited = await startTestServer({ SOCKET_CONNECTS_PER_IP_PER_MINUTE: '2' });
  try {
    await loadFixture(limited.db);
    const login = await limited.post('/v1/auth/login', { email: 'warehouse@fixture.test', password: FIXTURE_PASSWORD });
    const token = ((await login.json()) as { token: string }).token;
    await connected(socket(limited.url, token));
    await connected(socket(limited.url, token));
    const third = await connected(socket(limited.url, token)).catch((e: Error & { data?: { code: string } }) => e);
    t.like(third, { data: { code: 'rate-limited' } });
  } finally {
    await limited.close();
  }
});

test.serial('a token that expires while connected ends the session with session:expired', async (t) => {
  const short = await signToken({ role: 'salesman', salesmanId: 2 }, { sub: '4', exp: Math.floor(Date.now() / 1000) + 2 });
  const c = socket(s.url, short);
  const got = record(c);
  await connected(c);
  const reason = await new Promise<string>((r) => c.once('disconnect', r));
  t.is(reason, 'io server disconnect');
  t.truthy(got.find((e) => e.event === 'session:expired'));
});

test('with one trusted proxy, a forged X-Forwarded-For does not change the client IP the connection limit counts', async (t) => {
  const proxied = await startTestServer({ SOCKET_CONNECTS_PER_IP_PER_MINUTE: '2', TRUST_PROXY: '1' });
  try {
    const token = await adminToken();
    // the client's own first entry differs each time; the proxy appended 198.51.100.7
    const via = (xff: string) => socket(proxied.url, token, { extraHeaders: { 'x-forwarded-for': xff } });
    t.is(await refusedWith(via('1.2.3.4, 198.51.100.7')), 'connected');
    t.is(await refusedWith(via('5.6.7.8, 198.51.100.7')), 'connected');
    t.is(await refusedWith(via('9.9.9.9, 198.51.100.7')), 'rate-limited');
    t.is(await refusedWith(via('198.51.100.8')), 'connected', 'another client behind the proxy has its own count');
  } finally {
    await proxied.close();
  }
});

test('the connection limit per IP holds across two instances sharing Redis', async (t) => {
  const env = { REDIS_URL: REDIS, SOCKET_CONNECTS_PER_IP_PER_MINUTE: '2' };
  const a = await startTestServer(env);
  try {
    const b = await startSecondInstance(a, env);
    try {
      const token = await adminToken();
      t.is(await refusedWith(socket(a.url, token)), 'connected');
      t.is(await refusedWith(socket(b.url, token)), 'connected');
      t.is(await refusedWith(socket(a.url, token)), 'rate-limited');
      t.is(await refusedWith(socket(b.url, token)), 'rate-limited');
    } finally {
      await b.stop();
    }
  } finally {
    await a.close();
  }
});
