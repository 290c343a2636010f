import type { ColumnSet } from 'pg-promise';
import { pgp, type Db } from '../db/pg.js';
import type { Model } from '../model/model.js';
import type { Logger } from '../observability/logger.js';

export interface AuditEntry {
  at: Date;
  /** the principal's user id (text: ERP user ids need not be numbers) */
  userId: string;
  deviceId: string;
  mutationId: string;
  type: string;
  status: 'applied' | 'duplicate' | 'rejected';
  code: string | null;
  durationMs: number;
}

/** The columns of `<schema>.audit`, in fieldsync's own schema. */
function auditColumns(schema: string): ColumnSet {
  return new pgp.helpers.ColumnSet(
    [
      'at',
      { name: 'user_id', prop: 'userId' },
      { name: 'device_id', prop: 'deviceId' },
      { name: 'mutation_id', prop: 'mutationId' },
      'type',
      'status',
      'code',
      { name: 'duration_ms', prop: 'durationMs' },
    ],
    { table: new pgp.helpers.TableName({ table: 'audit', schema }) },
  );
}

/**
 * The audit trail of offline writes, kept off the request path: entries are buffered and
 * written in multi-row INSERTs every `flushMs` (or at `batch` entries). A failed write
 * keeps its entries for the next try; stop() writes what is left, retrying, so a
 * graceful shutdown loses nothing.
 */
export class AuditLog {
  private buffer: AuditEntry[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private stopped = false;
  private readonly columns: ColumnSet;

  constructor(
    private readonly db: Db,
    model: Pick<Model, 'schema'>,
    private readonly log: Logger,
    private readonly flushMs = 1000,
    private readonly batch = 1000,
  ) {
    this.columns = auditColumns(model.schema);
  }

  record(entries: AuditEntry[]): void {
    this.buffer.push(...entries);
    if (this.buffer.length >= this.batch) void this.flush();
    else if (!this.timer && !this.stopped) this.timer = setTimeout(() => void this.flush(), this.flushMs);
  }

  get pending(): number {
    return this.buffer.length;
  }

  /**
   * Writes everything buffered now (single-flight: a call during a write shares it, and the
   * write takes what was recorded meanwhile too).
   */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    // cleared in a later tick (an async run's finally): never before it is stored here
    this.flushing ??= this.drain().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async drain(): Promise<void> {
    try {
      while (this.buffer.length > 0) {
        const chunk = this.buffer.slice(0, this.batch);
        await this.db.task('bg:audit', (t) => t.none(pgp.helpers.insert(chunk, this.columns)));
        this.buffer.splice(0, chunk.length);
      }
    } catch (err) {
      this.log.warn({ err, pending: this.buffer.length }, 'audit write failed; will retry');
      if (!this.stopped) this.timer = setTimeout(() => void this.flush(), this.flushMs * 5);
      throw err;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (let attempt = 1; this.buffer.length > 0 || this.flushing; attempt++) {
      try {
        await (this.flushing ?? this.flush());
      } catch (err) {
        if (attempt >= 5) {
          this.log.error({ err, lost: this.buffer.length }, 'audit entries could not be written at shutdown');
          return;
        }
        await new Promise((r) => setTimeout(r, 200 * attempt));
      }
    }
    clearTimeout(this.timer);
  }
}
