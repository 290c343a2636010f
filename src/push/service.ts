import { createHash } from 'node:crypto';
import { stringify } from 'safe-stable-stringify';
import type { Principal } from '../auth/principal.js';
import type { Db, Tx } from '../db/pg.js';
import { violations } from '../errors.js';
import type { Metrics } from '../observability/metrics.js';
import { payloads, type MutationResult, type MutationType, type PushBody } from '../protocol/mutations.js';
import type { AuditLog } from './audit.js';
import { cancelOrder, createOrder, updateClientContact, updateOrderNotes, type MutationContext } from './handlers.js';
import { Rejected } from './rejection.js';

type Handler = (t: Tx, p: Principal, payload: never, ctx: MutationContext) => Promise<unknown>;

/** Mutation type -> roles allowed, and the handler. */
const handlers: Record<MutationType, { roles: readonly Principal['role'][]; run: Handler }> = {
  'order.create': { roles: ['salesman', 'client_app', 'admin', 'manager'], run: createOrder as Handler },
  'order.cancel': { roles: ['salesman', 'client_app', 'admin', 'manager'], run: cancelOrder as Handler },
  'order.update_notes': { roles: ['salesman', 'client_app', 'admin', 'manager'], run: updateOrderNotes as Handler },
  'client.update_contact': { roles: ['salesman', 'client_app', 'admin', 'manager'], run: updateClientContact as Handler },
};

/** SQLSTATEs worth retrying the whole mutation for. */
const RETRYABLE = new Set(['40001', '40P01']);
const ATTEMPTS = 4;

export interface PushAnswer {
  results: MutationResult[];
  /** the device's writes are in its replica once a pull has caught up with a watermark above this */
  visibleAfter: string | null;
}

type Mutation = PushBody['mutations'][number];

/**
 * Applies offline writes exactly once (DESIGN §4.4), one transaction per mutation, in
 * the order sent; a rejected one never blocks the ones after it.
 *
 * Why the ledger row is inserted FIRST, in the same transaction as the effect: a second
 * request with the same mutation id (a retry after a lost reply, another device, a replay
 * after reinstall) blocks on the ledger's primary key until the first transaction ends,
 * then finds its row and answers `duplicate` with the first result; it can never apply
 * the effect a second time, and it never sees a half-done first attempt. If the first
 * rolls back (a crash, a retryable failure), the second simply goes ahead.
 *
 * The effect runs behind a savepoint: a business rejection undoes the effect but keeps
 * the ledger row, so the rejection is as final as a success. Serialization failures and
 * deadlocks restart the whole mutation, a bounded number of times.
 */
export class PushService {
  constructor(
    private readonly db: Db,
    private readonly audit: AuditLog,
    private readonly metrics: Metrics,
  ) {}

  async push(p: Principal, body: PushBody): Promise<PushAnswer> {
    const results: MutationResult[] = [];
    const audit = [];
    let visibleAfter: bigint | undefined;
    for (const m of body.mutations) {
      const started = performance.now();
      const { result, tx } = await this.applyWithRetries(p, body.deviceId, m);
      results.push(result);
      if (tx !== undefined && (visibleAfter === undefined || tx > visibleAfter)) visibleAfter = tx;
      this.metrics.pushResults.inc({ type: m.type in handlers ? m.type : 'unknown', status: result.status });
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
    return { results, visibleAfter: visibleAfter?.toString() ?? null };
  }

  private async applyWithRetries(p: Principal, deviceId: string, m: Mutation): Promise<{ result: MutationResult; tx?: bigint }> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.apply(p, deviceId, m);
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code && RETRYABLE.has(code) && attempt < ATTEMPTS) {
          await new Promise((r) => setTimeout(r, 5 * 2 ** attempt * Math.random()));
          continue;
        }
        if (code && RETRYABLE.has(code)) {
          return { result: { id: m.id, status: 'rejected', error: { code: 'retry_later', message: 'the database was too busy; send it again (same id)' } } };
        }
        throw err;
      }
    }
  }

  private apply(p: Principal, deviceId: string, m: Mutation): Promise<{ result: MutationResult; tx?: bigint }> {
    const hash = createHash('sha256').update(stringify({ type: m.type, payload: m.payload }) ?? '').digest('base64url');
    return this.db.tx('push', async (t) => {
      const fresh = await t.oneOrNone(
        `INSERT INTO sync_mutations (id, user_id, device_id, type, payload_hash, status, result)
         VALUES ($1, $2, $3, $4, $5, 'applied', '{}') ON CONFLICT (id) DO NOTHING RETURNING id`,
        [m.id, p.userId, deviceId, m.type.slice(0, 64), hash],
      );
      if (!fresh) {
        const first = await t.one<{ user_id: number; payload_hash: string; status: 'applied' | 'rejected'; result: Partial<MutationResult>; tx: string | null }>(
          'SELECT user_id, payload_hash, status, result, tx::text AS tx FROM sync_mutations WHERE id = $1',
          [m.id],
        );
        if (first.user_id !== p.userId || first.payload_hash !== hash) {
          return { result: { id: m.id, status: 'rejected', error: { code: 'id_conflict', message: 'this mutation id was already used with another payload' } } };
        }
        const tx = first.tx === null ? undefined : BigInt(first.tx);
        return { result: { id: m.id, status: 'duplicate', firstStatus: first.status, ...first.result }, ...(tx !== undefined && { tx }) };
      }

      let stored: Pick<MutationResult, 'result' | 'error'>;
      let status: 'applied' | 'rejected';
      try {
        const value = await t.tx('effect', (s) => this.effect(s, p, deviceId, m));
        stored = { result: value };
        status = 'applied';
      } catch (err) {
        if (!(err instanceof Rejected)) throw err;
        stored = { error: { code: err.code, message: err.message, ...(err.details !== undefined && { details: err.details }) } };
        status = 'rejected';
      }
      const { tx } = await t.one<{ tx: string }>(
        `UPDATE sync_mutations SET status = $2, result = $3, tx = CASE WHEN $2 = 'applied' THEN pg_current_xact_id() END
          WHERE id = $1 RETURNING pg_current_xact_id()::text AS tx`,
        [m.id, status, stored],
      );
      return { result: { id: m.id, status, ...stored }, ...(status === 'applied' && { tx: BigInt(tx) }) };
    });
  }

  private async effect(t: Tx, p: Principal, deviceId: string, m: Mutation): Promise<unknown> {
    if (!(m.type in handlers)) throw new Rejected('unknown_type', `unknown mutation type ${m.type}`, { types: Object.keys(handlers) });
    const type = m.type as MutationType;
    const h = handlers[type];
    if (!h.roles.includes(p.role)) throw new Rejected('forbidden', `role ${p.role} may not ${type}`);
    const parsed = payloads[type].safeParse(m.payload);
    if (!parsed.success) throw new Rejected('invalid_payload', `invalid ${type} payload`, violations(parsed.error));
    const created = m.createdAt === undefined ? new Date() : new Date(m.createdAt);
    const ctx: MutationContext = { deviceId, createdAt: created.getTime() > Date.now() ? new Date() : created };
    return h.run(t, p, parsed.data as never, ctx);
  }
}
