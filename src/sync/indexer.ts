import { EventEmitter } from 'node:events';
import { INDEX_LOCK } from '../db/locks.js';
import { pgp, type Db } from '../db/pg.js';
import { captureFn, keyMatch, s, type Collection, type Model } from '../model/model.js';
import type { Logger } from '../observability/logger.js';

/** The outbox entry of a TRUNCATE of a synced table (its key: the collection), written by `truncated()`. */
const TRUNCATE_MARKER = '#truncate';

/** What one committed batch wrote: enough to move the heads without scanning for it. */
export interface Batch {
  /** its number */
  seq: bigint;
  /** the sync epoch it read (under the index lock, in its transaction) */
  epoch: number;
  /** the buckets it wrote an item into (row or tombstone) */
  buckets: string[];
  /** the collections it wrote an item of (and the dependency tables it marked) */
  collections: string[];
}

export interface IndexerEvents {
  /** a batch committed: items up to its number are visible */
  indexed: [Batch];
}

export interface BatchReport {
  /** the batch number that covers everything the batch read (the current one when it found nothing) */
  seq: bigint;
  /** outbox entries it consumed */
  entries: number;
}

/**
 * The SQL of one collection's part of a batch: the rows whose keys are in the outbox are
 * read as they are now (committed, in this batch's snapshot or later) and their items are
 * made to match: an item per bucket the row is in, stamped with the batch number; the
 * buckets it left (or every bucket, for a row that is gone or soft-deleted) get a
 * tombstone with the same number. For the media collection, an image uploaded for one of
 * those rows (its `seq` still NULL: the upload put the row in the outbox) is published
 * with the same number. Answers the buckets it wrote into.
 */
function collectionSql(m: Model, c: Collection, keys: string[], seq: bigint): string {
  const k = captureFn(m, 'k', c.name);
  const b = captureFn(m, 'b', c.name);
  const items = s(m, 'items');
  const images = c.media
    ? `,
img AS (
  UPDATE ${s(m, 'images')} SET seq = $<seq> WHERE coll = $<coll> AND row_key = ANY ($<keys>::text[]) AND seq IS NULL)`
    : '';
  return pgp.as.format(
    `WITH cur AS (
  SELECT DISTINCT ${k}(r) AS row_key, bk
    FROM unnest($<keys>::text[]) q(key) JOIN ${c.table} r ON ${keyMatch(c, 'r', 'q.key')}, unnest(${b}(r)) bk)${images},
gone AS (
  UPDATE ${items} i SET seq = $<seq>, deleted = true, deleted_at = now()
   WHERE i.coll = $<coll> AND i.row_key = ANY ($<keys>::text[]) AND NOT i.deleted
     AND NOT EXISTS (SELECT 1 FROM cur WHERE cur.row_key = i.row_key AND cur.bk = i.bucket)
   RETURNING i.bucket),
put AS (
  INSERT INTO ${items} (coll, row_key, bucket, seq) SELECT $<coll>, row_key, bk, $<seq> FROM cur
  ON CONFLICT (coll, row_key, bucket) DO UPDATE SET seq = excluded.seq, deleted = false, deleted_at = NULL
  RETURNING bucket)
SELECT bucket FROM gone UNION SELECT bucket FROM put`,
    { keys, seq: seq.toString(), coll: c.name },
  );
}

/**
 * The indexer: turns the outbox (`changes`, appended by the capture triggers in the ERP's
 * own transactions) into items, in batches.
 *
 * A batch, in one transaction: take the index lock (batches of every process run one at a
 * time and commit in number order), delete up to `batchRows` outbox entries (those whose
 * transactions have committed: the others are invisible and stay), take the next batch
 * number, and bring the items of those rows up to date. Nothing here waits for anyone
 * else's transaction: an entry is consumed as soon as its transaction commits, and the rows
 * are read as they are then. An entry of a transaction still open is read by a later batch;
 * one that rolls back never becomes visible.
 *
 * Why reading the rows "as they are now" loses nothing: every committed change has an entry
 * that is either still in the outbox or was consumed by a batch that read the rows after
 * that change committed (its snapshot came after the entry's). A row changed twice may be
 * indexed twice; each time with its newest committed state, under a higher number.
 */
export class Indexer extends EventEmitter<IndexerEvents> {
  private waiters: { resolve: (seq: bigint) => void; reject: (err: unknown) => void }[] = [];
  private busy = false;
  private stopped = false;
  private readonly deps: ReadonlySet<string>;
  /** outbox entries consumed since the last VACUUM of the outbox, and when that was */
  private consumed = 0;
  private vacuumedAt = 0;
  private vacuumRefused = false;
  /** outbox entries consumed since the items' statistics were last taken, and when that was */
  private unanalyzed = 0;
  private analyzedAt = -Infinity;
  /** failed runs since the last success, and when one was last logged */
  private failures = 0;
  private failureLoggedAt = -Infinity;

