/**
 * The README's and the OpenAPI document's examples are real answers: this module makes
 * each example request against a server seeded with the demo data (the data `npm start`
 * serves: DEMO_SEED 42, scale 1), keeps the answer with the values that change from run
 * to run (tokens, cursors, times, request ids) replaced by fixed ones, and writes:
 * - docs/examples.json (the document's examples), and
 * - the README's blocks between `<!-- example: <name> -->` and `<!-- /example -->` (the
 *   curl command and the answer).
 * `npm run docs:examples` rewrites both; test/integration/readme-examples.test.ts fails
 * when either differs from a fresh capture.
 */
import { readFile, writeFile } from 'node:fs/promises';
import sharp from 'sharp';
import { eventTable, type CapturedExample } from '../../src/http/openapi.js';
import { startTestServer, type TestServer } from './server.js';

export const README = new URL('../../README.md', import.meta.url);
export const EXAMPLES = new URL('../../docs/examples.json', import.meta.url);

/** Ids the push examples use: fixed, so the README shows the same every time (a device makes its own). */
const MUTATION_ID = '1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed';
const ORDER_ID = '6f1c2b8e-3d4a-4c5b-9e6f-7a8b9c0d1e2f';
const SECOND_MUTATION_ID = '8a4f0c2e-5b7d-4e1a-9c3b-2d6f8e0a1b4c';
const SECOND_ORDER_ID = '0b8e5d2a-9c4f-4a7b-8e1d-3f6c2a9b5e70';

interface Example extends CapturedExample {
  /** the concrete path asked (with query) */
  url: string;
  /** who asks: a shell variable holding the token */
  token?: string;
  /** shell lines before the curl command */
  prelude?: string[];
  /** values shown as shell variables in the command: value -> variable name */
  vars?: Record<string, string>;
  /** the curl command's body, when not JSON (`--data-binary @photo.jpg`) */
  dataArg?: string;
}

const FIXED: Record<string, unknown> = {
  token: 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIzIiwicm9sZSI6…',
  cursor: 'eyJmIjoyLCJlIjoxLCJ1IjoiMyIsImEiOiJzYWxlc21hbiIs….9Kx2v_Qd8mFh0aZ3nW1p7w',
  resetCursor: 'eyJmIjoyLCJlIjoxLCJ1IjoiMSIsImEiOiJtYW5hZ2VyIiwi….xQ7c1Yb0LrWm2pTz8vNd4g',
  requestId: '4f0d8a62-3b9e-4c1a-a7d5-2e6f9b1c8d30',
  expiresAt: 1795450264000,
  createdAt: '2026-11-23T08:00:00.000Z',
  // cluster-wide, read at the call: whatever else runs on the machine
  oldestWriteTransaction: null,
  outboxBacklog: 0,
};

/** Batch numbers and what follows from them (row versions, checksums, snapshot ids) differ between runs: fixed values here. */
const BATCH = '918273';
const VERSION = 918270;
const CHECKSUM = 1009155957;
const UPDATED = 1795400000000;

/** Replaces what differs between runs with fixed values (by key), and signed URLs' expiry and signature. */
export function normalize(answer: unknown): unknown {
  let text = JSON.stringify(answer);
  // snapshot ids, wherever they appear (offers and page URLs)
  const offers = (answer as { snapshots?: { id: string }[] } | null)?.snapshots ?? [];
  offers.forEach((o, i) => (text = text.replaceAll(o.id, `kV2Jx7qLm3Np8Rt${i.toString(36)}`)));
  return walk(JSON.parse(text) as unknown);
}

