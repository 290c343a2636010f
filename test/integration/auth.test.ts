import test from 'ava';
import { Redis } from 'ioredis';
import { SignJWT } from 'jose';
import { hashPassword } from '../../src/auth/passwords.js';
import { startSecondInstance, startTestServer, TEST_SECRET, type TestServer } from '../helpers/server.js';

/**
 * Standalone auth: logins, tokens refused at the edge, permissions of routes, the admin
 * users API and login rate limits. Tokens read through the sync config (the ERP's JWKS,
 * its claim and role names) are erp-tokens.test.ts.
 */
let s: TestServer;
const PASSWORD = 'correct horse battery';
const REDIS = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

test.before(async () => {
  s = await startTestServer({ LOGIN_MAX_PER_IP: '1000', LOGIN_MAX_FAILURES_PER_EMAIL: '3' });
  const hash = await hashPassword(PASSWORD);
  await s.db.none(`
    INSERT INTO public.warehouses (id, code, name, name_ar) VALUES (1, 'W1', 'Riyadh', 'الرياض');
    INSERT INTO public.salesmen (id, code, name, name_ar) VALUES (7, 'S7', 'Ali', 'علي');
    INSERT INTO $<schema:name>.users (email, password_hash, role, display_name, claims) VALUES
      ('admin@test.example', $<hash>, 'admin', 'Admin', '{}'),
      ('manager@test.example', $<hash>, 'manager', 'Manager', '{}'),
      ('Ali@Test.Example', $<hash>, 'salesman', 'Ali', '{"salesmanId": 7}'),
      ('locked@test.example', $<hash>, 'salesman', 'Locked', '{"salesmanId": 7}'),
      ('ratelimit@test.example', $<hash>, 'salesman', 'Limited', '{"salesmanId": 7}'),
      -- records the sync config no longer fits: a claim the role needs is missing or
      -- mistyped, or the role was removed from the config
      ('noclaim@test.example', $<hash>, 'salesman', 'No claim', '{}'),
      ('badclaim@test.example', $<hash>, 'salesman', 'Bad claim', '{"salesmanId": "seven"}'),
      ('oldrole@test.example', $<hash>, 'supervisor', 'Old role', '{}');
  `, { schema: s.model.schema, hash });
});
test.after.always(async () => {
  await s?.close();
});

async function login(email: string, password = PASSWORD) {
  return s.post('/v1/auth/login', { email, password });
}
async function tokenFor(email: string): Promise<string> {
  const res = await login(email);
  return ((await res.json()) as { token: string }).token;
}
async function problem(res: Response) {
  return { status: res.status, type: res.headers.get('content-type'), body: (await res.json()) as Record<string, unknown> };
}
const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });
/** how many logins fieldsync's users table (in the config's schema) holds with this e-mail */
const usersWithEmail = async (email: string) =>
  (await s.db.one<{ n: number }>('SELECT count(*)::int AS n FROM $1:name.users WHERE lower(email) = lower($2)', [s.model.schema, email])).n;

test('login returns a token and the user, and the token authenticates', async (t) => {
  const res = await login('ali@test.example'); // e-mail is case-insensitive
  t.is(res.status, 200);
  t.is(res.headers.get('cache-control'), 'no-store');
  const body = (await res.json()) as { token: string; expiresAt: number; user: { id: string; claims: Record<string, unknown> } & Record<string, unknown> };
  t.like(body.user, { role: 'salesman', name: 'Ali' });
  t.regex(body.user.id, /^[1-9][0-9]*$/, 'the user id as text, the same as /me and ERP tokens give it');
  t.deepEqual(body.user.claims, { salesmanId: 7 }, "exactly the role's claims: no clientId");
  t.false('password_hash' in body.user);
  t.true(body.expiresAt > Date.now() + 11 * 3600_000);
  const me = await s.fetch('/v1/auth/me', bearer(body.token));
  t.is(me.status, 200);
  t.deepEqual(await me.json(), { user: body.user }, 'one user shape: /me answers what login answered');

  const admin = (await (await login('admin@test.example')).json()) as { token: string; user: Record<string, unknown> };
  t.like(admin.user, { role: 'admin', claims: {} });
  t.like(await (await s.fetch('/v1/auth/me', bearer(admin.token))).json(), { user: { role: 'admin', claims: {} } });
});