  constructor(
    private readonly db: Db,
    private readonly model: Model,
    private readonly log: Logger,
    private readonly batchRows = 5000,
  ) {
    super();
    this.deps = new Set(model.dependencyTables.map((d) => d.key));
  }

  /**
   * Indexes until the outbox is empty. Resolves with a batch number that covers every change
   * committed before the call (a pull caught up with a watermark above it holds them).
   * Calls during a run are served by one more run, started after it.
   */
  flush(): Promise<bigint> {
    if (this.stopped) return Promise.reject(new Error('the indexer is stopped'));
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      if (!this.busy) void this.loop();
    });
  }

  /** Waits for a run in flight; later calls are refused (the pool is about to close). */
  async stop(): Promise<void> {
    this.stopped = true;
    while (this.busy) await new Promise((r) => setTimeout(r, 5));
  }

  private async loop(): Promise<void> {
    this.busy = true;
    try {
      while (this.waiters.length > 0) {
        // everyone waiting now called before this run started: its first batch reads after their commits
        const waiting = this.waiters.splice(0);
        try {
          let report: BatchReport;
          do {
            report = await this.batch();
            this.consumed += report.entries;
            this.unanalyzed += report.entries;
          } while (report.entries >= this.batchRows && !this.stopped);
          for (const w of waiting) w.resolve(report.seq);
          if (this.failures > 0) this.log.info({ failures: this.failures }, 'indexing recovered: the outbox is being drained again');
          this.failures = 0;
          await this.vacuum();
          await this.analyze();
        } catch (err) {
          for (const w of waiting) w.reject(err);
          this.failed(err);
        }
      }
    } finally {
      this.busy = false;
    }
  }

  /**
   * A failed run leaves its entries in the outbox (the transaction rolled back) and the next
   * poll tries again. Said at once, then at most every 30 s with the count, so a lasting
   * failure (a table the config names, dropped) does not log every poll.
   */
  private failed(err: unknown): void {
    this.failures++;
    if (this.stopped || performance.now() - this.failureLoggedAt < 30_000) return;
    this.failureLoggedAt = performance.now();
    this.log.warn({ err, failures: this.failures }, 'indexing failed: the changes stay in the outbox and are retried at every poll');
  }

  /**
   * The outbox is a queue: every entry is deleted soon after it is written, and the doorbell
   * reads it every few milliseconds, through the dead rows until a vacuum removes them.
   * Autovacuum comes at most once a minute (and never in the embedded PGlite), so the
   * indexer vacuums it itself, at most once a second, after at least 1,000 entries. A role
   * that may not (not the table's owner) leaves it to autovacuum, said once.
   */
  private async vacuum(): Promise<void> {
    if (this.consumed < 1000 || this.vacuumRefused || this.stopped || performance.now() - this.vacuumedAt < 1000) return;
    this.consumed = 0;
    this.vacuumedAt = performance.now();
    try {
      await this.db.none(`VACUUM ${s(this.model, 'changes')}`);
    } catch (err) {
      this.vacuumRefused = true;
      this.log.info({ err: (err as Error).message }, 'the outbox cannot be vacuumed by this role: autovacuum keeps it (tune it, or run the server as the owner of fieldsync\'s schema)');
    }
  }

  /**
   * The items' statistics, after a large change: seeding, an install's backfill or an ERP
   * import writes hundreds of thousands of items through the indexer, and until autovacuum
   * next analyzes them (up to a minute; never in PGlite) the planner believes the table is
   * as small as it was, and reads a whole collection's items where it should look up a few
   * (seen: 40 ms instead of 2 per batch). At most once a minute, after 10,000 entries.
   */
  private async analyze(): Promise<void> {
    if (this.unanalyzed < 10_000 || this.stopped || performance.now() - this.analyzedAt < 60_000) return;
    this.unanalyzed = 0;
    this.analyzedAt = performance.now();
    try {
      await this.db.none(`ANALYZE ${s(this.model, 'items')}`);
    } catch (err) {
      this.log.info({ err: (err as Error).message }, 'the items cannot be analyzed by this role: autovacuum keeps their statistics');
    }
  }

  /** One batch (see the class comment). */
  private async batch(): Promise<BatchReport> {
    const m = this.model;
    // one transaction in two round trips (with work or without), driven by hand like a push:
    // the batch's latency is part of every change's way to the devices
    const report = await this.db.task('bg:index', async (t) => {
      let open = false;
      try {
        open = true;
        const results = await t.multi<{ coll: string; keys: string[] | null; every: boolean; n: number; seq: string; epoch: number }>(
          pgp.as.format(
            `BEGIN;
             SELECT pg_advisory_xact_lock($<lock>);
             WITH d AS (DELETE FROM ${s(m, 'changes')} WHERE ctid IN (SELECT ctid FROM ${s(m, 'changes')} LIMIT $<limit>) RETURNING coll, row_key)
             SELECT coll, array_agg(DISTINCT row_key) FILTER (WHERE row_key IS NOT NULL) AS keys, bool_or(row_key IS NULL) AS every, count(*)::int AS n
               FROM d GROUP BY coll;
             SELECT seq::text AS seq, epoch FROM ${s(m, 'state')}`,
            { lock: INDEX_LOCK, limit: this.batchRows },
          ),
        );
        const taken = results[2]!;
        const state = results[3]![0]!;
        const current = BigInt(state.seq);
        if (taken.length === 0) {
          await t.none('COMMIT');
          open = false;
          return { seq: current, entries: 0 };
        }
        // read under the lock: the next number is ours
        const seq = current + 1n;
        const next = seq.toString();
        // TRUNCATE of a synced table (the marker's key names the collection): the sync epoch
        // moves (every cursor is void) and the collection's items and images go, before this
        // batch indexes what was written after it
        const truncated = taken.find((e) => e.coll === TRUNCATE_MARKER)?.keys ?? [];
        const statements = [pgp.as.format(`UPDATE ${s(m, 'state')} SET seq = $1${truncated.length > 0 ? ', epoch = epoch + 1, changed_at = now()' : ''}`, [next])];
        if (truncated.length > 0) {
          statements.push(
            pgp.as.format(`DELETE FROM ${s(m, 'items')} WHERE coll = ANY ($1::text[])`, [truncated]),
            pgp.as.format(
              `WITH gone AS (DELETE FROM ${s(m, 'images')} WHERE coll = ANY ($1::text[]) RETURNING key, coll, row_key)
               INSERT INTO ${s(m, 'media_garbage')} (prefix, coll, row_key) SELECT key, coll, row_key FROM gone
               ON CONFLICT (prefix) DO UPDATE SET replaced_at = now()`,
              [truncated],
            ),
          );
        }
        /** the collection (or dependency table) whose buckets each statement answers, in order ('': none) */
        const answers: { coll: string; marker?: true }[] = statements.map(() => ({ coll: '' }));
        let entries = 0;
        for (const e of taken) {
          entries += e.n;
          const c = m.collections.get(e.coll);
          if (c) {
            if (e.keys) {
              statements.push(collectionSql(m, c, e.keys, seq));
              answers.push({ coll: c.name });
            }
            // a truncated child table: every parent goes out again (with no nested rows); after
            // the keyed rows of the same batch, which are indexed as they are now
            if (e.every) {
              statements.push(pgp.as.format(`WITH u AS (UPDATE ${s(m, 'items')} SET seq = $1 WHERE coll = $2 AND NOT deleted RETURNING bucket) SELECT DISTINCT bucket FROM u`, [next, c.name]));
              answers.push({ coll: c.name });
            }
          } else if (this.deps.has(e.coll)) {
            // a table the parameter queries read changed: one marker item per batch moves its head
            statements.push(pgp.as.format(`INSERT INTO ${s(m, 'items')} (coll, row_key, bucket, seq) VALUES ($1, $2, '@dep', $2) ON CONFLICT DO NOTHING`, [e.coll, next]));
            answers.push({ coll: e.coll, marker: true });
          }
          // anything else (a TRUNCATE marker, done above; a collection no longer configured): consumed
        }
        const written = await t.multi<{ bucket: string }>([...statements, 'COMMIT'].join(';\n'));
        open = false;
        const buckets = new Set<string>();
        const collections = new Set<string>();
        // as the heads' scan would find them: a collection counts when an item of it was written
        answers.forEach(({ coll, marker }, i) => {
          if (coll === '' || (!marker && written[i]!.length === 0)) return;
          collections.add(coll);
          for (const r of written[i]!) buckets.add(r.bucket);
        });
        const batch: Batch = { seq, epoch: state.epoch + (truncated.length > 0 ? 1 : 0), buckets: [...buckets], collections: [...collections] };
        return { seq, entries, batch };
      } finally {
        if (open) await t.none('ROLLBACK').catch(() => undefined); // never hand back a connection mid-transaction
      }
    });
    if (report.batch) this.emit('indexed', report.batch);
    return { seq: report.seq, entries: report.entries };
  }
}
