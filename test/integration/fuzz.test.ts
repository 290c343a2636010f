import { randomUUID } from 'node:crypto';
import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import test from 'ava';
import fc from 'fast-check';
import pgPromise from 'pg-promise';
import { errorCatalogue } from '../../src/errors.js';
import { erpPool } from '../helpers/db.js';
import { FIXTURE_PASSWORD, loadFixture } from '../helpers/fixture.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/**
 * A fuzzer driven by the route table (`server.routes`): for every route, generated paths
 * (its parameters replaced by hostile values), query strings, headers, bodies (valid
 * examples with one leaf replaced, a key dropped or added, nested deep; arbitrary JSON;
 * random bytes) and body encodings (valid and broken gzip, deflate, br, unknown). Each
 * answer must be below 500, a 4xx must be problem+json with a code from the catalogue, a
 * refused request must write nothing, and the server must stay healthy.
 *
 * Seeded: FUZZ_SEED=<n> replays a run (the seed is printed on failure, with the shrunk
 * request). FUZZ_RUNS sets the number of requests (default 300, a few seconds; a soak:
 * `FUZZ_RUNS=20000 npx ava test/integration/fuzz.test.ts`).
 */
let s: TestServer;
let erp: pgPromise.IDatabase<unknown>;
const tokens: Record<string, string> = {};

test.before(async () => {
  s = await startTestServer();
  await loadFixture(s.db);
  await s.settle();
  erp = erpPool(s.tdb.url, 2);
  for (const who of ['admin', 'salesman1', 'warehouse']) {
    const res = await s.post('/v1/auth/login', { email: `${who}@fixture.test`, password: FIXTURE_PASSWORD });
    tokens[who] = ((await res.json()) as { token: string }).token;
  }
});
test.after.always(async () => {
  await erp?.$pool.end();
  await s?.close();
});

const NASTY = [
  '', '\u0000', 'a\u0000b', '0', '-1', '1.5', 'NaN', 'Infinity', '1e400', '9223372036854775808', '9007199254740993', '-9223372036854775809',
  '%', '%00', '%ZZ', '../../etc/passwd', '\ud800', '🙂', '١٢٣', 'بقالة', '0000-01-01', '10000-01-01', '2026-02-30', '{"a":1}', '[]', 'null', 'true',
  ' ', 'x'.repeat(300), 'x'.repeat(5000), "'; DROP TABLE products; --", '<script>', 'Bearer x',
];
const nastyString = fc.oneof(fc.constantFrom(...NASTY), fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 20 }));
const nastyValue: fc.Arbitrary<unknown> = fc.oneof(
  nastyString,
  fc.constantFrom(0, -1, 1.5, 2 ** 31, 2 ** 53, 2 ** 63, Number.MAX_SAFE_INTEGER, 1e308, -1e308, null, true, false, [], {}),
  fc.integer(),
  fc.double(),
  fc.jsonValue({ maxDepth: 3 }),
);

/** Examples of valid bodies: the fuzzer bends them, so it reaches past the first check. */
const examples: Record<string, () => unknown> = {
  'POST /v1/auth/login': () => ({ email: 'salesman1@fixture.test', password: FIXTURE_PASSWORD }),
  'POST /v1/sync/pull': () => ({ limit: 10 }),
  'POST /v1/sync/push': () => ({
    deviceId: 'fuzz-phone',
    mutations: [
      { id: randomUUID(), type: 'order.create', createdAt: Date.now(), payload: { orderId: randomUUID(), clientId: 4, lines: [{ productId: 1, qty: 1, note: 'n' }], requestedDelivery: '2027-01-01', notes: 'x' } },
      { id: randomUUID(), type: 'order.update_notes', payload: { orderId: randomUUID(), notes: 'x', requestedDelivery: '2027-01-02' } },
      { id: randomUUID(), type: 'client.update_contact', payload: { clientId: 4, address: 'street 1', phone: '+966 555 1234' } },
    ],
  }),
  'POST /v1/admin/users': () => ({ email: `fuzz-${randomUUID()}@x.test`, password: 'long-enough-1', role: 'salesman', displayName: 'Fuzz', claims: { salesmanId: 1 } }),
};

type Edit = { kind: 'leaf'; at: number; value: unknown } | { kind: 'drop'; at: number } | { kind: 'add'; at: number; key: string; value: unknown } | { kind: 'nest'; depth: number } | { kind: 'none' };