test('wrong password and unknown e-mail get the same 401 problem', async (t) => {
  const wrong = await problem(await login('manager@test.example', 'nope'));
  const unknown = await problem(await login('nobody@test.example', 'nope'));
  for (const p of [wrong, unknown]) {
    t.is(p.status, 401);
    t.is(p.type, 'application/problem+json');
    t.like(p.body, { code: 'invalid-credentials', type: '/problems/invalid-credentials', status: 401 });
  }
  t.is(wrong.body.title, unknown.body.title);
});

test('bad input is a 400/413/415 problem naming the problem, and the server keeps serving', async (t) => {
  const malformed = await problem(await s.post('/v1/auth/login', '{"email": "a@b.c", '));
  t.like(malformed, { status: 400, body: { code: 'malformed-json' } });

  const types = await problem(await s.post('/v1/auth/login', { email: 42, password: ['x'] }));
  t.like(types, { status: 400, body: { code: 'validation-failed' } });
  const paths = (types.body.errors as { path: string }[]).map((e) => e.path).sort();
  t.deepEqual(paths, ['email', 'password']);

  const extra = await problem(await s.post('/v1/auth/login', { email: 'a@b.c', password: 'x', role: 'admin' }));
  t.like(extra, { status: 400, body: { code: 'validation-failed' } });
  t.regex(JSON.stringify(extra.body.errors), /role|unrecognized/i);

  const form = await problem(
    await s.fetch('/v1/auth/login', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'email=a' }),
  );
  t.like(form, { status: 415, body: { code: 'unsupported-media-type' } });

  const huge = await problem(await s.post('/v1/auth/login', { email: 'a@b.c', password: 'x'.repeat(3 * 1024 * 1024) }));
  t.like(huge, { status: 413, body: { code: 'payload-too-large' } });

  const notFound = await problem(await s.fetch('/v1/nope'));
  t.like(notFound, { status: 404, body: { code: 'not-found' } });
  const method = await problem(await s.fetch('/v1/auth/login', { method: 'DELETE' }));
  t.like(method, { status: 405, body: { code: 'method-not-allowed' } });

  t.is((await s.fetch('/health')).status, 200, 'still serving');
  t.is((await login('admin@test.example')).status, 200);
});

