import { EventEmitter } from 'node:events';
import { s, type Model } from '../model/model.js';
import type { Logger } from '../observability/logger.js';
import { pollQuery, type Db } from './pg.js';

export interface DoorbellEvents {
  /** the watermark moved: every indexing batch below it has committed */
  watermark: [bigint];
  /** the outbox holds committed changes not indexed yet */
  pending: [];
}

export interface DoorbellOptions {
  pollMs: number;
  log: Logger;
  /**
   * Where the consumer is (the heads' watermark): the doorbell rings exactly while the
   * database is ahead of it. A batch of this process moves the heads itself, so its
   * watermark rings nothing; a failed refresh is retried at the next poll.
   */
  behind: () => bigint;
}

/**
 * The change doorbell: every pollMs, one statement reads the last batch number and
 * whether the outbox holds anything committed. It rings `pending` for the indexer (a batch
 * of another process may take it first: that is fine) and `watermark` when a committed
 * batch is ahead of the consumer (`behind`): another process's, or one whose refresh failed.
 *
 * Why polling and not LISTEN/NOTIFY: a NOTIFY from the capture triggers made every
 * writing transaction take PostgreSQL's notification queue lock at commit, which
 * serialised the ERP's commits (75% of busy backends waited on it). Polling costs one
 * trivial statement per interval per process, works behind PgBouncer and in the
 * embedded database, and puts nothing on the ERP's write path.
 */
export class Doorbell extends EventEmitter<DoorbellEvents> {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private last: bigint | undefined;
  private readonly sql: string;

  constructor(
    private readonly db: Db,
    model: Pick<Model, 'schema'>,
    private readonly opts: DoorbellOptions,
  ) {
    super();
    this.sql = `SELECT (seq + 1)::text AS w, EXISTS (SELECT 1 FROM ${s(model, 'changes')}) AS pending FROM ${s(model, 'state')}`;
  }

  /** The last watermark seen (undefined before the first poll). */
  get watermark(): bigint | undefined {
    return this.last;
  }

  async start(): Promise<void> {
    await this.poll();
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.poll().finally(() => this.schedule()), this.opts.pollMs);
  }

  private async poll(): Promise<void> {
    try {
      const [row] = await pollQuery<{ w: string; pending: boolean }>(this.db, this.sql);
      const { w, pending } = row!;
      const next = BigInt(w);
      if (pending) this.emit('pending');
      const ring = next > this.opts.behind();
      this.last = next;
      if (ring) this.emit('watermark', next);
    } catch (err) {
      if (!this.stopped) this.opts.log.warn({ err }, 'watermark poll failed');
    }
  }
}
