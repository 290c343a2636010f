import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/observability/logger.js';
import { startServer } from '../../src/server.js';

/**
 * `npm start` with nothing configured: PGlite under DATA_DIR boots from nothing, creates
 * the demo ERP schema, installs fieldsync, seeds demo data, answers a login; a restart
 * keeps data, key and tokens.
 */
test('the embedded mode boots from nothing, installs, seeds, answers a login, and restarts', async (t) => {
  t.timeout(180_000);
  const dataDir = await mkdtemp(join(tmpdir(), 'fieldsync-embedded-'));
  const env = { DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', DEMO_SCALE: '0.05' };
  const log = createLogger('silent');
  try {
    const first = await startServer(loadConfig(env), log);
    let token: string;
    try {
      t.true(first.embedded);
      t.is(first.model.schema, 'fieldsync');
      const res = await fetch(`${first.url}/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'salesman1@demo.test', password: 'demo1234' }),
      });
      t.is(res.status, 200);
      const body = (await res.json()) as { token: string; user: { role: string; claims: { salesmanId?: number } } };
      t.is(body.user.role, 'salesman');
      t.deepEqual(Object.keys(body.user.claims), ['salesmanId']);
      t.true(Number.isSafeInteger(body.user.claims.salesmanId) && body.user.claims.salesmanId! > 0);
      token = body.token;
      const { n } = await first.db.one<{ n: number }>('SELECT count(*)::int AS n FROM public.products');
      t.true(n > 0, 'demo products seeded');
      const ready = await fetch(`${first.url}/ready`);
      t.is(ready.status, 200, 'PostgreSQL and the embedded S3 answer');
      // images are fieldsync's (its images table), not columns of the ERP's products
      const img = await first.db.one<{ n: number; key: string }>(`SELECT count(*)::int AS n, min(key) AS key FROM fieldsync.images WHERE coll = 'products'`);
      t.true(img.n > 0, 'demo images attached');
      t.regex(img.key, /^products\/\d+\//, 'storage keys as before: products/<id>/...');
      const thumb = await fetch(`${first.url}/v1/media/${img.key}/thumb.webp`);
      t.is(thumb.status, 200);
      t.is(thumb.headers.get('content-type'), 'image/webp');

      // No LISTEN/NOTIFY (nor any across PGlite's connections): an ERP write is captured by
      // the triggers, indexed at the doorbell's next poll and seen by the heads.
      const before = first.heads.collectionHead('products');
      await first.db.none(`UPDATE public.products SET name = name || ' (new)' WHERE id = (SELECT min(id) FROM public.products)`);
      const deadline = Date.now() + 10_000;
      while (first.heads.collectionHead('products') <= before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      t.true(first.heads.collectionHead('products') > before, 'the write reached the heads without a LISTEN');
    } finally {
      await first.stop();
    }
    t.true((await readFile(join(dataDir, 'jwt-secret'), 'utf8')).length >= 32, 'generated key kept beside the data');

    const second = await startServer(loadConfig(env), log);
    try {
      const me = await fetch(`${second.url}/v1/auth/me`, { headers: { authorization: `Bearer ${token}` } });
      t.is(me.status, 200, 'a token from before the restart is still valid');
      const { n } = await second.db.one<{ n: number }>(`SELECT count(*)::int AS n FROM fieldsync.users WHERE email = 'admin@demo.test'`);
      t.is(n, 1, 'not seeded twice');
      t.like(await me.json(), { user: { role: 'salesman' } });
    } finally {
      await second.stop();
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
