/**
 * Bootstrap benchmark: `npm run bench:bootstrap [-- --devices 1000 --naive 50]`.
 * Needs DATABASE_URL (a database seeded at scale 10) and JWT_SECRET; REDIS_URL for the
 * Redis store (else snapshots live in memory).
 *
 *  - N devices (distinct salesmen) bootstrap the catalog at once: one pull, then the
 *    catalog's snapshot pages, all gzip as dart:io asks: total time, PostgreSQL queries
 *    issued, bytes per device;
 *  - the naive approach measured in the same run: offset-paginated JSON objects straight
 *    from PostgreSQL (1,000 rows a page) for fewer devices; compared as devices per second;
 *  - one full salesman bootstrap through pull and snapshots: rows, bytes, time.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import compress from 'koa-compress';
import Koa from 'koa';
import { loadConfig } from '../src/config.js';
import { queriesSent } from '../src/db/pg.js';
import { createLogger } from '../src/observability/logger.js';
import { startServer } from '../src/server.js';
import { postGzip } from './wire.js';

const { values } = parseArgs({ options: { devices: { type: 'string', default: '1000' }, naive: { type: 'string', default: '50' }, concurrency: { type: 'string', default: '100' } } });
const config = loadConfig({ ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn' });
if (!config.databaseUrl) throw new Error('set DATABASE_URL to a database seeded at scale 10');
const server = await startServer(config, createLogger('warn'));
const { request } = await import('node:http');

/** GET with gzip, counting bytes on the wire. */
const getGzip = (url: string) =>
  new Promise<number>((resolve, reject) => {
    const req = request(url, { headers: { 'accept-encoding': 'gzip' } }, (res) => {
      let n = 0;
      res.on('data', (c: Buffer) => (n += c.length));
      res.on('end', () => (res.statusCode === 200 ? resolve(n) : reject(new Error(`${url}: ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end();
  });

async function pool<T>(n: number, limit: number, run: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, n) }, async () => { while (next < n) { const i = next++; out[i] = await run(i); } }));
  return out;
}

try {
  const salesmen = await server.db.map('SELECT id FROM salesmen ORDER BY id LIMIT $1', [Number(values.devices)], (r: { id: number }) => r.id);
  const users = await server.db.any<{ id: number; salesman_id: number }>(
    `SELECT id, (claims->>'salesmanId')::int AS salesman_id FROM $1:name.users WHERE role = 'salesman' ORDER BY 2`,
    [server.model.schema],
  );
  const tokens = await Promise.all(
    users.filter((u) => salesmen.includes(u.salesman_id)).map(async (u) => (await server.tokens.issue({ userId: String(u.id), role: 'salesman', claims: { salesmanId: u.salesman_id } })).token),
  );
  // warm the snapshot once (as the server does at start)
  await postGzip(`${server.url}/v1/sync/pull`, { limit: 1 }, { authorization: `Bearer ${tokens[0]}` });

  const q0 = queriesSent(server.db);
  const t0 = performance.now();
  const bytes = await pool(tokens.length, Number(values.concurrency), async (i) => {
    const first = await postGzip(`${server.url}/v1/sync/pull`, { limit: 1 }, { authorization: `Bearer ${tokens[i]}` });
    const snap = (first.json.snapshots as { bucket: string; pages: string[] }[]).find((x) => x.bucket === 'catalog');
    if (!snap) throw new Error('no catalog snapshot offered');
    let n = first.wireBytes;
    for (const page of snap.pages) n += await getGzip(`${server.url}${page}`);
    return n;
  });
  const snapMs = performance.now() - t0;
  const snapQueries = queriesSent(server.db) - q0;

  // the naive baseline, same process, same database
  const naive = new Koa();
  naive.use(compress({ threshold: 1024 }));
  naive.use(async (ctx) => {
    const offset = Number(ctx.query.offset ?? 0);
    ctx.body = await server.db.any('SELECT * FROM products ORDER BY id OFFSET $1 LIMIT 1000', [offset]);
  });
  const naiveServer = createServer(naive.callback());
  await new Promise<void>((r) => naiveServer.listen(0, '127.0.0.1', r));
  const naiveUrl = `http://127.0.0.1:${(naiveServer.address() as AddressInfo).port}/`;
  const { n: products } = await server.db.one<{ n: number }>('SELECT count(*)::int AS n FROM products');
  const q1 = queriesSent(server.db);
  const t1 = performance.now();
  const naiveBytes = await pool(Number(values.naive), Number(values.concurrency), async () => {
    let n = 0;
    for (let off = 0; off < products; off += 1000) n += await getGzip(`${naiveUrl}?offset=${off}`);
    return n;
  });
  const naiveMs = performance.now() - t1;
  const naiveQueries = queriesSent(server.db) - q1;
  naiveServer.close();

  const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const snapRate = tokens.length / (snapMs / 1000);
  const naiveRate = Number(values.naive) / (naiveMs / 1000);
  console.log(`\nCatalog bootstrap, scale 10 (${products} products), ${values.concurrency} requests in flight:`);
  console.log('| approach | devices | total s | devices/s | PostgreSQL queries | bytes per device |\n|---|---:|---:|---:|---:|---:|');
  console.log(`| pull + snapshot pages (${config.redisUrl ? 'Redis' : 'memory'}) | ${tokens.length} | ${(snapMs / 1000).toFixed(1)} | ${snapRate.toFixed(0)} | ${snapQueries} | ${avg(bytes).toFixed(0)} |`);
  console.log(`| naive: offset-paginated JSON from PostgreSQL | ${values.naive} | ${(naiveMs / 1000).toFixed(1)} | ${naiveRate.toFixed(1)} | ${naiveQueries} | ${avg(naiveBytes).toFixed(0)} |`);
  console.log(`throughput: ${(snapRate / naiveRate).toFixed(0)}x the naive approach`);

  // one full salesman bootstrap: pulls and snapshot pages, bytes on the wire (gzip)
  let cursor: string | undefined;
  let wire = 0;
  let rows = 0;
  let pages = 0;
  const t2 = performance.now();
  for (;;) {
    const res = await postGzip(`${server.url}/v1/sync/pull`, { ...(cursor && { cursor }), limit: 5000 }, { authorization: `Bearer ${tokens[0]}` });
    wire += res.wireBytes;
    for (const snap of res.json.snapshots as { rows: number; pages: string[] }[]) {
      rows += snap.rows;
      for (const page of snap.pages) {
        wire += await getGzip(`${server.url}${page}`);
        pages++;
      }
    }
    for (const section of Object.values(res.json.changes) as { rows: unknown[] }[]) rows += section.rows.length;
    cursor = res.json.cursor;
    if (!res.json.hasMore) break;
  }
  console.log(`\nfull salesman bootstrap (catalog, his pricelists, stock, clients, orders): ${rows} rows, ${pages} snapshot pages, ${wire} bytes on the wire, ${(performance.now() - t2).toFixed(0)} ms`);
} finally {
  await server.stop();
}