/** The containers of a JSON value, in a fixed order (so an index picks one reproducibly). */
function containers(v: unknown, out: (Record<string, unknown> | unknown[])[] = []): (Record<string, unknown> | unknown[])[] {
  if (typeof v === 'object' && v !== null) {
    out.push(v as Record<string, unknown>);
    for (const child of Object.values(v)) containers(child, out);
  }
  return out;
}

function bend(body: unknown, edit: Edit): unknown {
  if (edit.kind === 'none') return body;
  if (edit.kind === 'nest') {
    let v: unknown = body;
    for (let i = 0; i < edit.depth; i++) v = { a: v };
    return v;
  }
  const all = containers(body);
  if (all.length === 0) return body;
  const c = all[edit.at % all.length]!;
  const keys = Object.keys(c);
  if (edit.kind === 'add') (c as Record<string, unknown>)[edit.key] = edit.value;
  else if (keys.length > 0) {
    const key = keys[edit.at % keys.length]!;
    if (edit.kind === 'drop') delete (c as Record<string, unknown>)[key];
    else (c as Record<string, unknown>)[key] = edit.value;
  }
  return body;
}

const edit: fc.Arbitrary<Edit> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('leaf' as const), at: fc.nat(), value: nastyValue }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('drop' as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('add' as const), at: fc.nat(), key: nastyString, value: nastyValue }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('nest' as const), depth: fc.constantFrom(31, 33, 200, 1000) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'none' as const }) },
);

const request = fc.record({
  route: fc.nat(),
  method: fc.oneof({ weight: 9, arbitrary: fc.constant('route') }, { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH') }),
  params: fc.array(nastyString, { minLength: 3, maxLength: 3 }),
  query: fc.dictionary(fc.oneof(fc.constantFrom('cursor', 'limit', 'app', 'exp', 'sig', 'q'), nastyString), nastyString, { maxKeys: 3 }),
  who: fc.constantFrom('admin', 'salesman1', 'warehouse', 'none', 'garbage', 'expired'),
  body: fc.oneof(
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('example' as const), edit }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('json' as const), value: fc.jsonValue({ maxDepth: 4 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('bytes' as const), value: fc.uint8Array({ maxLength: 512 }) }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'none' as const }) },
  ),
  type: fc.constantFrom('application/json', 'application/json', 'text/plain', 'multipart/form-data', 'multipart/form-data; boundary=xyz', 'image/png', 'application/x-www-form-urlencoded', ''),
  encoding: fc.constantFrom('', '', '', 'gzip', 'deflate', 'br', 'gzip-broken', 'gzip-truncated', 'compress', 'gzip, gzip'),
});

type Generated = typeof request extends fc.Arbitrary<infer T> ? T : never;

function encode(bytes: Buffer, encoding: string): { body: Buffer; header?: string } {
  switch (encoding) {
    case 'gzip':
      return { body: gzipSync(bytes), header: 'gzip' };
    case 'deflate':
      return { body: deflateSync(bytes), header: 'deflate' };
    case 'br':
      return { body: brotliCompressSync(bytes), header: 'br' };
    case 'gzip-broken':
      return { body: bytes, header: 'gzip' };
    case 'gzip-truncated': {
      const z = gzipSync(bytes);
      return { body: z.subarray(0, Math.max(1, z.length - 8)), header: 'gzip' };
    }
    case '':
      return { body: bytes };
    default:
      return { body: bytes, header: encoding };
  }
}

/** A path segment; a lone surrogate (no UTF-8 for it) goes as the bytes of one, percent-encoded. */
function pathSegment(v: string): string {
  try {
    return encodeURIComponent(v);
  } catch {
    return encodeURIComponent(v.replace(/[\ud800-\udfff]/g, '')) + '%ED%A0%80';
  }
}

const written = () =>
  erp.one<{ n: string }>(
    `SELECT concat_ws('/', (SELECT count(*) FROM fieldsync.mutations), (SELECT count(*) FROM fieldsync.users), (SELECT count(*) FROM orders),
       (SELECT count(*) FROM fieldsync.images), (SELECT coalesce(sum(length(coalesce(address, '')) + length(coalesce(phone, ''))), 0) FROM clients)) AS n`,
  );

