import { problemDescription } from '../../protocol/problem.js';
import { healthAnswer, problemCodeParams, readyAnswer } from '../../protocol/system.js';
import type { Db } from '../../db/pg.js';
import type { DriftState } from '../../install/drift.js';
import { within } from '../../lib/within.js';
import type { Metrics } from '../../observability/metrics.js';
import type { Lag } from '../../observability/lag.js';
import type { Storage } from '../../storage/s3.js';
import { errorCatalogue, type ErrorCode } from '../../errors.js';
import { AppError } from '../../errors.js';
import { route } from '../route.js';

export interface ReadinessSources {
  /** REDIS_URL's connection: checked with a PING when set */
  redis?: { readonly status: string; ping(): Promise<unknown> } | undefined;
  /** true once the server has begun stopping (SIGTERM): not ready, so load balancers stop sending */
  draining?: () => boolean;
}

export function systemRoutes(db: Db, metrics: Metrics, storage: Storage, drift: DriftState, lag: () => Promise<Lag>, readiness: ReadinessSources = {}) {
  return [
    route({
      method: 'GET',
      path: '/metrics',
      tag: 'system',
      summary: 'Prometheus metrics',
      description: 'Request latency by route, pulls by path, rows served, the outbox backlog, the oldest write transaction, config drift, database pools, push channel sockets by role, Redis availability. Keep it off the public internet.',
      auth: 'public',
      responses: { 200: { description: 'Prometheus text exposition format', contentType: 'text/plain' } },
      async handler() {
        return { body: await metrics.registry.metrics(), headers: { 'Content-Type': metrics.registry.contentType } };
      },
    }),
    route({
      method: 'GET',
      path: '/health',
      tag: 'system',
      summary: 'Liveness',
      auth: 'public',
      responses: { 200: { description: 'the process runs', schema: healthAnswer } },
      handler: () => ({ body: { status: 'ok' }, headers: { 'Cache-Control': 'no-store' } }),
    }),
    route({
      method: 'GET',
      path: '/ready',
      tag: 'system',
      summary: 'Readiness',
      description: 'Ready when PostgreSQL and S3 answer within 2 s, the database matches the sync config and the server is not shutting down. `checks.redis` (with REDIS_URL) reports Redis but never makes the server unready: without it the server is degraded (rooms per process, snapshots from PostgreSQL, limits in memory), not down.',
      auth: 'public',
      responses: { 200: { description: 'ready', schema: readyAnswer }, 503: { description: 'not ready: `checks` names what failed', schema: readyAnswer } },
      async handler() {
        const checks: Record<string, string> = {};
        // first: once stopping, every answer says so, whatever else holds
        if (readiness.draining?.()) checks.draining = 'shutting down';
        try {
          await within(2000, db.one('SELECT 1'));
          checks.postgres = 'ok';
        } catch (err) {
          checks.postgres = (err as Error).message;
        }
        try {
          await within(2000, storage.check());
          checks.s3 = 'ok';
        } catch (err) {
          checks.s3 = (err as Error).message || 'unreachable';
        }
        if (readiness.redis) {
          try {
            // not connected: said at once (a PING would wait in the offline queue)
            if (readiness.redis.status !== 'ready') throw new Error(`not connected (${readiness.redis.status})`);
            await within(2000, readiness.redis.ping(), 'redis');
            checks.redis = 'ok';
          } catch (err) {
            checks.redis = (err as Error).message || 'unreachable';
          }
        }
        // the database no longer matching the sync config (an ERP deploy recreated a table)
        checks.syncConfig = drift.ok ? 'ok' : drift.problems.join('; ');
        // Redis down degrades (rooms per process, snapshots from PostgreSQL, limits in memory)
        // but does not stop serving: said in checks, never a reason to take every replica out
        const ready = Object.entries(checks).every(([name, c]) => c === 'ok' || name === 'redis');
        // for the operator, never a reason to be unready: an open transaction delays only its own rows
        const l = await within(2000, lag()).catch(() => undefined); // unknown while PostgreSQL does not answer
        const changes = l && {
          oldestWriteTransaction: l.pid === null ? null : { seconds: l.seconds, pid: l.pid, database: l.database },
          outboxBacklog: l.backlog,
        };
        return { status: ready ? 200 : 503, body: { status: ready ? 'ready' : 'not-ready', checks, changes: changes ?? null }, headers: { 'Cache-Control': 'no-store' } };
      },
    }),
    route({
      method: 'GET',
      path: '/problems/:code',
      tag: 'system',
      summary: 'What a problem code means',
      auth: 'public',
      params: problemCodeParams,
      responses: { 200: { description: 'the code, its status and title', schema: problemDescription } },
      errors: ['not-found'],
      handler({ params }) {
        const code = params.code as ErrorCode;
        if (!Object.hasOwn(errorCatalogue, code)) throw new AppError('not-found');
        return { body: { code, ...errorCatalogue[code] } };
      },
    }),
  ];
}