function walk(value: unknown, key?: string): unknown {
  if (key !== undefined && Object.hasOwn(FIXED, key) && value !== null && typeof value === typeof FIXED[key]) return FIXED[key];
  if (key !== undefined && ['watermark', 'position', 'visibleAfter', 'head'].includes(key) && typeof value === 'string') return BATCH;
  if (key === 'checksum' && typeof value === 'number') return CHECKSUM;
  if (key === 'checksums' && value && typeof value === 'object') return Object.fromEntries(Object.keys(value).map((b) => [b, CHECKSUM]));
  // a page's rows: the version (third column) and the time the seed wrote the row
  if (value && typeof value === 'object' && Array.isArray((value as { cols?: unknown }).cols) && Array.isArray((value as { rows?: unknown }).rows)) {
    const { cols, rows, ...rest } = value as { cols: string[]; rows: unknown[][] };
    const fixed = new Set([2, cols.indexOf('updated')]);
    return { cols, rows: rows.map((r) => r.map((c, i) => (!fixed.has(i) ? walk(c) : i === 2 ? VERSION : UPDATED))), ...(walk(rest) as object) };
  }
  if (typeof value === 'string') return value.replace(/exp=\d+&sig=[\w-]+/g, 'exp=1795391234&sig=p0Jx3mWq8sT1vY6z');
  if (Array.isArray(value)) return value.map((v) => walk(v));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v, k)]));
  return value;
}

const scalar = (v: unknown) => v === null || typeof v !== 'object';
const spaced = (json: string) => json.replace(/,"/g, ', "').replace(/":(?!\/)/g, '": ');

/**
 * JSON for people: a value on one line when it fits in `width`; an array of scalars (a
 * row) wrapped like text; objects and other arrays one member per line.
 */
export function formatJson(value: unknown, indent = '', width = 100): string {
  const flat = JSON.stringify(value);
  if (flat === undefined) return 'null';
  if (scalar(value) || spaced(flat).length + indent.length <= width) return spaced(flat);
  const inner = `${indent}  `;
  if (Array.isArray(value) && value.every(scalar)) {
    const lines: string[] = [];
    let line = '';
    for (const item of value.map((v) => JSON.stringify(v))) {
      if (line !== '' && inner.length + line.length + item.length + 2 > width) {
        lines.push(`${line},`);
        line = '';
      }
      line += (line === '' ? '' : ', ') + item;
    }
    lines.push(line);
    return `[${lines.join(`\n${inner} `).trimStart()}]`;
  }
  if (Array.isArray(value)) return `[\n${value.map((v) => inner + formatJson(v, inner, width)).join(',\n')}\n${indent}]`;
  return `{\n${Object.entries(value as object).map(([k, v]) => `${inner}${JSON.stringify(k)}: ${formatJson(v, inner, width)}`).join(',\n')}\n${indent}}`;
}

/** For the README: long lists shortened to their first two items and a count (the document keeps them whole). */
export function shorten(value: unknown): unknown {
  if (Array.isArray(value)) {
    const items = value.map(shorten);
    if (items.length > 3 && JSON.stringify(items).length > 300) return [...items.slice(0, 2), `… ${items.length - 2} more`];
    return items;
  }
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, shorten(v)]));
  return value;
}

function curl(e: Example): string {
  const lines = [...(e.prelude ?? [])];
  const parts = [`curl -s${e.method === 'GET' ? '' : ` -X ${e.method}`} '${e.url.startsWith('/') ? `localhost:3000${e.url}` : e.url}'`];
  if (e.method === 'POST' && e.request !== undefined) parts[0] = parts[0]!.replace(' -X POST', '');
  if (e.token) parts.push(`-H "authorization: Bearer $${e.token}"`);
  if (e.dataArg) parts.push(e.dataArg);
  if (e.request !== undefined) {
    parts.push(`-H 'content-type: application/json'`);
    let body = formatJson(e.request, '', 90);
    for (const [value, name] of Object.entries(e.vars ?? {})) body = body.replaceAll(value, `$${name}`);
    if (e.vars) {
      lines.push(`${parts.join(' ')} --data-binary @- <<EOF`, body, 'EOF');
      return lines.join('\n');
    }
    parts.push(`-d '${JSON.stringify(e.request)}'`);
  }
  lines.push(parts.join(' \\\n  '));
  return lines.join('\n');
}

/** The README block of an example: the command, then the answer. */
export function readmeBlock(e: CapturedExample): string {
  const answer = formatJson(shorten(e.answer));
  return ['```sh', curl(e as Example), '```', '```json', answer, '```'].join('\n');
}

/** Shell lines keeping a demo login's token in a variable. */
const loginLines = (variable: string, email: string) => [
  `${variable}=$(curl -s localhost:3000/v1/auth/login -H 'content-type: application/json' \\`,
  `  -d '{"email":"${email}","password":"demo1234"}' | sed 's/.*"token":"\\([^"]*\\)".*/\\1/')`,
];

