import { createHash } from 'node:crypto';
import { stringify } from 'safe-stable-stringify';
import type { Principal } from '../auth/principal.js';
import { pgp, type Db, type Tx } from '../db/pg.js';
import { isDataException, isRetryable, isUniqueConflict } from '../db/errors.js';
import { violations } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { s, type Model } from '../model/model.js';
import { Rejected, type MutationContext, type MutationHandler } from '../model/mutations.js';
import type { Metrics } from '../observability/metrics.js';
import type { Indexer } from '../sync/indexer.js';
import type { GenericRejection, MutationResult, PushAnswer, PushBody } from '../protocol/mutations.js';
import type { AuditLog } from './audit.js';

/** Attempts of a mutation that meets serialization failures or deadlocks. */
const ATTEMPTS = 4;

/** A mutation answered rejected with one of fieldsync's own codes, not applied. */
function rejected(m: { id: string }, code: GenericRejection, message: string): { result: MutationResult; applied: boolean } {
  return { result: { id: m.id, status: 'rejected', error: { code, message } }, applied: false };
}

/** A mutation not applied this time, to be sent again with the same id. */
const later = (m: { id: string }, why = 'not applied this time') => rejected(m, 'retry_later', `${why}; send it again (same id)`);

/** A rejection with one of fieldsync's own codes, worded in one place. */
function generic(code: GenericRejection, message: string, details?: unknown): Rejected {
  return new Rejected(code, message, details);
}

export type { PushAnswer };

type Mutation = PushBody['mutations'][number];

type Outcome =
  | { status: 'applied'; stored: Pick<MutationResult, 'result'>; writes: string[] }
  | { status: 'rejected'; stored: Pick<MutationResult, 'error'> };

function rejection(err: Rejected): Outcome {
  return { status: 'rejected', stored: { error: { code: err.code, message: err.message, ...(err.details !== undefined && { details: err.details }) } } };
}

interface LedgerRow {
  user_id: string;
  payload_hash: string;
  status: 'applied' | 'rejected';
  result: Partial<MutationResult>;
}

/**
 * Applies offline writes exactly once (DESIGN §4.4), one transaction per mutation, in
 * the order sent; a rejected one never blocks the ones after it. What a mutation does is
 * its handler's (the sync config's `mutations`, src/model/mutations.ts); everything here
 * is generic: the ledger `<schema>.mutations`, ordering, retries, the results.
 *
 * Why the ledger row is inserted FIRST, in the same transaction as the effect: a second
 * request with the same mutation id (a retry after a lost reply, another device, a replay
 * after reinstall) blocks on the ledger's primary key until the first transaction ends,
 * then finds its row and answers `duplicate` with the first result; it can never apply
 * the effect a second time, and it never sees a half-done first attempt. If the first
 * rolls back (a crash, a retryable failure), the second simply goes ahead.
 *
 * The effect runs behind a savepoint: a business rejection undoes the effect but keeps
 * the ledger row, so the rejection is as final as a success. A failure of any other kind
 * rolls the whole transaction back, ledger row included, so a retry starts clean. Serialization failures and
 * deadlocks restart the whole mutation, a bounded number of times.
 */
export class PushService {
  /** the ledger, `<schema>.mutations` */
  private readonly ledger: string;

  constructor(
    private readonly db: Db,
    private readonly model: Pick<Model, 'schema' | 'mutations'>,
    private readonly audit: AuditLog,
    private readonly metrics: Metrics,
    /** writes become visible to pull when the indexer has taken them from the outbox */
    private readonly indexer: Pick<Indexer, 'flush'>,
    private readonly log: Pick<Logger, 'error'>,
  ) {
    this.ledger = s(model, 'mutations');
  }

