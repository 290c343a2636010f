import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { SignJWT, decodeJwt, exportJWK, generateKeyPair } from 'jose';
import { hashPassword } from '../../src/auth/passwords.js';
import { Tokens, type TokenModel } from '../../src/auth/tokens.js';
import { AppError } from '../../src/errors.js';
import type { Role } from '../../src/model/model.js';
import { erpFixture } from '../helpers/db.js';
import { startTestServer, TEST_SECRET, type TestServer } from '../helpers/server.js';

/**
 * Tokens read through the sync config: the ERP's own tokens (its JWKS, its claim and role
 * names through `token`), roles the config does not know, and fieldsync's own tokens
 * written so that they verify the same way. Logins and the admin users API are
 * auth.test.ts.
 */
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
  s = await startTestServer({ JWT_JWKS_URL: jwksUrl });
});
test.after.always(async () => {
  try {
    await s?.close();
  } finally {
    jwks?.close();
  }
});

async function problem(res: Response) {
  return { status: res.status, type: res.headers.get('content-type'), body: (await res.json()) as Record<string, unknown> };
}
const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

test('a token whose role the sync config does not know is 401 token-invalid naming the role', async (t) => {
  const key = new TextEncoder().encode(TEST_SECRET);
  const sign = (claims: Record<string, unknown>) =>
    new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject('5')
      .setIssuer('fieldsync').setAudience('fieldsync').setExpirationTime('1h').sign(key);
  // correctly signed by our own key: only the role is wrong
  const pilot = await problem(await s.fetch('/v1/auth/me', bearer(await sign({ role: 'pilot', salesmanId: 7 }))));
  t.like(pilot, { status: 401, type: 'application/problem+json', body: { code: 'token-invalid' } });
  t.regex(String(pilot.body.detail), /"pilot"/);
  // the same for an ERP-signed one, and on a route that needs a permission (401 before 403)
  const erp = await new SignJWT({ role: 'superuser' })
    .setProtectedHeader({ alg: 'RS256', kid: 'erp-1' }).setSubject('1')
    .setIssuer('fieldsync').setAudience('fieldsync').setExpirationTime('1h').sign(erpKeys.privateKey);
  const superuser = await problem(await s.fetch('/v1/admin/users', bearer(erp)));
  t.like(superuser, { status: 401, body: { code: 'token-invalid' } });
  t.regex(String(superuser.body.detail), /"superuser"/);
  // no role at all names the claim it looked for
  const none = await problem(await s.fetch('/v1/auth/me', bearer(await sign({ salesmanId: 7 }))));
  t.like(none, { status: 401, body: { code: 'token-invalid' } });
  t.regex(String(none.body.detail), /"role"/);
});

test('tokens issued by the ERP are verified against its JWKS; other keys are refused', async (t) => {
  const erp = await new SignJWT({ role: 'salesman', salesmanId: 7 })
    .setProtectedHeader({ alg: 'RS256', kid: 'erp-1' }).setSubject('3')
    .setIssuer('fieldsync').setAudience('fieldsync').setExpirationTime('1h').sign(erpKeys.privateKey);
  const ok = await s.fetch('/v1/auth/me', bearer(erp));
  t.is(ok.status, 200);
  t.deepEqual(await ok.json(), { user: { id: '3', role: 'salesman', name: null, claims: { salesmanId: 7 } } });

  const stranger = await new SignJWT({ role: 'admin' })
    .setProtectedHeader({ alg: 'RS256', kid: 'erp-1' }).setSubject('1')
    .setIssuer('fieldsync').setAudience('fieldsync').setExpirationTime('1h').sign(strangerKeys.privateKey);
  t.like(await problem(await s.fetch('/v1/auth/me', bearer(stranger))), { status: 401, body: { code: 'token-invalid' } });
});