async function json(res: Response): Promise<unknown> {
  return JSON.parse(await res.text());
}

export interface Capture {
  examples: Record<string, CapturedExample>;
  /** the push channel's event table (Markdown rows) for the demo config */
  events: string[];
}

/** Asks every example on a fresh demo server; answers normalized. */
export async function captureExamples(): Promise<Capture> {
  const s = await startTestServer({ SEED_DEMO: '1', DEMO_SCALE: '1', DEMO_SEED: '42' });
  try {
    return { examples: await run(s), events: eventTable(s.model.events) };
  } finally {
    await s.close();
  }
}

async function run(s: TestServer): Promise<Record<string, CapturedExample>> {
  const out: Record<string, Example> = {};
  const tokens: Record<string, string> = {};
  const ask = async (name: string, e: Omit<Example, 'answer' | 'status'> & { expect: number; headers?: Record<string, string>; raw?: Buffer }) => {
    const headers: Record<string, string> = { ...(e.headers ?? {}) };
    if (e.token) headers.authorization = `Bearer ${tokens[e.token]}`;
    if (e.request !== undefined) headers['content-type'] = 'application/json';
    const res = await s.fetch(e.url, { method: e.method, headers, body: e.raw ?? (e.request === undefined ? undefined : JSON.stringify(e.request)) });
    const answer = await json(res);
    if (res.status !== e.expect) throw new Error(`example ${name}: ${e.method} ${e.url} answered ${res.status}, not ${e.expect}: ${JSON.stringify(answer)}`);
    const { expect: _expect, headers: _headers, raw: _raw, ...rest } = e;
    out[name] = { ...rest, ...(rest.request !== undefined && { request: walk(rest.request) }), status: res.status, answer: normalize(answer) };
    return answer as Record<string, unknown>;
  };
  const login = async (name: string, email: string, variable: string) => {
    const body = await ask(name, { summary: `log in (${email})`, method: 'POST', url: '/v1/auth/login', route: '/v1/auth/login', request: { email, password: 'demo1234' }, expect: 200 });
    tokens[variable] = body.token as string;
  };

  await login('login', 'salesman1@demo.test', 'TOKEN');
  await ask('me', {
    summary: 'the caller, as its token says',
    method: 'GET',
    url: '/v1/auth/me',
    route: '/v1/auth/me',
    token: 'TOKEN',
    prelude: loginLines('TOKEN', 'salesman1@demo.test'),
    expect: 200,
  });
  await ask('login-failed', { summary: 'a wrong password', method: 'POST', url: '/v1/auth/login', route: '/v1/auth/login', request: { email: 'salesman1@demo.test', password: 'wrong' }, expect: 401 });
  await ask('validation-failed', { summary: 'a body that does not match the schema', method: 'POST', url: '/v1/auth/login', route: '/v1/auth/login', request: { email: 'not an e-mail', password: 'demo1234' }, expect: 400 });

  // pull: the first page, then the next from its cursor
  const first = await ask('pull-first', {
    summary: "a salesman's first pull (no cursor): the shared buckets come as snapshots",
    method: 'POST',
    url: '/v1/sync/pull',
    route: '/v1/sync/pull',
    token: 'TOKEN',
    request: { app: 'salesman', cursor: null, limit: 3 },
    expect: 200,
  });
  const cursor = first.cursor as string;
  // the checksums of caught-up buckets are computed in the background after a first ask:
  // ask until they are all there, so the recorded answer does not depend on timing
  // (the same set three times running, 150 ms apart)
  let known = -1;
  for (let i = 0, same = 0; i < 60 && same < 3; i++) {
    const warm = (await json(await s.post('/v1/sync/pull', { app: 'salesman', cursor, limit: 3 }, { authorization: `Bearer ${tokens.TOKEN}` }))) as { checksums: object };
    const n = Object.keys(warm.checksums).length;
    same = n === known ? same + 1 : 0;
    known = n;
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
  await ask('pull-next', {
    summary: 'the next page, from the cursor of the last answer',
    method: 'POST',
    url: '/v1/sync/pull',
    route: '/v1/sync/pull',
    token: 'TOKEN',
    request: { app: 'salesman', cursor, limit: 3 },
    vars: { [FIXED.cursor as string]: 'CURSOR' },
    expect: 200,
  });
  const offer = (first.snapshots as { pages: string[] }[])[0]!;
  const page = (await s.fetch(offer.pages[0]!)).status;
  if (page !== 200) throw new Error(`snapshot page answered ${page}`);

  // push: an order for one of salesman1's clients, products in stock in his warehouse
  const { client } = await s.db.one<{ client: number }>('SELECT min(id)::int AS client FROM clients WHERE salesman_id = 1 AND is_active');
  const products = await s.db.map<{ id: number }>(
    `SELECT p.id::int AS id FROM products p JOIN stock k ON k.product_id = p.id
      WHERE p.is_active AND k.warehouse_id = (SELECT coalesce(warehouse_id, 1) FROM salesmen WHERE id = 1) AND k.qty - k.reserved >= 10
      ORDER BY p.id LIMIT 2`,
    [],
    (r) => r,
  );
  const { other } = await s.db.one<{ other: number }>('SELECT min(id)::int AS other FROM clients WHERE salesman_id <> 1 AND is_active');
  const order = {
    deviceId: 'salesman1-tablet',
    mutations: [
      {
        id: MUTATION_ID,
        type: 'order.create',
        createdAt: 1795390000000,
        payload: { orderId: ORDER_ID, clientId: client, lines: [{ productId: products[0]!.id, qty: 3, price: '4.50' }, { productId: products[1]!.id, qty: 1, note: 'كرتون' }], requestedDelivery: '2026-12-01', notes: 'بعد العصر' },
      },
      { id: SECOND_MUTATION_ID, type: 'order.create', payload: { orderId: SECOND_ORDER_ID, clientId: other, lines: [{ productId: products[0]!.id, qty: 1 }] } },
    ],
  };
  const push = { method: 'POST', url: '/v1/sync/push', route: '/v1/sync/push', token: 'TOKEN', request: order, vars: { [MUTATION_ID]: 'MUTATION', [ORDER_ID]: 'ORDER', [SECOND_MUTATION_ID]: 'MUTATION2', [SECOND_ORDER_ID]: 'ORDER2' } };
  await ask('push', {
    summary: "two orders: one for the salesman's client (applied), one for another salesman's (rejected)",
    ...push,
    prelude: ['# a device makes each id once, when the salesman acts, and keeps it for every retry', 'MUTATION=$(node -p "crypto.randomUUID()") ORDER=$(node -p "crypto.randomUUID()")', 'MUTATION2=$(node -p "crypto.randomUUID()") ORDER2=$(node -p "crypto.randomUUID()")'],
    expect: 200,
  });
  await ask('push-again', { summary: 'the same mutations again (a retry after a lost answer): duplicates, applied once', ...push, prelude: ['# the same command again, same ids'], expect: 200 });

  // the 410 of pruned deletes: a device that was away longer than TOMBSTONE_RETENTION_DAYS
  await login('login-admin', 'admin@demo.test', 'ADMIN');
  let admin: Record<string, unknown> = { cursor: undefined, hasMore: true };
  while (admin.hasMore) admin = (await json(await s.post('/v1/sync/pull', { app: 'manager', cursor: admin.cursor, limit: 5000 }, { authorization: `Bearer ${tokens.ADMIN}` }))) as Record<string, unknown>;
  await s.db.none('DELETE FROM stock WHERE id = (SELECT min(id) FROM stock WHERE warehouse_id = 2)');
  await s.settle();
  await s.db.none(`UPDATE fieldsync.items SET deleted_at = now() - interval '31 days' WHERE bucket = 'stock:2' AND deleted`);
  const { pruneTombstones } = await import('../../src/sync/prune.js');
  await pruneTombstones(s.db, s.model, 30);
  await ask('cursor-expired', {
    summary: 'a cursor older than the deletes kept (TOMBSTONE_RETENTION_DAYS): drop the named buckets, continue with resetCursor',
    method: 'POST',
    url: '/v1/sync/pull',
    route: '/v1/sync/pull',
    token: 'ADMIN',
    request: { app: 'manager', cursor: admin.cursor },
    vars: { [FIXED.cursor as string]: 'CURSOR' },
    expect: 410,
  });

  await ask('users-list', {
    summary: 'the first two logins',
    method: 'GET',
    url: '/v1/admin/users?limit=2&after=0',
    route: '/v1/admin/users',
    token: 'ADMIN',
    prelude: loginLines('ADMIN', 'admin@demo.test'),
    expect: 200,
  });
  await ask('users-create', {
    summary: 'a new salesman login',
    method: 'POST',
    url: '/v1/admin/users',
    route: '/v1/admin/users',
    token: 'ADMIN',
    request: { email: 'new.salesman@example.com', password: 'at least 8', role: 'salesman', displayName: 'Faisal', claims: { salesmanId: 12 } },
    expect: 201,
  });

  // an image: deterministic bytes, so the hashes in the answer stay the same
  const photo = await sharp({ create: { width: 1200, height: 900, channels: 3, background: { r: 200, g: 120, b: 40 } } }).jpeg({ quality: 80 }).toBuffer();
  await ask('image-upload', {
    summary: "a product's photo (raw bytes)",
    method: 'PUT',
    url: '/v1/admin/products/42/image',
    route: '/v1/admin/products/:id/image',
    token: 'ADMIN',
    dataArg: '--data-binary @photo.jpg',
    raw: photo,
    expect: 201,
  });
  await ask('manifest', { summary: 'images to prefetch, one per page', method: 'GET', url: '/v1/media/manifest?limit=1', route: '/v1/media/manifest', token: 'TOKEN', expect: 200 });
  await ask('ready', { summary: 'ready', method: 'GET', url: '/ready', route: '/ready', expect: 200 });
  return out;
}

export const DART = new URL('../../examples/flutter/lib/fieldsync.dart', import.meta.url);

/** A region of the Dart example (`// #docregion <name>` … `// #enddocregion <name>`). */
export function dartRegion(source: string, name: string): string {
  const m = new RegExp(`// #docregion ${name}\\n([\\s\\S]*?)\\n\\s*// #enddocregion ${name}\\n`).exec(source);
  if (!m) throw new Error(`examples/flutter/lib/fieldsync.dart has no region ${name}`);
  const lines = m[1]!.split('\n');
  const indent = Math.min(...lines.filter((l) => l.trim() !== '').map((l) => /^ */.exec(l)![0].length));
  return lines.map((l) => l.slice(indent)).join('\n');
}

/**
 * The README with every generated block replaced: `<!-- example: <name> -->` (the curl
 * command and the answer), `<!-- dart: <region> -->` (a region of the Dart example),
 * `<!-- events -->` (the push channel's event table). An unknown name is an error.
 */
export function renderReadme(readme: string, capture: Capture, dart: string): string {
  return readme
    .replace(/(<!-- example: ([\w-]+) -->\n)[\s\S]*?(<!-- \/example -->)/g, (_all, open: string, name: string, close: string) => {
      const e = capture.examples[name];
      if (!e) throw new Error(`README names example ${name}, which is not captured`);
      return `${open}${readmeBlock(e)}\n${close}`;
    })
    .replace(/(<!-- dart: ([\w-]+) -->\n)[\s\S]*?(<!-- \/dart -->)/g, (_all, open: string, name: string, close: string) => `${open}\`\`\`dart\n${dartRegion(dart, name)}\n\`\`\`\n${close}`)
    .replace(/(<!-- events -->\n)[\s\S]*?(<!-- \/events -->)/g, (_all, open: string, close: string) => `${open}${capture.events.join('\n')}\n${close}`);
}

/** `npm run docs:examples`: capture, then write docs/examples.json and the README's blocks. */
if (import.meta.url === `file://${process.argv[1]}`) {
  const capture = await captureExamples();
  await writeFile(EXAMPLES, `${JSON.stringify(capture.examples, null, 2)}\n`);
  await writeFile(README, renderReadme(await readFile(README, 'utf8'), capture, await readFile(DART, 'utf8')));
  console.log(`wrote ${Object.keys(capture.examples).length} examples to docs/examples.json and the README`);
}