async function send(g: Generated): Promise<{ status: number; problem?: Record<string, unknown>; contentType: string; what: string }> {
  const r = s.routes[g.route % s.routes.length]!;
  let i = 0;
  const path = r.path.replace(/:(\w+)/g, () => pathSegment(g.params[i++ % g.params.length]!));
  const qs = new URLSearchParams(g.query as Record<string, string>).toString();
  const method = g.method === 'route' ? r.method : g.method;
  const headers: Record<string, string> = {};
  if (g.who === 'garbage') headers.authorization = 'Bearer not.a.token';
  else if (g.who === 'expired') headers.authorization = `Bearer ${tokens.salesman1!.split('.').slice(0, 2).join('.')}.AAAA`;
  else if (g.who !== 'none') headers.authorization = `Bearer ${tokens[g.who]}`;
  let raw: Buffer | undefined;
  if (g.body.kind === 'example') raw = Buffer.from(JSON.stringify(bend((examples[`${r.method} ${r.path}`] ?? (() => ({})))(), g.body.edit)) ?? '');
  else if (g.body.kind === 'json') raw = Buffer.from(JSON.stringify(g.body.value) ?? 'null');
  else if (g.body.kind === 'bytes') raw = Buffer.from(g.body.value);
  let body: Buffer | undefined;
  if (raw !== undefined && method !== 'GET') {
    const e = encode(raw, g.encoding);
    body = e.body;
    if (e.header) headers['content-encoding'] = e.header;
    if (g.type) headers['content-type'] = g.type;
  }
  const what = `${method} ${path}${qs ? `?${qs}` : ''} as ${g.who}, ${headers['content-type'] ?? 'no type'}, ${headers['content-encoding'] ?? 'identity'}, body ${raw?.toString('utf8').slice(0, 300) ?? 'none'}`;
  const res = await fetch(`${s.url}${path}${qs ? `?${qs}` : ''}`, { method, headers, body, signal: AbortSignal.timeout(15_000) });
  const contentType = res.headers.get('content-type') ?? '';
  const text = await res.text();
  return { status: res.status, contentType, what, ...(contentType.includes('problem+json') && { problem: JSON.parse(text) as Record<string, unknown> }) };
}

test.serial('generated requests on every route: no 5xx, problem+json with a catalogued code, nothing written when refused', async (t) => {
  const runs = Number(process.env.FUZZ_RUNS ?? 300);
  const seed = process.env.FUZZ_SEED === undefined ? Date.now() % 2 ** 31 : Number(process.env.FUZZ_SEED);
  t.log(`fuzz seed ${seed} (replay with FUZZ_SEED=${seed}), ${runs} requests over ${s.routes.length} routes`);
  const statuses = new Map<number, number>();
  const out = await fc.check(
    fc.asyncProperty(request, async (g) => {
      const before = await written();
      const a = await send(g);
      statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
      if (a.status >= 500) throw new Error(`${a.status} ${JSON.stringify(a.problem)} for ${a.what}`);
      if (a.status >= 400) {
        if (!a.problem) throw new Error(`${a.status} without problem+json (${a.contentType}) for ${a.what}`);
        if (typeof a.problem.code !== 'string' || !Object.hasOwn(errorCatalogue, a.problem.code)) throw new Error(`code ${String(a.problem.code)} not in the catalogue for ${a.what}`);
        const after = await written();
        if (after.n !== before.n) throw new Error(`refused (${a.status} ${String(a.problem.code)}) but wrote ${before.n} -> ${after.n}: ${a.what}`);
      }
    }),
    { seed, numRuns: runs, endOnFailure: true },
  );
  if (out.failed) {
    t.fail(`seed ${seed} (FUZZ_SEED=${seed}), after ${out.numRuns} requests: ${(out.errorInstance as Error | undefined)?.message ?? String(out.errorInstance)}`.slice(0, 3000));
    return;
  }
  t.log(`statuses: ${[...statuses].sort().map(([k, v]) => `${k}×${v}`).join(', ')}`);
  const health = await s.fetch('/ready');
  t.is(health.status, 200, 'the server is healthy afterwards');
  const login = await s.post('/v1/auth/login', { email: 'admin@fixture.test', password: FIXTURE_PASSWORD });
  t.is(login.status, 200, 'and answers a normal request');
});
