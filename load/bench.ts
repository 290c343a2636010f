/**
 * Local benchmarks (autocannon): `npm run bench [-- --seconds 10 --connections 50 --scale 10]`.
 * Every figure is printed beside a reference measured in the same run: a bare Koa route
 * for request rates, a plain keyset read of the products for the bootstrap.
 *
 * Uses DATABASE_URL when set (the demo ERP schema is created, fieldsync installed and seeded at --scale),
 * else the embedded PGlite in a temporary folder.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/observability/logger.js';
import { startServer } from '../src/server.js';
import { bareKoa, measure, report } from './harness.js';
import { benchPush } from './push-bench.js';
import { postGzip } from './wire.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '50' },
    scale: { type: 'string', default: '10' },
  },
});
const opts = { seconds: Number(values.seconds), connections: Number(values.connections) };

const dataDir = await mkdtemp(join(tmpdir(), 'fieldsync-bench-'));
const config = loadConfig({
  ...process.env,
  DATA_DIR: dataDir,
  PORT: '0',
  HOST: '127.0.0.1',
  LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
  SEED_DEMO: '1',
  // the bootstrap figure below is paging through PostgreSQL; snapshot pages have their own
  // benchmark (npm run bench:bootstrap)
  SNAPSHOTS: 'false',
  DEMO_SCALE: values.scale,
});
console.log(`fieldsync bench: ${config.databaseUrl ? 'DATABASE_URL' : 'embedded PGlite'}, scale ${values.scale}, ${opts.connections} connections, ${opts.seconds} s each`);
const server = await startServer(config, createLogger(config.log.level));
const bare = await bareKoa();
try {
  const login = async (email: string) => {
    const res = await fetch(`${server.url}/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password: config.demo.password }),
    });
    return ((await res.json()) as { token: string }).token;
  };
  const token = await login('salesman1@demo.test');
  const auth = { authorization: `Bearer ${token}` };

  // 1. bootstrap through pull alone, as a phone would: gzip, limit 5000, until hasMore is false
  const { products } = await server.db.one<{ products: number }>('SELECT count(*) AS products FROM products');
  const floorStart = performance.now();
  let after = 0;
  for (;;) {
    const rows = await server.db.any<{ id: number }>('SELECT * FROM products WHERE id > $1 ORDER BY id LIMIT 5000', [after]);
    if (rows.length === 0) break;
    after = rows.at(-1)!.id;
  }
  const floorMs = performance.now() - floorStart;

  let cursor: string | undefined;
  let pages = 0;
  let wire = 0;
  let rows = 0;
  let catalog: { ms: number; bytes: number; rows: number; pages: number } | undefined;
  const started = performance.now();
  for (;;) {
    const res = await postGzip(`${server.url}/v1/sync/pull`, { ...(cursor && { cursor }), limit: 5000 }, auth);
    if (res.status !== 200) throw new Error(`pull answered ${res.status}`);
    pages++;
    wire += res.wireBytes;
    for (const section of Object.values(res.json.changes) as { rows: unknown[] }[]) rows += section.rows.length;
    cursor = res.json.cursor;
    // cursor format 2: [W, null, null] is a bucket caught up to watermark W
    const pos = JSON.parse(Buffer.from(cursor!.split('.')[0]!, 'base64url').toString()).b.catalog;
    if (!catalog && pos?.[1] === null) catalog = { ms: performance.now() - started, bytes: wire, rows, pages };
    if (!res.json.hasMore) break;
  }
  const totalMs = performance.now() - started;
  console.log(`\nBootstrap through pull (salesman1, gzip, limit 5000):`);
  console.log(`| what | rows | pages | bytes on the wire | ms |`);
  console.log(`|---|---:|---:|---:|---:|`);
  console.log(`| reference: keyset read of ${products} products, pg-promise, no serialization | ${products} | | | ${floorMs.toFixed(0)} |`);
  console.log(`| catalog bucket (up to the page that completes it) | ${catalog!.rows} | ${catalog!.pages} | ${catalog!.bytes} | ${catalog!.ms.toFixed(0)} |`);
  console.log(`| full salesman bootstrap (catalog, his pricelists, stock, clients, orders) | ${rows} | ${pages} | ${wire} | ${totalMs.toFixed(0)} |`);

  // 2. request rates against the bare Koa reference
  await server.db.none(`UPDATE stock SET qty = qty + 1 WHERE id IN (
      SELECT st.id FROM stock st JOIN salesmen s ON s.id = 1 AND st.warehouse_id = coalesce(s.warehouse_id, st.warehouse_id)
       ORDER BY st.id LIMIT 100)`);
  await server.indexer.flush(); // what the doorbell's next poll would do, at once
  await server.heads.refresh();
  const behind = JSON.stringify({ cursor, limit: 1000 }); // 100 changed rows behind, every time
  const check = await postGzip(`${server.url}/v1/sync/pull`, { cursor, limit: 1000 }, auth);
  const changed = Object.values(check.json.changes as Record<string, { rows: unknown[] }>).reduce((n, s) => n + s.rows.length, 0);
  const fresh = await postGzip(`${server.url}/v1/sync/pull`, { cursor: check.json.cursor }, auth);
  const noChange = JSON.stringify({ cursor: fresh.json.cursor });
  const post = { method: 'POST' as const, headers: { ...auth, 'content-type': 'application/json', 'accept-encoding': 'gzip' } };

  const reference = await measure('bare Koa hello (reference)', bare.url, opts);
  const results = [
    await measure('POST /v1/sync/pull, no change (fast path)', `${server.url}/v1/sync/pull`, { ...opts, ...post, body: noChange }),
    await measure('GET /v1/sync/pull?cursor=…, no change (fast path)', `${server.url}/v1/sync/pull?cursor=${encodeURIComponent(JSON.parse(noChange).cursor)}`, { ...opts, headers: { ...auth, 'accept-encoding': 'gzip' } }),
    await measure(`POST /v1/sync/pull, ${changed} changed rows`, `${server.url}/v1/sync/pull`, { ...opts, ...post, body: behind }),
    await measure('GET /v1/auth/me (JWT verified)', `${server.url}/v1/auth/me`, { ...opts, headers: auth }),
  ];
  const pushed = await benchPush(server, token, opts);
  report(reference, [...results, pushed.m]);
  console.log(
    `\noffline writes: ${pushed.mutationsPerSec} order mutations/s (5 lines each); ` +
      `${pushed.applied} applied, ${pushed.duplicates} answered duplicate, ${pushed.rejected} rejected`,
  );
} finally {
  bare.server.close();
  await server.stop();
  await rm(dataDir, { recursive: true, force: true });
}
