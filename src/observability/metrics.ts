import type { Lag } from './lag.js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** What a connection pool tells about itself (pg's Pool). */
export interface PoolStats {
  readonly totalCount: number;
  readonly idleCount: number;
  readonly waitingCount: number;
}

export interface MetricSources {
  dbQueries: () => number;
  lag: () => Promise<Lag>;
  /** the PostgreSQL pools by name (label `pool`): request, indexer */
  pools?: Readonly<Record<string, PoolStats>>;
}

/**
 * Prometheus metrics of one server instance (its own registry, so tests can run many
 * servers in one process). Served at GET /metrics.
 */
export class Metrics {
  readonly registry = new Registry();

  readonly httpDuration = new Histogram({
    name: 'fieldsync_http_request_duration_seconds',
    help: 'HTTP request duration by route and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  readonly pulls = new Counter({
    name: 'fieldsync_pull_requests_total',
    help: 'Pulls by path: fast (answered from memory, no database) or slow',
    labelNames: ['path'] as const,
    registers: [this.registry],
  });

  readonly rowsServed = new Counter({
    name: 'fieldsync_pull_rows_total',
    help: 'Rows and deletes sent by pull, by collection',
    labelNames: ['collection', 'kind'] as const,
    registers: [this.registry],
  });


  readonly pushResults = new Counter({
    name: 'fieldsync_push_results_total',
    help: 'Offline-write mutations by type and outcome (applied, duplicate, rejected)',
    labelNames: ['type', 'status'] as const,
    registers: [this.registry],
  });

  readonly snapshots = new Counter({
    name: 'fieldsync_snapshot_offers_total',
    help: 'Bootstrap snapshots offered (hit), not available (miss), or store unavailable (fallback to PostgreSQL)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly snapshotBuildSeconds = new Histogram({
    name: 'fieldsync_snapshot_build_seconds',
    help: 'Time to build a bootstrap snapshot, by bucket kind',
    labelNames: ['kind'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  readonly snapshotBytes = new Counter({
    name: 'fieldsync_snapshot_bytes_served_total',
    help: 'Bytes of snapshot pages served from the cache',
    registers: [this.registry],
  });

  readonly snapshotAge = new Gauge({
    name: 'fieldsync_snapshot_age_seconds',
    help: 'Age of the snapshot last offered, per bucket',
    labelNames: ['bucket'] as const,
    registers: [this.registry],
  });

  readonly cursorRejections = new Counter({
    name: 'fieldsync_cursor_rejections_total',
    help: 'Cursors refused, by reason (invalid, expired)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly configDrift = new Gauge({
    name: 'fieldsync_config_drift',
    help: '1 while the database no longer matches the sync config (pulls answer 503 config-drift); 0 when it does',
    registers: [this.registry],
  });

  constructor(sources: MetricSources) {
    const { dbQueries, pools = {} } = sources;
    // one query per scrape for both gauges (a scrape collects them together: they share the
    // read in flight); a failed read keeps the last values, so the scrape still answers
    let last: Lag = { seconds: 0, pid: null, database: null, backlog: 0 };
    let reading: Promise<Lag> | undefined;
    const lag = () =>
      (reading ??= sources
        .lag()
        .then((l) => (last = l), () => last)
        .finally(() => (reading = undefined)));
    collectDefaultMetrics({ register: this.registry, prefix: 'fieldsync_' });
    // the pools, read at each scrape; registered before the gauges below, which query
    // through the request pool, so a scrape does not count its own query as waiting
    const pool = (name: string, help: string, read: (p: PoolStats) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['pool'] as const,
        registers: [this.registry],
        collect() {
          for (const [label, p] of Object.entries(pools)) this.set({ pool: label }, read(p));
        },
      });
    pool('fieldsync_db_pool_connections', 'PostgreSQL connections open, by pool (request: HTTP and background work; indexer: indexing batches)', (p) => p.totalCount);
    pool('fieldsync_db_pool_idle_connections', 'PostgreSQL connections open and idle, by pool', (p) => p.idleCount);
    pool('fieldsync_db_pool_waiting', 'Queries waiting for a PostgreSQL connection, by pool (above 0 for long: the pool is too small or queries too slow)', (p) => p.waitingCount);
    new Gauge({
      name: 'fieldsync_oldest_write_transaction_seconds',
      help: 'Age of the oldest open write transaction in the PostgreSQL cluster (0: none). Only its own rows wait for it; other commits are delivered at once',
      registers: [this.registry],
      async collect() {
        this.set((await lag()).seconds);
      },
    });
    new Gauge({
      name: 'fieldsync_outbox_backlog',
      help: 'Committed changes in the outbox the indexer has not taken yet (normally 0: it drains at every poll; growing: the indexer is behind or failing)',
      registers: [this.registry],
      async collect() {
        this.set((await lag()).backlog);
      },
    });
    new Counter({
      name: 'fieldsync_db_queries_total',
      help: 'Queries sent to PostgreSQL by this process',
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(dbQueries());
      },
    });
  }

  /**
   * Push channel sockets connected to this process, by role, counted at each scrape.
   * `roles` (the config's) are always present, at 0 when none is connected.
   */
  watchSockets(roles: Iterable<string>, sockets: () => Iterable<{ data: { role?: string; app?: string } }>): void {
    const known = [...roles];
    new Gauge({
      name: 'fieldsync_push_channel_sockets',
      help: 'Push channel (Socket.IO) sockets connected to this process, by app (the handshake\'s auth.app, else the role\'s default app) and role',
      labelNames: ['app', 'role'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const role of known) this.set({ app: 'none', role }, 0); // every role shows, at 0 when none is connected
        const counts = new Map<string, { app: string; role: string; n: number }>();
        for (const s of sockets()) {
          const role = s.data.role ?? 'unknown'; // still in the handshake
          const app = s.data.app ?? 'none';
          const c = counts.get(`${app}|${role}`) ?? { app, role, n: 0 };
          c.n++;
          counts.set(`${app}|${role}`, c);
        }
        for (const { app, role, n } of counts.values()) this.set({ app, role }, n);
      },
    });
  }

  /** Whether Redis answers (REDIS_URL only): 1, or 0 while it does not; asked at each scrape. */
  watchRedis(up: () => Promise<boolean>): void {
    new Gauge({
      name: 'fieldsync_redis_up',
      help: 'Whether Redis (REDIS_URL) answers a PING within 1 s: 1, or 0 (rooms, snapshots and limits then fall back to this process and PostgreSQL)',
      registers: [this.registry],
      async collect() {
        this.set((await up()) ? 1 : 0);
      },
    });
  }
}