test('missing, forged, expired and alg=none tokens are 401 problems', async (t) => {
  const missing = await s.fetch('/v1/auth/me');
  t.is(missing.status, 401);
  t.is(missing.headers.get('www-authenticate'), 'Bearer');
  t.like(await problem(missing), { body: { code: 'token-missing' } });

  const claims = { role: 'admin' };
  const forged = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject('1')
    .setIssuer('fieldsync').setAudience('fieldsync').setExpirationTime('1h')
    .sign(new TextEncoder().encode('a-different-secret-that-is-also-long-enough'));
  t.like(await problem(await s.fetch('/v1/auth/me', bearer(forged))), { status: 401, body: { code: 'token-invalid' } });

  const key = new TextEncoder().encode(TEST_SECRET);
  const expired = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject('1')
    .setIssuer('fieldsync').setAudience('fieldsync').setIssuedAt(Math.floor(Date.now() / 1000) - 7200)
    .setExpirationTime(Math.floor(Date.now() / 1000) - 3600).sign(key);
  t.like(await problem(await s.fetch('/v1/auth/me', bearer(expired))), { status: 401, body: { code: 'token-expired' } });

  const wrongAudience = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject('1')
    .setIssuer('fieldsync').setAudience('someone-else').setExpirationTime('1h').sign(key);
  t.like(await problem(await s.fetch('/v1/auth/me', bearer(wrongAudience))), { status: 401, body: { code: 'token-invalid' } });

  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const none = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: '1', role: 'admin', iss: 'fieldsync', aud: 'fieldsync', exp: 9999999999 })}.`;
  t.like(await problem(await s.fetch('/v1/auth/me', bearer(none))), { status: 401, body: { code: 'token-invalid' } });

  const badClaims = await new SignJWT({ role: 'salesman' }).setProtectedHeader({ alg: 'HS256' }).setSubject('3')
    .setIssuer('fieldsync').setAudience('fieldsync').setExpirationTime('1h').sign(key);
  const p = await problem(await s.fetch('/v1/auth/me', bearer(badClaims)));
  t.like(p, { status: 401, body: { code: 'token-invalid' } });
  t.regex(String(p.body.detail), /salesmanId/);

  const mistyped = await new SignJWT({ role: 'salesman', salesmanId: 'seven' }).setProtectedHeader({ alg: 'HS256' }).setSubject('3')
    .setIssuer('fieldsync').setAudience('fieldsync').setExpirationTime('1h').sign(key);
  const m = await problem(await s.fetch('/v1/auth/me', bearer(mistyped)));
  t.like(m, { status: 401, body: { code: 'token-invalid' } });
  t.regex(String(m.body.detail), /salesmanId/);
});

test('a token without exp, or living longer than JWT_MAX_LIFETIME_SECONDS, is 401 token-invalid; a normal one works', async (t) => {
  const key = new TextEncoder().encode(TEST_SECRET);
  const now = Math.floor(Date.now() / 1000);
  const day = 24 * 3600;
  const sign = (times: { iat?: number; exp?: number }) => {
    const jwt = new SignJWT({ role: 'admin' }).setProtectedHeader({ alg: 'HS256' }).setSubject('1').setIssuer('fieldsync').setAudience('fieldsync');
    if (times.iat !== undefined) jwt.setIssuedAt(times.iat);
    if (times.exp !== undefined) jwt.setExpirationTime(times.exp);
    return jwt.sign(key);
  };
  const refused = async (token: string, why: RegExp, what: string) => {
    for (const path of ['/v1/auth/me', '/v1/admin/users']) {
      // twice: a refused token is not remembered as verified
      for (let i = 0; i < 2; i++) {
        const p = await problem(await s.fetch(path, bearer(token)));
        t.like(p, { status: 401, body: { code: 'token-invalid' } }, `${what} on ${path}`);
        t.regex(String(p.body.detail), why, what);
      }
    }
  };
  await refused(await sign({}), /no exp/, 'no exp');
  await refused(await sign({ iat: now }), /no exp/, 'iat but no exp');
  await refused(await sign({ iat: now, exp: now + 31 * day }), /lives 2678400 s \(exp - iat\); at most 2592000 s/, '31 days from iat');
  await refused(await sign({ exp: now + 31 * day }), /\(exp - now\); at most 2592000 s/, '31 days from now, no iat');
  await refused(await sign({ iat: now - 40 * day, exp: now + 3600 }), /exp - iat/, 'issued for 40 days, one hour left');
  await refused(await sign({ iat: now + 20 * day, exp: now + 40 * day }), /exp - now/, 'an iat in the future does not shorten it');

  for (const times of [{ iat: now, exp: now + 3600 }, { exp: now + 3600 }, { iat: now - 29 * day, exp: now + day - 60 }]) {
    const token = await sign(times);
    t.is((await s.fetch('/v1/auth/me', bearer(token))).status, 200, JSON.stringify(times));
    t.is((await s.fetch('/v1/admin/users', bearer(token))).status, 200, JSON.stringify(times));
  }
});

test('a role that may not call a route gets 403; the right role gets through', async (t) => {
  const salesman = await tokenFor('ali@test.example');
  const manager = await tokenFor('manager@test.example');
  const admin = await tokenFor('admin@test.example');
  t.like(await problem(await s.fetch('/v1/admin/users', bearer(salesman))), { status: 403, body: { code: 'forbidden' } });
  t.is((await s.fetch('/v1/admin/users', bearer(manager))).status, 200, 'managers have users:read');

  const newUser = { email: 'new@test.example', password: 'long enough', role: 'warehouse', displayName: 'Store' };
  const byManager = await s.post('/v1/admin/users', newUser, { authorization: `Bearer ${manager}` });
  t.is(byManager.status, 403, 'only admins create logins (users:write)');
  t.is(await usersWithEmail('new@test.example'), 0, 'nothing written');

  const created = await s.post('/v1/admin/users', newUser, { authorization: `Bearer ${admin}` });
  t.is(created.status, 201);
  const body = (await created.json()) as { user: Record<string, unknown> };
  t.false('password_hash' in body.user);
  t.false('passwordHash' in body.user);
  t.like(body.user, { email: 'new@test.example', role: 'warehouse', displayName: 'Store', claims: {}, active: true });
  t.is((await login('new@test.example', 'long enough')).status, 200, 'the new login works');
  const again = await problem(await s.post('/v1/admin/users', { ...newUser, email: 'NEW@test.example' }, { authorization: `Bearer ${admin}` }));
  t.like(again, { status: 409, body: { code: 'conflict' } });
  t.is(await usersWithEmail('new@test.example'), 1);
  const unknownRole = await problem(await s.post('/v1/admin/users', { ...newUser, email: 'z@test.example', role: 'pilot' }, { authorization: `Bearer ${admin}` }));
  t.like(unknownRole, { status: 400, body: { code: 'validation-failed' } });
  t.deepEqual((unknownRole.body.errors as { path: string }[]).map((e) => e.path), ['role']);

  const page = (await (await s.fetch('/v1/admin/users?limit=2', bearer(admin))).json()) as { users: Record<string, unknown>[]; next: number };
  t.is(page.users.length, 2);
  t.truthy(page.next);
  t.deepEqual(Object.keys(page.users[0]!).sort(), ['active', 'claims', 'createdAt', 'displayName', 'email', 'id', 'role']);
  const rest = (await (await s.fetch(`/v1/admin/users?after=${page.next}&limit=500`, bearer(admin))).json()) as { users: { id: number; email: string; claims: unknown }[]; next: number | null };
  t.is(rest.next, null);
  t.true(rest.users.every((u) => u.id > page.next), 'keyset: the next page starts after the last id');
  t.deepEqual(rest.users.find((u) => u.email.toLowerCase() === 'ali@test.example')?.claims, { salesmanId: 7 });
  t.like(await problem(await s.fetch('/v1/admin/users?limit=0', bearer(admin))), { status: 400 });
});

test('the admin users API checks claims against the role: required, typed, nothing foreign', async (t) => {
  const admin = await tokenFor('admin@test.example');
  const create = async (user: Record<string, unknown>) =>
    problem(await s.post('/v1/admin/users', { password: 'long enough', displayName: 'Someone', ...user }, { authorization: `Bearer ${admin}` }));
  const paths = (p: { body: Record<string, unknown> }) => (p.body.errors as { path: string }[]).map((e) => e.path).sort();

  const missing = await create({ email: 'm@test.example', role: 'salesman' });
  t.like(missing, { status: 400, body: { code: 'validation-failed' } });
  t.deepEqual(paths(missing), ['claims.salesmanId']);
  const emptyClaims = await create({ email: 'm@test.example', role: 'salesman', claims: {} });
  t.deepEqual(paths(emptyClaims), ['claims.salesmanId']);
  const mistyped = await create({ email: 'm@test.example', role: 'salesman', claims: { salesmanId: '7x' } });
  t.like(mistyped, { status: 400, body: { code: 'validation-failed' } });
  t.deepEqual(paths(mistyped), ['claims.salesmanId']);
  const negative = await create({ email: 'm@test.example', role: 'salesman', claims: { salesmanId: -7 } });
  t.deepEqual(paths(negative), ['claims.salesmanId']);
  const foreign = await create({ email: 'm@test.example', role: 'salesman', claims: { salesmanId: 7, clientId: 1 } });
  t.like(foreign, { status: 400, body: { code: 'validation-failed' } });
  t.deepEqual(paths(foreign), ['claims.clientId'], "a claim the role does not declare");
  const adminWithClaim = await create({ email: 'm@test.example', role: 'admin', claims: { salesmanId: 7 } });
  t.deepEqual(paths(adminWithClaim), ['claims.salesmanId']);
  const oldShape = await create({ email: 'm@test.example', role: 'salesman', salesmanId: 7 });
  t.like(oldShape, { status: 400, body: { code: 'validation-failed' } }, 'claims go under claims, not beside them');
  t.is(await usersWithEmail('m@test.example'), 0, 'nothing written by any of them');

  // No foreign key to the ERP any more: a salesman id the ERP does not (yet) have is accepted;
  // the login syncs nothing of salesman 999 until the ERP has him.
  const ghost = await create({ email: 'ghost@test.example', role: 'salesman', claims: { salesmanId: 999 } });
  t.is(ghost.status, 201);
  t.like(ghost.body, { user: { role: 'salesman', claims: { salesmanId: 999 } } });
  const ghostLogin = (await (await login('ghost@test.example', 'long enough')).json()) as { user: Record<string, unknown> };
  t.like(ghostLogin.user, { role: 'salesman', claims: { salesmanId: 999 } });

  const client = await create({ email: 'shop@test.example', role: 'client_app', claims: { clientId: 12 } });
  t.is(client.status, 201);
  const shop = (await (await login('shop@test.example', 'long enough')).json()) as { token: string };
  t.deepEqual(await (await s.fetch('/v1/auth/me', bearer(shop.token))).json(), {
    user: { id: String((client.body.user as { id: number }).id), role: 'client_app', name: 'Someone', claims: { clientId: 12 } },
  });
});

test('a user whose stored record no longer fits its role cannot log in: 403 naming why, no token', async (t) => {
  for (const [email, why] of [
    ['noclaim@test.example', /salesmanId/],
    ['badclaim@test.example', /salesmanId/],
    ['oldrole@test.example', /"supervisor"/],
  ] as const) {
    const res = await login(email);
    const p = await problem(res);
    t.like(p, { status: 403, type: 'application/problem+json', body: { code: 'forbidden' } }, email);
    t.regex(String(p.body.detail), why, email);
    t.false('token' in p.body, email);
  }
  // a wrong password for such a record is still the plain 401 (no hint that the e-mail exists)
  t.like(await problem(await login('noclaim@test.example', 'wrong')), { status: 401, body: { code: 'invalid-credentials' } });
});

test('failed logins are limited per e-mail; a correct password is refused while limited', async (t) => {
  for (let i = 0; i < 3; i++) t.is((await login('ratelimit@test.example', 'wrong')).status, 401);
  const limited = await login('ratelimit@test.example');
  t.is(limited.status, 429);
  t.truthy(Number(limited.headers.get('retry-after')) > 0);
  t.like(await problem(limited), { body: { code: 'rate-limited' } });
  t.is((await login('locked@test.example')).status, 200, 'other e-mails are not affected');
});

test('a success resets the failure count of its e-mail', async (t) => {
  for (let i = 0; i < 2; i++) await login('locked@test.example', 'wrong');
  t.is((await login('locked@test.example')).status, 200);
  for (let i = 0; i < 2; i++) t.is((await login('locked@test.example', 'wrong')).status, 401);
  t.is((await login('locked@test.example')).status, 200);
});

/** A login attempt with a fresh e-mail (only the IP limit can refuse it), through `server`. */
const attempt = (url: string, headers: Record<string, string> = {}) =>
  fetch(`${url}/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ email: `x${Math.random()}@test.example`, password: 'x' }),
  });

