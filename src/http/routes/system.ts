import { z } from 'zod';
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
      auth: 'public',
      async handler() {
        return { body: await metrics.registry.metrics(), headers: { 'Content-Type': metrics.registry.contentType } };
      },
    }),
    route({
      method: 'GET',
      path: '/health',
      auth: 'public',
      handler: () => ({ body: { status: 'ok' }, headers: { 'Cache-Control': 'no-store' } }),
    }),
    route({
      method: 'GET',
      path: '/ready',
      auth: 'public',
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
      auth: 'public',
      params: z.strictObject({ code: z.string().max(64) }),
      handler({ params }) {
        const code = params.code as ErrorCode;
        if (!Object.hasOwn(errorCatalogue, code)) throw new AppError('not-found');
        return { body: { code, ...errorCatalogue[code] } };
      },
    }),
  ];
}
