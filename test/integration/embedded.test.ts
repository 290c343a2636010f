import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/observability/logger.js';
import { startServer } from '../../src/server.js';

/**
 * `npm start` with nothing configured: PGlite under DATA_DIR boots from nothing,
 * migrates, seeds demo data, answers a login; a restart keeps data, key and tokens.
 */
test('the embedded mode boots from nothing, migrates, seeds, answers a login, and restarts', async (t) => {
  t.timeout(180_000);
  const dataDir = await mkdtemp(join(tmpdir(), 'fieldsync-embedded-'));
  const env = { DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', DEMO_SCALE: '0.05' };
  const log = createLogger('silent');
  try {
    const first = await startServer(loadConfig(env), log);
    let token: string;
    try {
      t.true(first.embedded);
      t.false(first.doorbell.isListening, 'NOTIFY does not cross PGlite connections: polling only');
      const res = await fetch(`${first.url}/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'salesman1@demo.test', password: 'demo1234' }),
      });
      t.is(res.status, 200);
      const body = (await res.json()) as { token: string; user: { role: string; salesmanId: number } };
      t.is(body.user.role, 'salesman');
      t.true(body.user.salesmanId > 0);
      token = body.token;
      const { n } = await first.db.one<{ n: number }>('SELECT count(*) AS n FROM products');
      t.true(n > 0, 'demo products seeded');
      const ready = await fetch(`${first.url}/ready`);
      t.is(ready.status, 200, 'PostgreSQL and the embedded S3 answer');
      const img = await first.db.one<{ n: number; key: string }>(`SELECT count(*) AS n, min(image_key) AS key FROM products WHERE image_key IS NOT NULL`);
      t.true(img.n > 0, 'demo images attached');
      const thumb = await fetch(`${first.url}/v1/media/${img.key}/thumb.webp`);
      t.is(thumb.status, 200);
      t.is(thumb.headers.get('content-type'), 'image/webp');
    } finally {
      await first.stop();
    }
    t.true((await readFile(join(dataDir, 'jwt-secret'), 'utf8')).length >= 32, 'generated key kept beside the data');

    const second = await startServer(loadConfig(env), log);
    try {
      const me = await fetch(`${second.url}/v1/auth/me`, { headers: { authorization: `Bearer ${token}` } });
      t.is(me.status, 200, 'a token from before the restart is still valid');
      const { n } = await second.db.one<{ n: number }>(`SELECT count(*) AS n FROM users WHERE email = 'admin@demo.test'`);
      t.is(n, 1, 'not seeded twice');
    } finally {
      await second.stop();
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