test('login attempts are limited per client IP; without a trusted proxy X-Forwarded-For is ignored', async (t) => {
  const limited = await startTestServer({ LOGIN_MAX_PER_IP: '3' });
  try {
    for (let i = 0; i < 3; i++) t.is((await attempt(limited.url, { 'x-forwarded-for': `1.2.3.${i}` })).status, 401);
    const res = await attempt(limited.url, { 'x-forwarded-for': '5.6.7.8' });
    t.is(res.status, 429);
    t.truthy(res.headers.get('retry-after'));
  } finally {
    await limited.close();
  }
});

test('with one trusted proxy, a forged X-Forwarded-For does not change the client IP the login limit counts', async (t) => {
  const proxied = await startTestServer({ LOGIN_MAX_PER_IP: '3', TRUST_PROXY: '1' });
  try {
    // The client writes a first entry of its choice, different each time; the proxy
    // appends the address it saw (198.51.100.7): that one is counted.
    const via = (forged: string, real: string) => attempt(proxied.url, { 'x-forwarded-for': `${forged}, ${real}` });
    for (let i = 0; i < 3; i++) t.is((await via(`1.2.3.${i}`, '198.51.100.7')).status, 401);
    t.is((await via('9.9.9.9', '198.51.100.7')).status, 429, 'another forged entry does not get around the limit');
    t.is((await attempt(proxied.url, { 'x-forwarded-for': '198.51.100.7' })).status, 429, 'nor does sending none');
    t.is((await via('9.9.9.9', '198.51.100.8')).status, 401, 'another client behind the proxy has its own count');
  } finally {
    await proxied.close();
  }
});

