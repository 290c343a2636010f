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

export function systemRoutes(db: Db, metrics: Metrics, storage: Storage, drift: DriftState, lag: () => Promise<Lag>) {
  return [
    route({
      method: 'GET',
      path: '/metrics',
      tag: 'system',
      summary: 'Prometheus metrics',
      description: 'Request latency by route, pulls by path, rows served, the outbox backlog, the oldest write transaction, config drift. Keep it off the public internet.',
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
      description: 'Ready when PostgreSQL and S3 answer within 2 s and the database matches the sync config.',
      auth: 'public',
      responses: { 200: { description: 'ready', schema: readyAnswer }, 503: { description: 'not ready: `checks` names what failed', schema: readyAnswer } },
      async handler() {
        const checks: Record<string, string> = {};
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
        // the database no longer matching the sync config (an ERP deploy recreated a table)
        checks.syncConfig = drift.ok ? 'ok' : drift.problems.join('; ');
        const ready = Object.values(checks).every((c) => c === 'ok');
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
