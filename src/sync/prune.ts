import type { Db } from '../db/pg.js';
import { s, type Model } from '../model/model.js';
import type { Logger } from '../observability/logger.js';

/**
 * Deletes the deleted items (tombstones) older than the retention, in batches, and records
 * per bucket the newest pruned batch (prune_horizon): a device whose position is below it
 * may have missed a delete, and pull answers 410 for that bucket. Safe to run in every
 * replica at once (each batch is one statement; the horizon only moves forward).
 */
export async function pruneTombstones(db: Db, m: Model, retentionDays: number, batch = 10_000): Promise<number> {
  let total = 0;
  for (;;) {
    const n = await db.task('bg:prune', (t) => t.one<{ n: number }>(
      `WITH gone AS (
         DELETE FROM ${s(m, 'items')} WHERE (coll, row_key, bucket) IN (
           SELECT coll, row_key, bucket FROM ${s(m, 'items')}
            WHERE deleted AND deleted_at < now() - make_interval(days => $1) ORDER BY deleted_at LIMIT $2
           FOR UPDATE SKIP LOCKED)
           AND deleted
         RETURNING bucket, seq),
       horizon AS (
         INSERT INTO ${s(m, 'prune_horizon')} AS h (bucket, pruned_seq)
         SELECT bucket, max(seq) FROM gone GROUP BY bucket
         ON CONFLICT (bucket) DO UPDATE SET pruned_seq = greatest(h.pruned_seq, excluded.pruned_seq), pruned_at = now())
       SELECT count(*)::int AS n FROM gone`,
      [retentionDays, batch],
    ));
    total += n.n;
    if (n.n < batch) break;
  }
  // markers of changed dependency tables (src/install/plan.ts): the heads need only the newest
  await db.task('bg:prune', (t) =>
    t.none(`DELETE FROM ${s(m, 'items')} i WHERE i.bucket = '@dep'
              AND i.seq < (SELECT max(j.seq) FROM ${s(m, 'items')} j WHERE j.bucket = '@dep' AND j.coll = i.coll)`),
  );
  return total;
}

/** Runs the prune every intervalMs; returns a stop function. */
export function schedulePrune(db: Db, m: Model, retentionDays: number, intervalMs: number, log: Logger): () => void {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const run = async () => {
    try {
      const n = await pruneTombstones(db, m, retentionDays);
      if (n > 0) log.info({ pruned: n, retentionDays }, 'tombstones pruned');
    } catch (err) {
      if (!stopped) log.warn({ err }, 'tombstone prune failed');
    }
    if (!stopped) timer = setTimeout(run, intervalMs);
  };
  timer = setTimeout(run, Math.min(intervalMs, 60_000));
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
