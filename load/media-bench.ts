/**
 * Image pipeline benchmark: `npm run bench:media [-- --uploads 10]`.
 *  1. a 12-megapixel JPEG (4000x3000, photo-like detail) uploaded to all variants stored
 *     on S3: p50 / p95 over N uploads (each slightly different, so none is a no-op);
 *  2. sync-side requests alone, then while 12-megapixel uploads run back to back:
 *     requests/s and p99 side by side.
 * Uses DATABASE_URL when set, else the embedded PGlite; S3 is S3_ENDPOINT, else an s3rver
 * started in a child process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/observability/logger.js';
import { startServer } from '../src/server.js';
import { measure } from './harness.js';
import type { PullAnswerBody } from '../src/protocol/sync.js';
import { pct } from './stats.js';

const { values } = parseArgs({ options: { uploads: { type: 'string', default: '10' }, seconds: { type: 'string', default: '8' } } });
const n = Number(values.uploads);
const dataDir = await mkdtemp(join(tmpdir(), 'fieldsync-media-bench-'));
await mkdir(join(dataDir, 's3'), { recursive: true });
// S3 in a process of its own, as MinIO or S3 would be: an in-process s3rver would hash and
// write every object on the server's own event loop and distort the sync figures
let s3child: ChildProcess | undefined;
if (!process.env.S3_ENDPOINT) {
  s3child = spawn(process.execPath, ['--import', 'tsx', '-e', `
    import S3rver from 's3rver';
    const s = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: ${JSON.stringify(join(dataDir, 's3'))}, configureBuckets: [{ name: 'bench', configs: [] }] });
    const { port } = await s.run();
    console.log(port);`], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<string>((resolve) => s3child!.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim())));
  Object.assign(process.env, { S3_ENDPOINT: `http://127.0.0.1:${port}`, S3_BUCKET: 'bench', S3_ACCESS_KEY_ID: 'S3RVER', S3_SECRET_ACCESS_KEY: 'S3RVER' });
}
const config = loadConfig({ ...process.env, DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', DEMO_SCALE: process.env.DEMO_SCALE ?? '0.1', SEED_DEMO: '1' });
const server = await startServer(config, createLogger('warn'));

/** 4000x3000 with gradients and fine texture: compresses like a photograph, not like a flat colour. */
async function photo(seed: number): Promise<Buffer> {
  const w = 4000;
  const h = 3000;
  const raw = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      const t = ((x * 7 + y * 13 + seed) * 2654435761) >>> 27; // fine texture
      raw[i] = (x / w) * 200 + t;
      raw[i + 1] = (y / h) * 200 + t;
      raw[i + 2] = 120 + ((x + y) % 64) + t;
    }
  }
  return sharp(raw, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 88 }).toBuffer();
}

try {
  const login = async (email: string) =>
    ((await (await fetch(`${server.url}/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password: config.demo.password }) })).json()) as { token: string }).token;
  const admin = await login('admin@demo.test');
  const images = await Promise.all(Array.from({ length: n }, (_, i) => photo(i)));
  console.log(`\n${n} uploads of a ${(images[0]!.length / 2 ** 20).toFixed(1)} MB 12-megapixel JPEG (4000x3000), IMAGE_CONCURRENCY=${config.media.concurrency}`);
  const upload = async (i: number) => {
    const t0 = performance.now();
    const res = await fetch(`${server.url}/v1/admin/products/${(i % 50) + 1}/image`, { method: 'PUT', headers: { authorization: `Bearer ${admin}` }, body: images[i % n]! });
    if (res.status !== 201 && res.status !== 200) throw new Error(`upload answered ${res.status}: ${await res.text()}`);
    return performance.now() - t0;
  };
  const times: number[] = [];
  for (let i = 0; i < n; i++) times.push(await upload(i));
  console.log(`| upload -> all variants stored | p50 ${pct(times, 50).toFixed(0)} ms | p95 ${pct(times, 95).toFixed(0)} ms |`);

  // sync alongside uploads
  const token = await login('salesman1@demo.test');
  let cursor: string | undefined;
  for (;;) {
    const r = (await (await fetch(`${server.url}/v1/sync/pull`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ cursor, limit: 5000 }) })).json()) as PullAnswerBody;
    cursor = r.cursor;
    if (!r.hasMore) break;
  }
  // A no-change pull stops being one while uploads change products (its catalog moves),
  // so compare requests whose work does not depend on the uploads: the authenticated
  // edge, and a pull held 100 stock rows behind (the slow path, with PostgreSQL).
  await server.db.none(`UPDATE stock SET qty = qty + 1 WHERE id IN (
      SELECT st.id FROM stock st JOIN salesmen s ON s.id = 1 AND st.warehouse_id = coalesce(s.warehouse_id, st.warehouse_id)
       ORDER BY st.id LIMIT 100)`);
  await server.indexer.flush(); // what the doorbell's next poll would do, at once
  await server.heads.refresh();
  const auth = { authorization: `Bearer ${token}` };
  const scenarios = [
    { name: 'GET /v1/auth/me', url: `${server.url}/v1/auth/me`, extra: {} },
    {
      name: 'POST /v1/sync/pull, 100 stock rows behind',
      url: `${server.url}/v1/sync/pull`,
      extra: { method: 'POST' as const, body: JSON.stringify({ cursor, limit: 1000 }), headers: { ...auth, 'content-type': 'application/json' } },
    },
  ];
  const rows: string[] = [];
  for (const sc of scenarios) {
    const opts = { seconds: Number(values.seconds), connections: 10, headers: auth, ...sc.extra };
    const alone = await measure(sc.name, sc.url, opts);
    let running = true;
    let done = 0;
    const uploader = (async () => {
      for (let i = 0; running; i++) {
        await upload(n + i);
        done++;
      }
    })();
    const during = await measure(sc.name, sc.url, opts);
    running = false;
    await uploader;
    rows.push(`| ${sc.name} | ${alone.requestsPerSec} | ${alone.p99} | ${during.requestsPerSec} | ${during.p99} | ${done} |`);
  }
  console.log('\n| request | alone req/s | alone p99 ms | with uploads req/s | with uploads p99 ms | uploads done meanwhile |\n|---|---:|---:|---:|---:|---:|');
  for (const r of rows) console.log(r);
} finally {
  await server.stop();
  s3child?.kill();
  await rm(dataDir, { recursive: true, force: true });
}
