import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { LoginService } from './auth/login.js';
import { UsersRepo } from './db/repos/users.js';
import { Tokens } from './auth/tokens.js';
import { assertServable, ConfigError, type Config } from './config.js';
import { Doorbell } from './db/doorbell.js';
import { startEmbeddedPostgres } from './db/embedded.js';
import { assertEmbeddedInstalled } from './lib/embedded-packages.js';
import { applyDemoSchema, install, installedHash } from './install/apply.js';
import { DriftMonitor } from './install/drift.js';
import { planInstall } from './install/plan.js';
import { loadConfigFile, loadModel } from './model/load.js';
import type { Model } from './model/model.js';
import { allQueriesSent, createDb, type Db } from './db/pg.js';
import { createApp } from './http/app.js';
import { fastPull, rawFastPull } from './http/fast-pull.js';
import { adminUserRoutes } from './http/routes/admin-users.js';
import { authRoutes } from './http/routes/auth.js';
import { pushRoutes } from './http/routes/push.js';
import { syncRoutes } from './http/routes/sync.js';
import { systemRoutes } from './http/routes/system.js';
import { Redis } from 'ioredis';
import { mediaRoutes } from './http/routes/media.js';
import { docsRoutes } from './http/routes/docs.js';
import { openApiDocument, readExamples } from './http/openapi.js';
import type { ImageChange, MediaService } from './images/service.js';
import { createMediaStack } from './images/stack.js';
import { Lifecycle } from './lifecycle.js';
import { listenUrls } from './lib/listen-urls.js';
import type { Keyring } from './lib/keyring.js';
import { within } from './lib/within.js';
import { createChannel, type Io } from './realtime/channel.js';
import { Notifier } from './realtime/notifier.js';
import type { Logger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import { CursorCodec } from './protocol/cursor.js';
import { BucketSets } from './sync/bucket-set.js';
import { ChecksumCache } from './sync/checksum-cache.js';
import type { Route } from './http/route.js';
import { Heads } from './sync/heads.js';
import { readLag } from './observability/lag.js';
import { Indexer } from './sync/indexer.js';
import { schedulePrune } from './sync/prune.js';
import { PullService } from './sync/pull.js';
import { SnapshotService } from './cache/snapshots.js';
import { MemorySnapshotStore, RedisSnapshotStore } from './cache/store.js';
import { limiters } from './cache/limiter.js';
import { AuditLog } from './push/audit.js';
import { PushService } from './push/service.js';

/** Indexer pools created in this process (their application_name tells them apart). */
let indexerPools = 0;

export interface RunningServer {
  /** http://host:port */
  url: string;
  /** the address and port the HTTP server is bound to (main.ts prints where it listens) */
  bound: AddressInfo;
  db: Db;
  doorbell: Doorbell;
  indexer: Indexer;
  heads: Heads;
  metrics: Metrics;
  io: Io;
  media: MediaService;
  snapshots: SnapshotService | undefined;
  tokens: Tokens;
  model: Model;
  drift: DriftMonitor;
  /** true when running on the embedded PGlite database */
  embedded: boolean;
  /** the HTTP routes served (the route table: tests drive a fuzzer from it) */
  routes: readonly Route[];
  /** the OpenAPI document of those routes (GET /openapi.json) */
  openapi: () => Record<string, unknown>;
  /** the HTTP server (tests observe every answer on it) */
  http: HttpServer;
  stop(): Promise<void>;
}

/** A data directory of an older fieldsync (its tables in public) cannot be adopted: say so plainly. */
async function refuseOldEmbedded(db: Db, dataDir: string): Promise<void> {
  const old = await db.one<{ t: string | null }>(`SELECT to_regclass('public.sync_tombstones')::text AS t`);
  if (old.t !== null) {
    throw new ConfigError([`DATA_DIR ${dataDir} holds demo data of an older fieldsync version: stop the server, delete that folder and start again`]);
  }
}

/** Embedded mode keeps its generated JWT key beside the data, so tokens survive restarts. */
async function embeddedSecret(dataDir: string): Promise<string> {
  const file = join(dataDir, 'jwt-secret');
  const existing = await readFile(file, 'utf8').catch(() => '');
  if (existing.trim().length >= 32) return existing.trim();
  const secret = randomBytes(32).toString('base64url');
  await mkdir(dataDir, { recursive: true });
  await writeFile(file, secret, { mode: 0o600 });
  return secret;
}

function listen(server: HttpServer, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

/**
 * Stops accepting, then waits (up to graceMs) until every request being handled has
 * finished, even those whose client already hung up: their handlers still hold database
 * work that must end before the pool closes. Then cuts what is left.
 */
async function closeHttp(server: HttpServer, inFlight: () => number, graceMs: number): Promise<void> {
  const deadline = Date.now() + graceMs;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  while (inFlight() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  // answers written: keep-alive connections turn idle once their last response is out
  const sweep = setInterval(() => server.closeIdleConnections(), 10);
  const cut = setTimeout(() => server.closeAllConnections(), Math.max(0, deadline - Date.now()));
  await closed;
  clearInterval(sweep);
  clearTimeout(cut);
}

/**
 * Composes and starts everything: database (embedded or DATABASE_URL), migrations,
 * demo data, doorbell, HTTP. Each part registers its stop as soon as it is up, so a
 * failure half-way through start still releases what was opened. Tests call this with
 * PORT=0 and stop() it; main.ts calls it once.
 */
export async function startServer(config: Config, log: Logger): Promise<RunningServer> {
  assertServable(config);
  await assertEmbeddedInstalled(config); // a production install has no PGlite or s3rver: say which variable to set
  const life = new Lifecycle(log);
  try {
    const embedded = config.databaseUrl === undefined;
    let url = config.databaseUrl;
    if (url === undefined) {
      const pg = await startEmbeddedPostgres(config.dataDir, config.embeddedPgPort);
      life.onStop('embedded postgres', pg.stop);
      url = pg.url;
      log.info({ dataDir: config.dataDir }, 'embedded PostgreSQL (PGlite) started');
    }

    const db = createDb({ url, poolMax: embedded ? 8 : config.db.poolMax, log, slowQueryMs: config.db.slowQueryMs, name: 'request' });
    life.onStop('database pool', () => db.$pool.end());

    // the demo ERP (its schema and data) only with the demo's config
    const demo = config.syncConfig === undefined && (config.seedDemo ?? embedded);
    if (embedded) await refuseOldEmbedded(db, config.dataDir);
    if (demo) {
      const applied = await applyDemoSchema(db);
      if (applied.length) log.info({ applied }, 'demo ERP schema created');
    }
    const checked = await loadConfigFile(config.syncConfig);
    const model = await loadModel(db, checked);
    if ((config.syncInstall ?? (embedded || demo ? 'auto' : 'check')) === 'auto') {
      const report = await install(db, model);
      if (report.steps > 0 || report.migrations.length > 0) log.info(report, 'sync config installed');
    } else {
      const [have, plan] = await Promise.all([installedHash(db, model.schema), planInstall(db, model)]);
      if (have === undefined || plan.steps.length > 0) {
        throw new ConfigError([
          have === undefined
            ? `fieldsync is not installed in this database: review \`npm run sync:install -- --dry-run\`, then run \`npm run sync:install\``
            : `the database does not match the sync config (${plan.steps.length} statements differ): review \`npm run sync:install -- --dry-run\`, then run \`npm run sync:install\``,
        ]);
      }
    }

    let seeded = false;
    if (demo) {
      const { n } = await db.one<{ n: number }>('SELECT count(*)::int AS n FROM $1:name.users', [model.schema]);
      if (n === 0) {
        seeded = true;
        // loaded only when seeding: production processes never load the vocabulary
        const { seedDemo } = await import('./seed/load.js');
        const report = await seedDemo(db, { ...config.demo, schema: model.schema, log: (msg) => log.info(msg) });
        log.info(report, 'demo data seeded');
      }
    }

    const secret = config.auth.jwtSecret ?? (embedded ? await embeddedSecret(config.dataDir) : undefined);
    const tokens = new Tokens({ ...config.auth, secret, previousSecret: config.auth.jwtSecretPrevious }, model);
    // cursors and snapshot URLs: CURSOR_SECRET, else the JWT key (a rotation of it overlaps here too)
    const signing: Keyring = config.sync.cursorSecret
      ? { current: config.sync.cursorSecret, previous: config.sync.cursorSecretPrevious }
      : { current: secret!, previous: config.sync.cursorSecretPrevious ?? config.auth.jwtSecretPrevious };
    const users = new UsersRepo(db, model.schema);

    // what the outbox holds (a seed, ERP writes while no server ran) is indexed before serving
    // batches on a pool of their own: a burst of requests filling the request pool must not
    // delay the batch every change waits for (commit -> poke, a push's visibleAfter)
    // (one name per server in this process: tests run several, and pg-promise warns of two pools alike)
    const indexDb = createDb({ url, poolMax: 2, applicationName: `fieldsync-indexer${++indexerPools === 1 ? '' : `-${indexerPools}`}`, log, slowQueryMs: config.db.slowQueryMs, name: 'indexer' });
    life.onStop('indexer database pool', () => indexDb.$pool.end());
    const indexer = new Indexer(indexDb, model, log);
    await indexer.flush();
    life.onStop('indexer', () => indexer.stop());
    const heads = new Heads(db, model, log);
    await heads.start();
    life.onStop('heads', () => heads.stop());
    const refreshHeads = () => void heads.refresh().catch((err: unknown) => log.warn({ err }, 'heads refresh failed'));
    indexer.on('indexed', (batch) => {
      if (!heads.apply(batch)) refreshHeads();
    });
    const metrics = new Metrics({ dbQueries: () => allQueriesSent(db), lag: () => readLag(db, model), pools: { request: db.$pool, indexer: indexDb.$pool } });
    const doorbell = new Doorbell(db, model, { pollMs: config.doorbell.pollMs, log, behind: () => heads.watermark });
    doorbell.on('watermark', refreshHeads);
    doorbell.on('pending', () => void indexer.flush().catch(() => undefined)); // the indexer logs its failures
    await doorbell.start();
    life.onStop('doorbell', () => doorbell.stop());
    life.onStop('prune', schedulePrune(db, model, config.sync.retentionDays, config.sync.pruneIntervalMs, log));

    const { name: dbName } = await db.one<{ name: string }>('SELECT current_database() AS name');
    const namespace = `${config.redisKeyPrefix}:${dbName}`;
    const redis = config.redisUrl
      ? new Redis(config.redisUrl, { maxRetriesPerRequest: 2, enableOfflineQueue: true, connectionName: namespace.replace(/[^\w.:-]/g, '_') })
      : undefined;
    // one Redis may serve several deployments and databases: every key carries both
    if (redis) {
      redis.on('error', (err) => log.warn({ err: err.message }, 'redis'));
      life.onStop('redis', async () => void (await redis.quit().catch(() => redis.disconnect())));
    }
    // login and connection limits: one count for every process on this Redis
    const limiter = limiters(redis, namespace);
    const login = new LoginService(users, tokens, config.login, limiter);
    const snapshots = config.snapshots.enabled
      ? new SnapshotService(
          db,
          model,
          heads,
          redis ? new RedisSnapshotStore(redis, namespace) : new MemorySnapshotStore(config.snapshots.memoryMaxBytes),
          metrics,
          log,
          config.snapshots,
          signing,
        )
      : undefined;
    const drift = new DriftMonitor(db, checked, model, log, (ok) => metrics.configDrift.set(ok ? 0 : 1));
    drift.start(config.configCheckMs);
    life.onStop('config drift check', () => drift.stop());
    const sets = new BucketSets(db, model, heads);
    const pulls = new PullService(
      db,
      model,
      heads,
      sets,
      new ChecksumCache(db, model, heads),
      new CursorCodec(signing),
      metrics,
      snapshots,
      drift.state,
      indexer,
    );

    let announceImage: (c: ImageChange) => void = () => undefined;
    const { storage, media, stop: stopMedia } = await createMediaStack({ config, db, model, log, indexer, onChange: (c) => announceImage(c) });
    life.onStop('media storage', stopMedia);
    if (seeded) {
      const { attachDemoImages } = await import('./images/demo.js');
      log.info({ products: await attachDemoImages(media) }, 'demo images attached');
    }
    const cleanup = setInterval(() => void media.cleanup(config.media.graceHours).catch((err: unknown) => log.warn({ err }, 'media cleanup failed')), 3600_000);
    cleanup.unref();
    life.onStop('media cleanup', () => clearInterval(cleanup));

    const audit = new AuditLog(db, model, log);
    life.onStop('audit log', () => audit.stop());
    const push = new PushService(db, model, audit, metrics, indexer, log);

    const routes: Route[] = [...systemRoutes(db, metrics, storage, drift.state, () => readLag(db, model), { redis, draining: () => life.draining }), ...authRoutes(login), ...adminUserRoutes(users, model), ...syncRoutes(pulls, config.sync, snapshots), ...pushRoutes(push, model),
      ...mediaRoutes({ model, media, storage, heads, maxBytes: config.media.maxBytes })];
    const document = () => openApiDocument(routes, { events: model.events, examples: readExamples() });
    routes.push(...docsRoutes(document));
    const app = createApp({
      model,
      log,
      tokens,
      metrics,
      early: [fastPull(pulls, tokens, { ...config.sync, bodyLimitBytes: config.http.bodyLimitBytes })],
      routes,
      bodyLimitBytes: config.http.bodyLimitBytes,
      proxyHops: config.http.proxyHops,
      corsOrigins: config.http.corsOrigins,
    });
    const koa = app.callback();
    const rawPull = rawFastPull(
      pulls,
      tokens,
      config.sync,
      (seconds, status) => metrics.httpDuration.observe({ method: 'GET', route: '/v1/sync/pull', status }, seconds),
      config.http.corsOrigins.length > 0, // browsers' pulls go through Koa's CORS middleware
    );
    let inFlight = 0;
    const http = createServer((req, res) => {
      if (rawPull(req, res)) return;
      inFlight++;
      void koa(req, res).finally(() => inFlight--);
    });
    http.keepAliveTimeout = 65_000; // above common load balancer idle timeouts
    const addr = await listen(http, config.http.host, config.http.port);
    life.onStop('http', () => closeHttp(http, () => inFlight, 10_000));

    // The Socket.IO streams adapter subscribes in the background and cannot report a failed
    // start: with Redis unreachable now, rooms stay in this process (logged), while
    // snapshots and event leases keep trying Redis and fall back on their own.
    const reachable = redis ? await within(2000, redis.ping(), 'redis').then(() => true, () => false) : false;
    if (redis && !reachable) log.warn('Redis unreachable at start: push channel rooms stay in this process');
    const { io, close: closeChannel } = createChannel(http, {
      tokens,
      sets,
      log,
      redis: reachable ? redis : undefined,
      namespace,
      connectsPerIpPerMinute: config.realtime.connectsPerIpPerMinute,
      proxyHops: config.http.proxyHops,
      limiter,
      corsOrigins: config.http.corsOrigins,
      appOf: (role: string, given: unknown) => {
        const app = typeof given === 'string' ? model.apps.get(given) : undefined;
        return app?.roles.includes(role) ? app.name : model.defaultApp.get(role);
      },
    });
    const notifier = new Notifier({ io, db, model, heads, sets, redis, log, options: { ...config.realtime, namespace } });
    announceImage = (c) => notifier.announceImage(c);
    metrics.watchSockets(model.roles.keys(), () => io.of('/').sockets.values());
    // not connected: 0 at once (a PING would wait in the offline queue)
    if (redis) metrics.watchRedis(async () => redis.status === 'ready' && (await within(1000, redis.ping(), 'redis').then(() => true, () => false)));
    life.onStop('push channel', async () => {
      notifier.stop();
      io.local.disconnectSockets(true); // this process's sockets only: they reconnect to another
      io.engine.close();
      await closeChannel();
    });
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    const serverUrl = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${addr.port}`;
    log.info({ url: serverUrl, urls: listenUrls(addr.address, addr.port, networkInterfaces()), embedded }, 'fieldsync listening');
    // warm the shared snapshots the first role's devices (the config lists its busiest role
    // first: the demo's salesmen) bootstrap from, in the background
    const [firstRole] = model.roles.values();
    const warmApp = firstRole && model.apps.get(model.defaultApp.get(firstRole.name)!);
    if (snapshots && firstRole && warmApp) {
      for (const b of firstRole.buckets) if (b.bucket.snapshot && !b.bucket.keyed) void snapshots.offer(b.bucket.name, warmApp).catch(() => undefined);
    }

    // stopped first (parts stop in reverse): /ready already answers 503 (draining) and the
    // load balancer has this long to notice before the port closes
    life.onStop('drain delay', () => new Promise((resolve) => setTimeout(resolve, config.http.drainDelayMs)));
    return { url: serverUrl, bound: addr, db, doorbell, indexer, heads, metrics, io, media, snapshots, tokens, model, drift, embedded, routes, openapi: document, http, stop: () => life.stop() };
  } catch (err) {
    await life.stop();
    throw err;
  }
}