test('an ERP token must carry exp and live at most JWT_MAX_LIFETIME_SECONDS, like ours', async (t) => {
  const now = Math.floor(Date.now() / 1000);
  const erpToken = (times: { iat?: number; exp?: number }) => {
    const jwt = new SignJWT({ role: 'salesman', salesmanId: 7 }).setProtectedHeader({ alg: 'RS256', kid: 'erp-1' }).setSubject('3')
      .setIssuer('fieldsync').setAudience('fieldsync');
    if (times.iat !== undefined) jwt.setIssuedAt(times.iat);
    if (times.exp !== undefined) jwt.setExpirationTime(times.exp);
    return jwt.sign(erpKeys.privateKey);
  };
  const noExp = await problem(await s.fetch('/v1/auth/me', bearer(await erpToken({ iat: now }))));
  t.like(noExp, { status: 401, body: { code: 'token-invalid' } });
  t.regex(String(noExp.body.detail), /no exp/);
  const year = await problem(await s.fetch('/v1/auth/me', bearer(await erpToken({ iat: now, exp: now + 365 * 24 * 3600 }))));
  t.like(year, { status: 401, body: { code: 'token-invalid' } });
  t.regex(String(year.body.detail), /at most 2592000 s/);
  const day = await s.fetch('/v1/auth/me', bearer(await erpToken({ iat: now, exp: now + 24 * 3600 })));
  t.is(day.status, 200);

  // the bound is the server's setting, checked the same way by Tokens itself
  const model: TokenModel = { roles: s.model.roles, token: s.model.token };
  const strict = new Tokens({ secret: undefined, jwksUrl, issuer: 'fieldsync', audience: 'fieldsync', ttlSeconds: 600, maxLifetimeSeconds: 3600 }, model);
  const twoHours = await erpToken({ iat: now, exp: now + 7200 });
  await t.throwsAsync(strict.verify(twoHours), { instanceOf: AppError, message: /lives 7200 s \(exp - iat\); at most 3600 s/ });
  await t.throwsAsync(strict.session(twoHours), { instanceOf: AppError }, 'refused again: not remembered');
  const hour = await erpToken({ iat: now, exp: now + 3600 });
  t.deepEqual(await strict.session(hour), { principal: { userId: '3', role: 'salesman', claims: { salesmanId: 7 } }, expiresAt: (now + 3600) * 1000 });
  t.deepEqual(strict.peek(hour), { userId: '3', role: 'salesman', claims: { salesmanId: 7 } }, 'remembered until its exp');
});

test('an ERP whose tokens name roles and claims its own way (token.roleClaim, roleMap, claims) is accepted through the config', async (t) => {
  // the TSH fixture's config: roleClaim https://tsh.example/role, roleMap {sales_rep: rep,
  // erp_admin: admin}, claims {repId: https://tsh.example/rep_id}; fieldsync's schema fs_sync
  const tsh = await startTestServer({ JWT_JWKS_URL: jwksUrl }, { erp: await erpFixture('tsh') });
  try {
    const erpToken = (claims: Record<string, unknown>, sub = 'erp-user-17') =>
      new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: 'erp-1' }).setSubject(sub)
        .setIssuer('fieldsync').setAudience('fieldsync').setExpirationTime('1h').sign(erpKeys.privateKey);
    const me = async (token: string) => problem(await tsh.fetch('/v1/auth/me', bearer(token)));

    // ids as digit strings, as ERPs often send them; the user id is text
    const rep = await me(await erpToken({ 'https://tsh.example/role': 'sales_rep', 'https://tsh.example/rep_id': '7', name: 'Rep Seventeen', email: 'ignored' }));
    t.is(rep.status, 200);
    t.deepEqual(rep.body, { user: { id: 'erp-user-17', role: 'rep', name: 'Rep Seventeen', claims: { repId: 7 } } }, 'the OIDC name claim is the display name; claims the role does not declare are dropped');
    const erpAdmin = await erpToken({ 'https://tsh.example/role': 'erp_admin' }, 'erp-admin-1');
    t.deepEqual((await me(erpAdmin)).body, { user: { id: 'erp-admin-1', role: 'admin', name: null, claims: {} } });
    t.is((await tsh.fetch('/v1/admin/users', bearer(erpAdmin))).status, 200, "the mapped role's permissions apply");

    // the names the config does not use are not read
    const plainNames = await me(await erpToken({ role: 'rep', repId: 7 }));
    t.like(plainNames, { status: 401, body: { code: 'token-invalid' } });
    t.regex(String(plainNames.body.detail), /https:\/\/tsh\.example\/role/);
    const plainClaim = await me(await erpToken({ 'https://tsh.example/role': 'sales_rep', repId: 7 }));
    t.like(plainClaim, { status: 401, body: { code: 'token-invalid' } });
    t.regex(String(plainClaim.body.detail), /https:\/\/tsh\.example\/rep_id/);
    const unmapped = await me(await erpToken({ 'https://tsh.example/role': 'warehouse_clerk' }));
    t.like(unmapped, { status: 401, body: { code: 'token-invalid' } });
    t.regex(String(unmapped.body.detail), /"warehouse_clerk"/);

    // fieldsync's own tokens for this config are written with the ERP's names, and verify the same way
    await tsh.db.none(
      `INSERT INTO $<schema:name>.users (email, password_hash, role, display_name, claims)
       VALUES ('rep@tsh.example', $<hash>, 'rep', 'Rep 7', '{"repId": 7}')`,
      { schema: tsh.model.schema, hash: await hashPassword(PASSWORD) },
    );
    t.is(tsh.model.schema, 'fs_sync');
    const res = await tsh.post('/v1/auth/login', { email: 'rep@tsh.example', password: PASSWORD });
    t.is(res.status, 200);
    const body = (await res.json()) as { token: string; user: { id: number } & Record<string, unknown> };
    t.like(body.user, { role: 'rep', claims: { repId: 7 } });
    const payload = decodeJwt(body.token);
    // the role under the ERP's claim name (its value any name the map reads as rep)
    t.true(['rep', 'sales_rep'].includes(String(payload['https://tsh.example/role'])), String(payload['https://tsh.example/role']));
    t.is(payload['https://tsh.example/rep_id'], 7);
    t.false('role' in payload || 'repId' in payload, 'only the config\'s names');
    t.deepEqual((await me(body.token)).body, { user: body.user });
  } finally {
    await tsh.close();
  }
});