  async push(p: Principal, body: PushBody): Promise<PushAnswer> {
    const results: MutationResult[] = [];
    const audit = [];
    let wrote = false;
    let failed: unknown;
    for (const m of body.mutations) {
      const started = performance.now();
      const { result, applied } = failed === undefined ? await this.applySafely(p, body.deviceId, m).catch((err: unknown) => ((failed = err), later(m))) : later(m);
      results.push(result);
      wrote ||= applied;
      this.metrics.pushResults.inc({ type: Object.hasOwn(this.model.mutations, m.type) ? m.type : 'unknown', status: result.status });
      audit.push({
        at: new Date(),
        userId: p.userId,
        deviceId: body.deviceId,
        mutationId: m.id,
        type: m.type.slice(0, 64),
        status: result.status,
        code: result.error?.code ?? null,
        durationMs: performance.now() - started,
      });
    }
    this.audit.record(audit);
    if (failed !== undefined) this.log.error({ err: failed, userId: p.userId, deviceId: body.deviceId }, 'push: a mutation failed; it and the rest of the batch were answered retry_later');
    // the batch that indexed every write committed above (concurrent pushes share batches)
    // (the writes are committed: a failing indexer must not turn their answers into a 500;
    // they reach pull with a later batch, and the device's next pull finds them)
    const visibleAfter = wrote ? ((await this.indexer.flush().catch(() => undefined))?.toString() ?? null) : null;
    return { results, visibleAfter };
  }

  /**
   * A mutation whose database write PostgreSQL refused as a value (class 22: a date or
   * number out of range that the payload schema let through) is rejected like an invalid
   * payload: the same payload would fail the same way on every retry. Any other failure
   * (a lost connection, a defect) is thrown: the push answers it and the mutations after it
   * `retry_later`, and every result before it stands (they are committed).
   */
  private async applySafely(p: Principal, deviceId: string, m: Mutation): Promise<{ result: MutationResult; applied: boolean }> {
    try {
      return await this.applyWithRetries(p, deviceId, m);
    } catch (err) {
      if (!isDataException(err)) throw err;
      return rejected(m, 'invalid_payload', `a value does not fit the database: ${(err as Error).message}`);
    }
  }

