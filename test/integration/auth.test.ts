import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { hashPassword } from '../../src/auth/passwords.js';
import { startTestServer, TEST_SECRET, type TestServer } from '../helpers/server.js';

let s: TestServer;
let jwks: Server;
let jwksUrl: string;
const erpKeys = await generateKeyPair('RS256');
const strangerKeys = await generateKeyPair('RS256');
const PASSWORD = 'correct horse battery';

test.before(async () => {
  // A stand-in for the ERP's identity provider: serves the public key as a JWKS.
  const jwk = { ...(await exportJWK(erpKeys.publicKey)), kid: 'erp-1', alg: 'RS256', use: 'sig' };
  jwks = createServer((_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r));
  jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/.well-known/jwks.json`;

  s = await startTestServer({ JWT_JWKS_URL: jwksUrl, LOGIN_MAX_PER_IP: '1000', LOGIN_MAX_FAILURES_PER_EMAIL: '3' });
  const hash = await hashPassword(PASSWORD);
  await s.db.none(`
    INSERT INTO warehouses (id, code, name, name_ar) VALUES (1, 'W1', 'Riyadh', 'الرياض');
    INSERT INTO salesmen (id, code, name, name_ar) VALUES (7, 'S7', 'Ali', 'علي');
    INSERT INTO users (email, password_hash, role, display_name, salesman_id) VALUES
      ('admin@test.example', $1, 'admin', 'Admin', NULL),
      ('manager@test.example', $1, 'manager', 'Manager', NULL),
      ('Ali@Test.Example', $1, 'salesman', 'Ali', 7),
      ('locked@test.example', $1, 'salesman', 'Locked', 7),
      ('ratelimit@test.example', $1, 'salesman', 'Limited', 7);
  `, [hash]);
});
test.after.always(async () => {
  await s?.close();
  jwks?.close();
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

test('login returns a token and the user, and the token authenticates', async (t) => {
  const res = await login('ali@test.example'); // e-mail is case-insensitive
  t.is(res.status, 200);
  t.is(res.headers.get('cache-control'), 'no-store');
  const body = (await res.json()) as { token: string; expiresAt: number; user: Record<string, unknown> };
  t.like(body.user, { role: 'salesman', salesmanId: 7, name: 'Ali' });
  t.false('clientId' in body.user);
  t.true(body.expiresAt > Date.now() + 11 * 3600_000);
  const me = await s.fetch('/v1/auth/me', bearer(body.token));
  t.is(me.status, 200);
  t.like(await me.json(), { user: { role: 'salesman', salesmanId: 7 } });
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
});

test('tokens issued by the ERP are verified against its JWKS; other keys are refused', async (t) => {
  const erp = await new SignJWT({ role: 'salesman', salesmanId: 7 })
    .setProtectedHeader({ alg: 'RS256', kid: 'erp-1' }).setSubject('3')
    .setIssuer('fieldsync').setAudience('fieldsync').setExpirationTime('1h').sign(erpKeys.privateKey);
  const ok = await s.fetch('/v1/auth/me', bearer(erp));
  t.is(ok.status, 200);
  t.like(await ok.json(), { user: { userId: 3, role: 'salesman', salesmanId: 7 } });

  const stranger = await new SignJWT({ role: 'admin' })
    .setProtectedHeader({ alg: 'RS256', kid: 'erp-1' }).setSubject('1')
    .setIssuer('fieldsync').setAudience('fieldsync').setExpirationTime('1h').sign(strangerKeys.privateKey);
  t.like(await problem(await s.fetch('/v1/auth/me', bearer(stranger))), { status: 401, body: { code: 'token-invalid' } });
});

test('a role that may not call a route gets 403; the right role gets through', async (t) => {
  const salesman = await tokenFor('ali@test.example');
  const manager = await tokenFor('manager@test.example');
  const admin = await tokenFor('admin@test.example');
  t.like(await problem(await s.fetch('/v1/admin/users', bearer(salesman))), { status: 403, body: { code: 'forbidden' } });
  t.is((await s.fetch('/v1/admin/users', bearer(manager))).status, 200);

  const newUser = { email: 'new@test.example', password: 'long enough', role: 'warehouse', displayName: 'Store' };
  const byManager = await s.post('/v1/admin/users', newUser, { authorization: `Bearer ${manager}` });
  t.is(byManager.status, 403, 'only admins create logins');
  const { n } = await s.db.one<{ n: number }>(`SELECT count(*) AS n FROM users WHERE email = 'new@test.example'`);
  t.is(n, 0, 'nothing written');

  const created = await s.post('/v1/admin/users', newUser, { authorization: `Bearer ${admin}` });
  t.is(created.status, 201);
  const body = (await created.json()) as { user: Record<string, unknown> };
  t.false('password_hash' in body.user);
  t.is((await login('new@test.example', 'long enough')).status, 200, 'the new login works');
  const again = await problem(await s.post('/v1/admin/users', { ...newUser, email: 'NEW@test.example' }, { authorization: `Bearer ${admin}` }));
  t.like(again, { status: 409, body: { code: 'conflict' } });
  const noSalesman = await problem(await s.post('/v1/admin/users', { ...newUser, email: 'x@test.example', role: 'salesman' }, { authorization: `Bearer ${admin}` }));
  t.like(noSalesman, { status: 400, body: { code: 'validation-failed' } });
  const ghost = await problem(await s.post('/v1/admin/users', { ...newUser, email: 'y@test.example', role: 'salesman', salesmanId: 999 }, { authorization: `Bearer ${admin}` }));
  t.like(ghost, { status: 422, body: { code: 'unprocessable' } });

  const page = (await (await s.fetch('/v1/admin/users?limit=2', bearer(admin))).json()) as { users: unknown[]; next: number };
  t.is(page.users.length, 2);
  t.truthy(page.next);
  t.like(await problem(await s.fetch('/v1/admin/users?limit=0', bearer(admin))), { status: 400 });
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

test('login attempts are limited per client IP', async (t) => {
  const limited = await startTestServer({ LOGIN_MAX_PER_IP: '3' });
  try {
    const attempt = () => limited.post('/v1/auth/login', { email: `x${Math.random()}@test.example`, password: 'x' });
    for (let i = 0; i < 3; i++) t.is((await attempt()).status, 401);
    const res = await attempt();
    t.is(res.status, 429);
    t.truthy(res.headers.get('retry-after'));
  } finally {
    await limited.close();
  }
});