test('Tokens map names both ways: a custom user claim, a role name the map sends elsewhere, mapped claim names', async (t) => {
  const role = (name: string, claims: Role['claims'] = {}): Role => ({ name, claims, buckets: [], permissions: new Set(), dependsOn: [] });
  const model: TokenModel = {
    roles: new Map([['salesman', role('salesman', { salesmanId: 'int', region: 'text' })], ['boss', role('boss')]]),
    // the ERP calls our salesman "field_rep", and its "salesman" is our boss
    token: { userClaim: 'uid', roleClaim: 'erp_role', roleMap: { field_rep: 'salesman', salesman: 'boss' }, claims: { salesmanId: 'erp_sid' } },
  };
  const tokens = new Tokens({ secret: TEST_SECRET, jwksUrl: undefined, issuer: 'fieldsync', audience: 'fieldsync', ttlSeconds: 600, maxLifetimeSeconds: 3600 }, model);
  const principal = tokens.principal('u1', 'salesman', { salesmanId: 7, region: 'north', other: 'dropped' });
  t.deepEqual(principal, { userId: 'u1', role: 'salesman', claims: { salesmanId: 7, region: 'north' } });
  const { token } = await tokens.issue(principal);
  const payload = decodeJwt(token);
  t.like(payload, { sub: 'u1', uid: 'u1', erp_role: 'field_rep', erp_sid: 7, region: 'north' });
  t.false('salesmanId' in payload || 'other' in payload);
  t.deepEqual(await tokens.verify(token), principal, 'a token we issue verifies to the same principal');

  const boss = await tokens.issue(tokens.principal('u2', 'boss', {}));
  // "boss" is not a name the map redirects, so it is written as is
  t.is(decodeJwt(boss.token).erp_role, 'boss');
  t.deepEqual(await tokens.verify(boss.token), { userId: 'u2', role: 'boss', claims: {} });

  const problemOf = (f: () => unknown) => {
    try {
      f();
      return undefined;
    } catch (err) {
      return err instanceof AppError ? `${err.code}: ${err.message}` : String(err);
    }
  };
  t.regex(problemOf(() => tokens.principal('u3', 'salesman', { region: 'north' }))!, /^token-invalid: .*salesmanId is required/);
  t.regex(problemOf(() => tokens.principal('u3', 'salesman', { salesmanId: 0, region: 'north' }))!, /^token-invalid: .*salesmanId must be a positive integer/);
  t.regex(problemOf(() => tokens.principal('u3', 'pilot', {}))!, /^token-invalid: .*"pilot"/);

  // a role no ERP name maps back to cannot be issued (its token would verify as another role)
  const stuck = new Tokens({ secret: TEST_SECRET, jwksUrl: undefined, issuer: 'fieldsync', audience: 'fieldsync', ttlSeconds: 600, maxLifetimeSeconds: 3600 }, {
    roles: model.roles,
    token: { userClaim: 'sub', roleClaim: 'role', roleMap: { salesman: 'boss' }, claims: {} },
  });
  await t.throwsAsync(stuck.issue(stuck.principal('u4', 'salesman', { salesmanId: 7, region: 'north' })), { message: /roleMap/ });
});
