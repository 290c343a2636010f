import { EventEmitter } from 'node:events';
import type { Db } from '../db/pg.js';
import type { Logger } from '../observability/logger.js';
import { collections, extraMemberships, type Collection, type CollectionName, type Membership } from './collections.js';

export interface Advance {
  /** the new watermark: every transaction below it has finished */
  watermark: bigint;
  /** buckets with items in [previous watermark, watermark) */
  buckets: string[];
  /** the sync epoch changed (TRUNCATE, or a migration): every cursor is void */
  epochChanged: boolean;
}

export interface HeadsEvents {
  advanced: [Advance];
}

function headsOf(col: Collection, m: Membership): string[] {
  const from = `FROM ${col.table} r WHERE r._tx >= $1::xid8 AND r._tx < (SELECT w FROM wm)`;
  const max = 'max(r._tx::text::bigint)';
  const out: string[] = [];
  if (m.key) {
    out.push(`SELECT '${m.kind}:' || r.${m.key} AS b, ${max} AS tx ${from} AND r.${m.key} IS NOT NULL GROUP BY r.${m.key}`);
  } else {
    out.push(`SELECT '${m.kind}' AS b, ${max} AS tx ${from}`);
  }
  if (m.all) out.push(`SELECT '${m.kind}:all' AS b, ${max} AS tx ${from}`);
  return out;
}

/**
 * One statement, so the watermark and the scan below it share one snapshot: every
 * transaction below the watermark is finished and its writes are visible to the scan.
 * Meta rows ('#w' watermark, '#x' next transaction id, '#e' epoch, '#age' seconds of the
 * oldest open write transaction) ride along in the same result.
 */
const HEADS_SQL = (() => {
  const parts: string[] = [];
  for (const col of Object.values(collections) as Collection[]) {
    for (const m of [col.membership, ...(extraMemberships[col.name as CollectionName] ?? [])]) parts.push(...headsOf(col, m));
  }
  parts.push(`SELECT t.bucket AS b, max(t._tx::text::bigint) AS tx FROM sync_tombstones t
              WHERE t._tx >= $1::xid8 AND t._tx < (SELECT w FROM wm) GROUP BY t.bucket`);
  return `WITH s AS (SELECT pg_current_snapshot() AS s),
  wm AS (SELECT pg_snapshot_xmin(s) AS w, pg_snapshot_xmax(s) AS x FROM s)
SELECT '#w' AS b, (SELECT w FROM wm)::text AS tx
UNION ALL SELECT '#x', (SELECT x FROM wm)::text
UNION ALL SELECT '#e', (SELECT epoch FROM sync_state)::text
UNION ALL SELECT '#age', coalesce((SELECT floor(extract(epoch FROM clock_timestamp() - min(xact_start)))::bigint
                                     FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()), 0)::text
UNION ALL SELECT b, tx::text FROM (${parts.map((p) => `(${p})`).join('\n UNION ALL ')}) c WHERE tx IS NOT NULL`;
})();

/** After a ring, re-check this often while transactions are in flight, for this long. */
const CHASE_MS = 20;
const CHASE_FOR_MS = 10_000;

export interface Lag {
  transactions: number;
  seconds: number;
}

/**
 * The in-memory heads: the watermark W and, per bucket, the newest transaction that
 * wrote an item into it (row or tombstone), complete for everything below W. A pull
 * whose every bucket is caught up at a position above its head needs no query at all.
 *
 * Refreshed on every doorbell ring (NOTIFY, or the polled watermark moving): one indexed
 * statement scans only the items written between the previous and the new watermark.
 * Refreshes are single-flight; rings during a refresh cause exactly one more, started
 * no sooner than minIntervalMs after the previous one (a quiet system answers the first
 * ring at once; a burst costs at most one scan per interval).
 */
export class Heads extends EventEmitter<HeadsEvents> {
  private readonly last = new Map<string, bigint>();
  private w = 0n;
  private e = 0;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private chaseUntil = 0;
  private chaseTimer: NodeJS.Timeout | undefined;
  readonly lag: Lag = { transactions: 0, seconds: 0 };
  /** bumped whenever the watermark, a head or the epoch moves (answers cached from memory are stale then) */
  version = 0;

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    /** during a burst of rings, scans start at most this often (the first ring is served at once) */
    private readonly minIntervalMs = 25,
  ) {
    super();
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

  /** Scans everything once; resolves when the heads are complete. */
  async start(): Promise<void> {
    await this.refresh();
  }

  /** Waits for a refresh in flight; later rings are ignored (the pool is about to close). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.again = false;
    clearTimeout(this.chaseTimer);
    await this.running?.catch(() => undefined);
  }

  /**
   * Brings the heads up to the current watermark (coalesced, single-flight).
   *
   * A ring (NOTIFY at commit) can come while another transaction still holds the
   * watermark below the change; when that one ends, nothing rings. So for CHASE_FOR_MS
   * after a ring, as long as transactions are in flight, the heads re-check every
   * CHASE_MS (one cheap indexed statement): the change is poked within milliseconds of
   * becoming visible, not at the next poll.
   */
  refresh(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.chaseUntil = performance.now() + CHASE_FOR_MS;
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
          // a burst (an ERP import, a wave of pushes) rings hundreds of times a second:
          // coalesce the rings that arrive meanwhile into one scan per interval
          const rest = this.minIntervalMs - (performance.now() - started);
          if (this.again && rest > 0) await new Promise((r) => setTimeout(r, rest));
        } while (this.again && !this.stopped);
      } finally {
        this.running = undefined;
      }
      if (!this.stopped && this.lag.transactions > 0 && performance.now() < this.chaseUntil && !this.chaseTimer) {
        this.chaseTimer = setTimeout(() => {
          this.chaseTimer = undefined;
          const until = this.chaseUntil;
          void this.refresh().catch(() => undefined);
          this.chaseUntil = until; // a chase does not extend itself: only rings do
        }, CHASE_MS);
        this.chaseTimer.unref();
      }
    })();
    return this.running;
  }

  private async scan(): Promise<void> {
    const rows = await this.db.task('bg:heads', (t) => t.any<{ b: string; tx: string }>(HEADS_SQL, [this.w.toString()]));
    let watermark = this.w;
    let next = 0n;
    let epoch = this.e;
    const changed: string[] = [];
    for (const { b, tx } of rows) {
      if (b === '#w') watermark = BigInt(tx);
      else if (b === '#x') next = BigInt(tx);
      else if (b === '#e') epoch = Number(tx);
      else if (b === '#age') this.lag.seconds = Number(tx);
      else {
        const t = BigInt(tx);
        if (t > (this.last.get(b) ?? 0n)) this.last.set(b, t);
        changed.push(b);
      }
    }
    this.lag.transactions = Number(next - watermark);
    const epochChanged = this.e !== 0 && epoch !== this.e;
    if (watermark <= this.w && !epochChanged) return;
    this.w = watermark;
    this.e = epoch;
    this.version++;
    if (changed.length > 0 || epochChanged) {
      this.log.debug({ watermark: watermark.toString(), buckets: changed.length }, 'heads advanced');
    }
    this.emit('advanced', { watermark, buckets: changed, epochChanged });
  }
}
