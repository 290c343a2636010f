import { EventEmitter } from 'node:events';
import type { Db } from '../db/pg.js';
import { s as fs, type Model } from '../model/model.js';
import type { Logger } from '../observability/logger.js';
import type { Batch } from './indexer.js';

export interface Advance {
  /** the previous watermark: the advance covers batches in [from, watermark) */
  from: bigint;
  /** the new watermark: every indexing batch below it has committed */
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
 * One statement, so the watermark and the scan below it share one snapshot: batches commit
 * in number order, so every batch below the watermark (the last batch number + 1) is
 * visible to the scan. One pass over the items written since the last watermark (index
 * items_seq) gives the newest batch per bucket and per collection ('@' + name). Meta rows
 * ('#w' watermark, '#e' epoch) ride along.
 */
function headsSql(m: Model): string {
  return `WITH st AS (SELECT seq + 1 AS w, epoch FROM ${fs(m, 'state')})
SELECT '#w' AS b, (SELECT w FROM st)::text AS tx
UNION ALL SELECT '#e', (SELECT epoch FROM st)::text
UNION ALL SELECT coalesce(i.bucket, '@' || i.coll), max(i.seq)::text
  FROM ${fs(m, 'items')} i WHERE i.seq >= $1 AND i.seq < (SELECT w FROM st)
 GROUP BY GROUPING SETS ((i.bucket), (i.coll))
HAVING coalesce(i.bucket, '') <> '@dep'`;
}

/**
 * The in-memory heads: the watermark W and, per bucket, the newest indexing batch that
 * wrote an item into it (row or tombstone), complete for everything below W. A pull
 * whose every bucket is caught up at a position above its head needs no query at all.
 *
 * Refreshed whenever a batch commits (the indexer of this process, or the doorbell seeing
 * another's): one indexed statement scans only the items written between the previous and
 * the new watermark. Refreshes are single-flight; calls during a refresh cause exactly one more,
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
  /** bumped whenever the watermark, a head or the epoch moves (answers cached from memory are stale then) */
  version = 0;

  private readonly sql: string;

  constructor(
    private readonly db: Db,
    model: Model,
    private readonly log: Logger,
    /** during a burst of rings, scans start at most this often (the first ring is served at once) */
    private readonly minIntervalMs = 25,
  ) {
    super();
    this.sql = headsSql(model);
  }

  /** Every indexing batch below this has committed; pulls read below it. 0 before start. */
  get watermark(): bigint {
    return this.w;
  }

  get epoch(): number {
    return this.e;
  }

  /** Newest batch with an item in the bucket (below the watermark); 0 if none. */
  head(bucket: string): bigint {
    return this.last.get(bucket) ?? 0n;
  }

  /** Newest batch that wrote an item of the collection (below the watermark); 0 if none. */
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

  /**
   * Moves the heads by a batch this process's indexer just committed, from what the batch
   * wrote (no scan, no round trip: the way from a commit to a poke is one step shorter).
   * Only for the next batch (every one below it is known) while no scan runs and the epoch
   * is the same; otherwise answers false and the caller refreshes.
   */
  apply(b: Batch): boolean {
    if (this.stopped || this.running || b.seq !== this.w || b.epoch !== this.e) return false;
    for (const bucket of b.buckets) this.last.set(bucket, b.seq);
    for (const c of b.collections) this.last.set(`@${c}`, b.seq);
    const from = this.w;
    this.w = b.seq + 1n;
    this.version++;
    this.emit('advanced', { from, watermark: this.w, buckets: b.buckets, collections: b.collections, epochChanged: false });
    return true;
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
    const sql = this.sql;
    const rows = await this.db.task('bg:heads', (t) => t.any<{ b: string; tx: string }>(sql, [this.w.toString()]));
    let watermark = this.w;
    let epoch = this.e;
    const changed: string[] = [];
    const collections: string[] = [];
    for (const { b, tx } of rows) {
      if (b === '#w') watermark = BigInt(tx);
      else if (b === '#e') epoch = Number(tx);
      else {
        const t = BigInt(tx);
        if (t > (this.last.get(b) ?? 0n)) this.last.set(b, t);
        if (b.startsWith('@')) collections.push(b.slice(1));
        else changed.push(b);
      }
    }
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