test('the login limit per IP holds across two processes sharing Redis', async (t) => {
  const env = { REDIS_URL: REDIS, LOGIN_MAX_PER_IP: '4' };
  const a = await startTestServer(env);
  const redis = new Redis(REDIS);
  try {
    const b = await startSecondInstance(a, env); // same database, so the same Redis namespace
    try {
      // four attempts spread over both processes use up the one limit
      for (const server of [a, b, a, b]) t.is((await attempt(server.url)).status, 401);
      t.is((await attempt(a.url)).status, 429, 'the fifth, on A');
      t.is((await attempt(b.url)).status, 429, 'the sixth, on B');
      // the count is one Redis key under the database's namespace, and it expires with its window
      const keys = await redis.keys(`${a.config.redisKeyPrefix}:${a.tdb.name}:limit:login_ip:*`);
      t.is(keys.length, 1, keys.join());
      const ttl = await redis.pttl(keys[0]!);
      t.true(ttl > 0 && ttl <= 60_000, `expires in ${ttl} ms`);
    } finally {
      await b.stop();
    }
  } finally {
    const keys = await redis.keys(`${a.config.redisKeyPrefix}:${a.tdb.name}:limit:*`);
    if (keys.length > 0) await redis.del(keys);
    redis.disconnect();
    await a.close();
  }
});

