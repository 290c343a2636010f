import { EventEmitter } from 'node:events';
import type { IConnected } from 'pg-promise';
import type pg from 'pg-promise/typescript/pg-subset.js';
import { z } from 'zod';
import type { Logger } from '../observability/logger.js';
import type { Db, Repos } from './pg.js';

export const CHANNEL = 'fieldsync';

/**
 * NOTIFY payload written by the capture triggers (sync_ring): collection and the buckets it touched.
 * Bucket '*' (from sync_bump_epoch, on TRUNCATE) means every bucket.
 */
const ringPayload = z.object({ c: z.string().min(1), b: z.array(z.string().min(1)).min(1) });
export type Ring = { collection: string; buckets: string[] };

export interface DoorbellEvents {
  /** a committed change named these buckets (LISTEN path; a hint, not the truth) */
  change: [Ring];
  /** the watermark moved: every transaction below it has finished */
  watermark: [bigint];
  listening: [];
  disconnected: [Error];
}

export interface DoorbellOptions {
  /** false where LISTEN/NOTIFY cannot work (embedded PGlite, PgBouncer in transaction mode) */
  listen: boolean;
  pollMs: number;
  log: Logger;
}

/**
 * The change doorbell. A dedicated connection LISTENs on 'fieldsync' and re-subscribes
 * after a drop (backoff up to 5 s); independently, the watermark is polled, which is the
 * whole doorbell where NOTIFY does not cross connections, and a safety net elsewhere.
 * Consumers treat both as "something may have changed" and read the truth from tables.
 */
export class Doorbell extends EventEmitter<DoorbellEvents> {
  private conn: IConnected<Repos, pg.IClient> | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryMs = 100;
  private stopped = false;
  private last: bigint | undefined;

  constructor(
    private readonly db: Db,
    private readonly opts: DoorbellOptions,
  ) {
    super();
  }

  get isListening(): boolean {
    return this.conn !== undefined;
  }

  /** The last watermark seen (undefined before the first poll). */
  get watermark(): bigint | undefined {
    return this.last;
  }

  async start(): Promise<void> {
    await this.poll();
    if (this.opts.listen) await this.subscribe();
    this.schedulePoll();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.pollTimer);
    clearTimeout(this.retryTimer);
    const conn = this.conn;
    this.conn = undefined;
    if (conn) await conn.done(true);
  }

  private schedulePoll(): void {
    if (this.stopped) return;
    this.pollTimer = setTimeout(() => {
      void this.poll().finally(() => this.schedulePoll());
    }, this.opts.pollMs);
  }

  private async poll(): Promise<void> {
    try {
      const { w } = await this.db.task('bg:watermark', (t) => t.one<{ w: string }>('SELECT sync_watermark()::text AS w'));
      const next = BigInt(w);
      if (this.last === undefined || next > this.last) {
        this.last = next;
        this.emit('watermark', next);
      }
    } catch (err) {
      if (!this.stopped) this.opts.log.warn({ err }, 'watermark poll failed');
    }
  }

  private async subscribe(): Promise<void> {
    if (this.stopped) return;
    try {
      const conn = await this.db.connect({ direct: true, onLost: (err) => this.lost(err) });
      if (this.stopped) {
        await conn.done(true); // stop() ran while we were connecting
        return;
      }
      conn.client.on('notification', (msg) => this.ring(msg.payload));
      this.conn = conn;
      await conn.none('LISTEN $1:name', [CHANNEL]);
      this.retryMs = 100;
      this.opts.log.info({ channel: CHANNEL }, 'doorbell listening');
      this.emit('listening');
      // Changes committed while we were not listening were not announced: the next
      // watermark poll covers them, so poll now rather than in pollMs.
      await this.poll();
    } catch (err) {
      this.lost(err as Error);
    }
  }

  private lost(err: Error): void {
    this.conn = undefined;
    if (this.stopped) return;
    this.opts.log.warn({ err: err.message, retryMs: this.retryMs }, 'doorbell connection lost; re-subscribing');
    this.emit('disconnected', err);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.subscribe(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, 5000);
  }

  private ring(payload: string | undefined): void {
    let decoded: unknown;
    try {
      decoded = JSON.parse(payload ?? '');
    } catch {
      decoded = undefined;
    }
    const parsed = ringPayload.safeParse(decoded);
    if (!parsed.success) {
      this.opts.log.warn({ payload }, 'ignoring malformed doorbell payload');
      return;
    }
    this.emit('change', { collection: parsed.data.c, buckets: parsed.data.b });
  }
}
