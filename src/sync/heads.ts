import { EventEmitter } from 'node:events';
import type { Db } from '../db/pg.js';
import { s as fs, type Model } from '../model/model.js';
import type { Logger } from '../observability/logger.js';

export interface Advance {
  /** the previous watermark: the advance covers transactions in [from, watermark) */
  from: bigint;
  /** the new watermark: every transaction below it has finished */
  watermark: bigint;
  /** buckets with items in [from, watermark) */
  buckets: string[];
  /** collections with items in [from, watermark) */
  collections: string[];
  /** the sync epoch changed (TRUNCATE): every cursor is void */
  epochChanged: boolean;
}

export interface HeadsEvents {
  advanced: [Advance];
}

/**
 * One statement, so the watermark and the scan below it share one snapshot: every
 * transaction below the watermark is finished and its items are visible to the scan.
 * One pass over the items written since the last watermark (index items_tx) gives the
 * newest transaction per bucket and per collection ('@' + name). Meta rows ('#w'
 * watermark, '#x' next transaction id, '#e' epoch, '#age' seconds of the oldest open
 * write transaction, at most once a second) ride along.
 */
function headsSql(m: Model, withAge: boolean): string {
  // the oldest open transaction's age reads pg_stat_activity: for the lag metric, at most
  // once a second, not on every scan (scans follow the watermark, up to every poll)
  const age = withAge
    ? `
UNION ALL SELECT '#age', coalesce((SELECT floor(extract(epoch FROM clock_timestamp() - min(xact_start)))::bigint
                                     FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()), 0)::text`
    : '';
  return `WITH s AS (SELECT pg_current_snapshot() AS s),
  wm AS (SELECT pg_snapshot_xmin(s) AS w, pg_snapshot_xmax(s) AS x FROM s)
SELECT '#w' AS b, (SELECT w FROM wm)::text AS tx
UNION ALL SELECT '#x', (SELECT x FROM wm)::text
UNION ALL SELECT '#e', (SELECT epoch FROM ${fs(m, 'state')})::text${age}
UNION ALL SELECT coalesce(i.bucket, '@' || i.coll), max(i.tx::text::bigint)::text
  FROM ${fs(m, 'items')} i WHERE i.tx >= $1::xid8 AND i.tx < (SELECT w FROM wm)
 GROUP BY GROUPING SETS ((i.bucket), (i.coll))
HAVING coalesce(i.bucket, '') <> '@dep'`;
}

export interface Lag {
  transactions: number;
  seconds: number;
}

/**
 * The in-memory heads: the watermark W and, per bucket, the newest transaction that
 * wrote an item into it (row or tombstone), complete for everything below W. A pull
 * whose every bucket is caught up at a position above its head needs no query at all.
 *
 * Refreshed whenever the doorbell sees the watermark move (src/db/doorbell.ts polls it):
 * one indexed statement scans only the items written between the previous and the new
 * watermark. Refreshes are single-flight; calls during a refresh cause exactly one more,
 * started no sooner than minIntervalMs after the previous one (a quiet system answers the
 * first call at once; a burst costs at most one scan per interval).
 */
export class Heads extends EventEmitter<HeadsEvents> {
  private readonly last = new Map<string, bigint>();
  private w = 0n;
  private e = 0;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  readonly lag: Lag = { transactions: 0, seconds: 0 };
  /** bumped whenever the watermark, a head or the epoch moves (answers cached from memory are stale then) */
  version = 0;

  private readonly sql: { withAge: string; plain: string };
  private ageReadAt = 0;

  constructor(
    private readonly db: Db,
    model: Model,
    private readonly log: Logger,
    /** during a burst of rings, scans start at most this often (the first ring is served at once) */
    private readonly minIntervalMs = 25,
  ) {
    super();
    this.sql = { withAge: headsSql(model, true), plain: headsSql(model, false) };
  }

  /** Every transaction below this has finished; pulls read below it. 0 before start. */
  get watermark(): bigint {
    return this.w;
  }

  get epoch(): number {
    return this.e;
  }

  /** Newest transaction with an item in the bucket (below the watermark); 0 if none. */
  head(bucket: string): bigint {
    return this.last.get(bucket) ?? 0n;
  }

  /** Newest transaction that wrote an item of the collection (below the watermark); 0 if none. */
  collectionHead(collection: string): bigint {
    return this.last.get(`@${collection}`) ?? 0n;
  }

  /** Scans everything once; resolves when the heads are complete. */
  async start(): Promise<void> {
    await this.refresh();
  }

  /** Waits for a refresh in flight; later rings are ignored (the pool is about to close). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.again = false;
    await this.running?.catch(() => undefined);
  }

  /** Brings the heads up to the current watermark (coalesced, single-flight). */
  refresh(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          const started = performance.now();
          await this.scan();
          // a burst (an ERP import, a wave of pushes) moves the watermark hundreds of times
          // a second: coalesce the calls that arrive meanwhile into one scan per interval
          const rest = this.minIntervalMs - (performance.now() - started);
          if (this.again && rest > 0) await new Promise((r) => setTimeout(r, rest));
        } while (this.again && !this.stopped);
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  private async scan(): Promise<void> {
    const withAge = performance.now() - this.ageReadAt >= 1000;
    if (withAge) this.ageReadAt = performance.now();
    const sql = withAge ? this.sql.withAge : this.sql.plain;
    const rows = await this.db.task('bg:heads', (t) => t.any<{ b: string; tx: string }>(sql, [this.w.toString()]));
    let watermark = this.w;
    let next = 0n;
    let epoch = this.e;
    const changed: string[] = [];
    const collections: string[] = [];
    for (const { b, tx } of rows) {
      if (b === '#w') watermark = BigInt(tx);
      else if (b === '#x') next = BigInt(tx);
      else if (b === '#e') epoch = Number(tx);
      else if (b === '#age') this.lag.seconds = Number(tx);
      else {
        const t = BigInt(tx);
        if (t > (this.last.get(b) ?? 0n)) this.last.set(b, t);
        if (b.startsWith('@')) collections.push(b.slice(1));
        else changed.push(b);
      }
    }
    this.lag.transactions = Number(next - watermark);
    const epochChanged = this.e !== 0 && epoch !== this.e;
    if (watermark <= this.w && !epochChanged) return;
    const from = this.w;
    this.w = watermark;
    this.e = epoch;
    this.version++;
    if (changed.length > 0 || epochChanged) {
      this.log.debug({ watermark: watermark.toString(), buckets: changed.length }, 'heads advanced');
    }
    this.emit('advanced', { from, watermark, buckets: changed, collections, epochChanged });
  }
}
