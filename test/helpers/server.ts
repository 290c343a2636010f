import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from '../../src/config.js';
import { createLogger, type Logger } from '../../src/observability/logger.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { assertConformant, watchAnswers } from './conformance.js';
import { createTestDatabase, type ErpFixture, type TestDatabase } from './db.js';

export const TEST_SECRET = 'test-secret-that-is-long-enough-for-hs256!';

export interface TestServer extends RunningServer {
  tdb: TestDatabase;
  config: Config;
  /** fetch relative to the server */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  /** POST a JSON body */
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<Response>;
  /**
   * Makes everything committed so far visible to pull: indexed, and the heads' watermark
   * past that batch.
   */
  settle(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The whole app on a fresh database (the demo ERP, or `erp`, with fieldsync installed)
 * and a random port. `env` overrides the defaults below (no demo seed, silent logs; `log`
 * replaces the logger, for tests that read what the server logs);
 * `close()` stops the app and drops the database.
 */
export async function startTestServer(env: Record<string, string> = {}, opts: { erp?: ErpFixture; log?: Logger } = {}): Promise<TestServer> {
  const tdb = await createTestDatabase(opts.erp ? { erp: opts.erp } : {});
  const dataDir = await mkdtemp(join(tmpdir(), 'fieldsync-test-')); // the embedded S3's files
  const config = loadConfig({
    DATABASE_URL: tdb.url,
    JWT_SECRET: TEST_SECRET,
    HOST: '127.0.0.1',
    PORT: '0',
    SEED_DEMO: '0',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    DB_POOL_MAX: '5',
    DATA_DIR: dataDir,
    ...(opts.erp && { SYNC_CONFIG: opts.erp.configPath }),
    ...env,
  });
  const server = await startServer(config, opts.log ?? createLogger(config.log.level, config.log.format));
  // every answer this server sends is checked against its OpenAPI document
  const watch = watchAnswers(server.http, server.openapi);
  const fetchApp = (path: string, init?: RequestInit) => fetch(server.url + path, init);
  // stopping also removes the temporary folder (tests that stop the app themselves, then
  // read the database, must not leave it behind); once
  let stopped: Promise<void> | undefined;
  const stop = () => (stopped ??= server.stop().then(() => rm(dataDir, { recursive: true, force: true })));
  return {
    ...server,
    stop,
    tdb,
    config,
    fetch: fetchApp,
    post: (path, body, headers = {}) =>
      fetchApp(path, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      }),
    async settle() {
      // what the server does at its next poll, at once: index the outbox, then see the batch
      const seq = await server.indexer.flush();
      await server.heads.refresh();
      if (server.heads.watermark <= seq) throw new Error(`the heads are at ${server.heads.watermark}, not past batch ${seq}`);
    },
    async close() {
      await stop();
      await dropRedisNamespace(config, tdb.name);
      await tdb.drop();
      assertConformant(watch, `the test server on ${tdb.name}`);
    },
  };
}

/**
 * Everything the server kept in Redis under its database's namespace (snapshots, limits,
 * leases, the Socket.IO streams): test databases are dropped, and so is their Redis.
 */
async function dropRedisNamespace(config: Config, databaseName: string): Promise<void> {
  if (!config.redisUrl) return;
  const { Redis } = await import('ioredis');
  const redis = new Redis(config.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  redis.on('error', () => undefined); // said by the failing connect below
  try {
    await redis.connect();
    const keys: string[] = [];
    for await (const batch of redis.scanStream({ match: `${config.redisKeyPrefix}:${databaseName}:*`, count: 1000 })) keys.push(...(batch as string[]));
    if (keys.length > 0) await redis.del(keys);
  } catch {
    // Redis down (a test of exactly that): nothing was kept there
  } finally {
    redis.disconnect();
  }
}

/**
 * Another app instance on a test server's database (several processes behind a load
 * balancer, in one test process). Stop it before the first server closes.
 */
export async function startSecondInstance(first: TestServer, env: Record<string, string> = {}): Promise<RunningServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'fieldsync-test-second-'));
  const config = loadConfig({
    DATABASE_URL: first.tdb.url,
    JWT_SECRET: TEST_SECRET,
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'silent',
    DATA_DIR: dataDir,
    ...(first.config.syncConfig !== undefined && { SYNC_CONFIG: first.config.syncConfig }),
    ...env,
  });
  const server = await startServer(config, createLogger('silent'));
  const watch = watchAnswers(server.http, server.openapi);
  return {
    ...server,
    async stop() {
      await server.stop();
      await rm(dataDir, { recursive: true, force: true });
      assertConformant(watch, 'a second instance');
    },
  };
}