  private async applyWithRetries(p: Principal, deviceId: string, m: Mutation): Promise<{ result: MutationResult; applied: boolean }> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.apply(p, deviceId, m);
      } catch (err) {
        if (!isRetryable(err)) throw err;
        if (attempt >= ATTEMPTS) return later(m, 'the database was too busy');
        await new Promise((r) => setTimeout(r, 5 * 2 ** attempt * Math.random()));
      }
    }
  }

  /**
   * One mutation, one transaction, driven by hand in two round trips (on a busy server
   * the socket writes to PostgreSQL were the largest cost):
   *   1. BEGIN; insert the ledger row (this waits on a concurrent first attempt); read the
   *      ledger row; SAVEPOINT effect; the plan's reads (locking what the decision needs)
   *   2. the plan's writes, or ROLLBACK TO SAVEPOINT for a rejection; record the outcome
   *      in the ledger; COMMIT
   * The decision between them is the handler's, and pure (src/model/mutations.ts).
   */
  private apply(p: Principal, deviceId: string, m: Mutation): Promise<{ result: MutationResult; applied: boolean }> {
    const hash = createHash('sha256').update(stringify({ type: m.type, payload: m.payload }) ?? '').digest('base64url');
    const checked = this.check(p, m);
    const reads = checked instanceof Rejected ? [] : checked.reads;
    return this.db.task('push', async (t) => {
      let open = false;
      try {
        open = true;
        const first = await t.multi(
          [
            'BEGIN',
            pgp.as.format(
              `INSERT INTO ${this.ledger} (id, user_id, device_id, type, payload_hash, status, result)
               VALUES ($1, $2, $3, $4, $5, 'applied', '{}') ON CONFLICT (id) DO NOTHING RETURNING id`,
              [m.id, p.userId, deviceId, m.type.slice(0, 64), hash],
            ),
            pgp.as.format(`SELECT user_id, payload_hash, status, result FROM ${this.ledger} WHERE id = $1`, [m.id]),
            'SAVEPOINT effect',
            ...reads,
          ].join(';\n'),
        );
        if (first[1]!.length === 0) {
          await t.none('COMMIT');
          open = false;
          return this.answerRepeat(m, p, hash, first[2]![0] as LedgerRow);
        }

        let outcome: Outcome;
        try {
          if (checked instanceof Rejected) throw checked;
          const created = m.createdAt === undefined ? new Date() : new Date(m.createdAt);
          const ctx: MutationContext = { deviceId, createdAt: created.getTime() > Date.now() ? new Date() : created };
          const d = checked.handler.decide(p, checked.payload, first.slice(4), ctx);
          outcome = { status: 'applied', stored: { result: d.result }, writes: d.writes };
        } catch (err) {
          if (!(err instanceof Rejected)) throw err;
          outcome = rejection(err);
        }
        try {
          await this.finish(t, m.id, outcome);
        } catch (err) {
          // A write refused by a key the reads could not see: another transaction inserted
          // it meanwhile (reads cannot lock a row that does not exist yet). Handlers reject
          // what they can see with their own code; the race is the same business outcome,
          // so it is final too, not a 500 the device would retry forever.
          const e = err as { code?: string; constraint?: string };
          if (outcome.status !== 'applied' || !isUniqueConflict(err) || checked instanceof Rejected) throw err;
          const code = e.constraint === undefined ? undefined : checked.handler.conflicts?.[e.constraint];
          outcome = rejection(code ? new Rejected(code, checked.handler.rejections[code] ?? code) : generic('conflict', 'the write conflicts with existing data'));
          await this.finish(t, m.id, outcome);
        }
        open = false;
        return { result: { id: m.id, status: outcome.status, ...outcome.stored }, applied: outcome.status === 'applied' };
      } finally {
        if (open) await t.none('ROLLBACK').catch(() => undefined); // never hand back a connection mid-transaction
      }
    });
  }

  /** Round trip 2: the writes (or the undo of a rejection), the ledger outcome, COMMIT. */
  private async finish(t: Tx, id: string, o: Outcome): Promise<void> {
    const before = o.status === 'applied' ? o.writes : ['ROLLBACK TO SAVEPOINT effect'];
    await t.multi([...before, pgp.as.format(`UPDATE ${this.ledger} SET status = $2, result = $3 WHERE id = $1`, [id, o.status, o.stored]), 'COMMIT'].join(';\n'));
  }

  /**
   * Type, role and payload, checked against the config's handler before the database is
   * touched, and the handler's reads (a handler may reject there already). A failure is
   * still recorded in the ledger.
   */
  private check(p: Principal, m: Mutation): { handler: MutationHandler; payload: unknown; reads: string[] } | Rejected {
    const handlers = this.model.mutations;
    if (!Object.hasOwn(handlers, m.type)) return generic('unknown_type', `unknown mutation type ${m.type}`, { types: Object.keys(handlers) });
    const handler = handlers[m.type]!;
    if (!handler.roles.includes(p.role)) return generic('forbidden', `role ${p.role} may not ${m.type}`);
    const parsed = handler.payload.safeParse(m.payload);
    if (!parsed.success) return generic('invalid_payload', `invalid ${m.type} payload`, violations(parsed.error));
    try {
      return { handler, payload: parsed.data, reads: handler.reads(p, parsed.data) };
    } catch (err) {
      if (err instanceof Rejected) return err;
      throw err;
    }
  }

  /** The answer to a mutation id seen before: duplicate (same user and payload) or id_conflict. */
  private answerRepeat(m: Mutation, p: Principal, hash: string, first: LedgerRow): { result: MutationResult; applied: boolean } {
    if (first.user_id !== p.userId || first.payload_hash !== hash) {
      return rejected(m, 'id_conflict', 'this mutation id was already used with another payload');
    }
    // applied: its writes must be visible by the answer's visibleAfter, like a first answer's
    return { result: { id: m.id, status: 'duplicate', firstStatus: first.status, ...first.result }, applied: first.status === 'applied' };
  }
}