test('Redis unreachable: logins are still limited, per process in memory, and never answer 500', async (t) => {
  const down = await startTestServer({ REDIS_URL: 'redis://127.0.0.1:1', LOGIN_MAX_PER_IP: '3' }); // nothing listens there
  try {
    for (let i = 0; i < 3; i++) t.is((await attempt(down.url)).status, 401);
    t.is((await attempt(down.url)).status, 429);
  } finally {
    await down.close();
  }
});

test('Redis answering nothing (a hung server): the limiter gives up after its timeout and counts in memory', async (t) => {
  // a TCP relay to the real Redis that, while hung, holds Redis's answers back (and passes
  // them on, in order, when released)
  const { createServer, connect: dial } = await import('node:net');
  const upstream = new URL(REDIS);
  let hung = false;
  const held: (() => void)[] = [];
  const release = () => {
    hung = false;
    for (const send of held.splice(0)) send();
  };
  const relay = createServer((client) => {
    const up = dial(Number(upstream.port || 6379), upstream.hostname);
    client.on('data', (d) => up.write(d));
    up.on('data', (d) => {
      if (hung) held.push(() => client.write(d));
      else client.write(d);
    });
    const end = () => (client.destroy(), up.destroy());
    client.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', () => r()));
  const port = (relay.address() as { port: number }).port;
  const slow = await startTestServer({ REDIS_URL: `redis://127.0.0.1:${port}`, LOGIN_MAX_PER_IP: '3' });
  try {
    hung = true;
    for (let i = 0; i < 3; i++) t.is((await attempt(slow.url)).status, 401);
    t.is((await attempt(slow.url)).status, 429);
  } finally {
    release();
    await new Promise((r) => setTimeout(r, 500)); // the held answers reach their commands
    const redis = new Redis(REDIS);
    const keys = await redis.keys(`${slow.config.redisKeyPrefix}:${slow.tdb.name}:limit:*`);
    if (keys.length > 0) await redis.del(keys);
    redis.disconnect();
    await slow.close();
    relay.close();
  }
});
