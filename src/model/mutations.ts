import type { z } from 'zod';
import type { Principal } from '../auth/principal.js';

/**
 * The interface a sync config's mutation handlers implement (README "Writing a mutation
 * handler"). fieldsync owns everything generic about an offline write: the exactly-once
 * ledger, the order of a batch, retries on serialization failures, the per-mutation
 * result. A handler owns the effect on the company's tables, as a plan:
 *
 *   reads(principal, payload)   SQL statements run in the mutation's transaction, in the
 *                               same round trip as the ledger insert; lock what the
 *                               decision depends on (FOR UPDATE / FOR SHARE)
 *   decide(principal, payload, rows, ctx)
 *                               pure: the rows each read returned -> the result and the
 *                               writes (SQL statements run in the same round trip as the
 *                               ledger update and COMMIT); throw Rejected(code) to refuse
 *
 * Two round trips per mutation, and the rules testable without a database. Build SQL with
 * pg-promise formatting (`pgp.as.format`), never by concatenating values.
 */
export interface MutationContext {
  deviceId: string;
  /** when the device made the mutation (never later than now) */
  createdAt: Date;
}

export interface Decision {
  result: unknown;
  /** SQL statements, in order */
  writes: string[];
}

export interface MutationHandler<S extends z.ZodType = z.ZodType> {
  /** roles that may send it */
  roles: readonly string[];
  /** the payload's schema: a payload that fails it is rejected with invalid_payload */
  payload: S;
  /** the rejection codes decide() may throw, with their meaning (served in the docs) */
  rejections: Readonly<Record<string, string>>;
  /**
   * Unique constraints the writes can run into when a concurrent transaction got there
   * first (reads cannot lock a row that does not exist yet): constraint name -> the
   * rejection code to answer. Others answer the generic `conflict`.
   */
  conflicts?: Readonly<Record<string, string>>;
  reads(p: Principal, payload: z.output<S>): string[];
  decide(p: Principal, payload: z.output<S>, reads: unknown[][], ctx: MutationContext): Decision;
}

/** Identity: gives a handler its types. */
export function defineMutation<S extends z.ZodType>(handler: MutationHandler<S>): MutationHandler<S> {
  return handler;
}

/** A business rejection: final for the mutation id, recorded in the ledger, effects undone. */
export class Rejected extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'Rejected';
  }
}
