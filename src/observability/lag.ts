import type { Db } from '../db/pg.js';
import { s, type Model } from '../model/model.js';

/** What an operator watches (metrics, /ready): nothing here delays anyone else's changes. */
export interface Lag {
  /** age of the oldest open write transaction in the cluster (0: none); only its own rows wait for it */
  seconds: number;
  /** its backend's pid (null: none) */
  pid: number | null;
  /** the database it runs in (any database of the cluster) */
  database: string | null;
  /** committed changes in the outbox the indexer has not taken yet (normally 0: it drains every poll) */
  backlog: number;
}

/** The operator's view, read now (for a scrape of /metrics or a call of /ready: not on any hot path). */
export async function readLag(db: Db, m: Pick<Model, 'schema'>): Promise<Lag> {
  const r = await db.task('bg:lag', (t) =>
    t.one<{ seconds: number | null; pid: number | null; database: string | null; backlog: number }>(
      `SELECT o.seconds, o.pid, o.database, (SELECT count(*)::int FROM ${s(m, 'changes')}) AS backlog
         FROM (SELECT 1) one
         LEFT JOIN (SELECT floor(extract(epoch FROM clock_timestamp() - xact_start))::int AS seconds, pid, datname::text AS database
                      FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() ORDER BY xact_start LIMIT 1) o ON true`,
    ),
  );
  return { seconds: r.seconds ?? 0, pid: r.pid, database: r.database, backlog: r.backlog };
}
