import { z } from 'zod';
import { epochMs, isoDateTime } from './values.js';

/**
 * The push contract: POST /v1/sync/push {deviceId, mutations: [...]}.
 * Each mutation is {id: uuid made by the device, type, payload, createdAt}; the answer
 * has one result per mutation, in order. The types and their payloads are the sync
 * config's mutation handlers (src/model/mutations.ts; the demo's in
 * src/demo/mutations.ts): a payload that does not fit its handler's schema is a
 * per-mutation `rejected` with code `invalid_payload`, never a 400 for the batch.
 */
export const MAX_MUTATIONS = 500;

export const pushBody = z
  .strictObject({
  deviceId: z.string().trim().min(1).max(128),
  mutations: z
    .array(
      z.strictObject({
        id: z.uuid(),
        type: z.string().min(1).max(64),
        payload: z.unknown(),
        /** when the device made it: epoch ms or ISO 8601 */
        createdAt: z.union([epochMs, isoDateTime]).optional(),
      }),
    )
    .min(1)
    .max(MAX_MUTATIONS)
    .refine((ms) => new Set(ms.map((m) => m.id)).size === ms.length, 'mutation ids must be unique within a request'),
  })
  .meta({ id: 'PushRequest' });
export type PushBody = z.output<typeof pushBody>;

/**
 * Why a mutation was rejected, for any handler: machine-readable and stable. Every
 * rejection but retry_later is final for that mutation id (recorded in the ledger, its
 * effects undone); to try again with other data, the device makes a new mutation with a
 * new id. Handlers add their own codes (MutationHandler.rejections).
 */
export const genericRejections = {
  invalid_payload: "the payload does not match the type's schema (details list each path)",
  unknown_type: 'no such mutation type (details.types lists the server\'s)',
  forbidden: "the caller's role may not make this mutation",
  id_conflict: 'this mutation id was already used with another payload or by another user',
  conflict: 'a write of the mutation conflicts with existing data (a unique key taken by another write meanwhile)',
  retry_later: 'the database was too busy (repeated serialization failures or deadlocks); nothing was recorded: send it again with the same id',
} as const;
export type GenericRejection = keyof typeof genericRejections;

export const mutationError = z
  .object({
    code: z.string().meta({ description: 'a generic code (invalid_payload, unknown_type, forbidden, id_conflict, conflict, retry_later) or one of the mutation type\'s own' }),
    message: z.string(),
    details: z.unknown().optional(),
  })
  .meta({ id: 'MutationError' });
export type MutationError = z.output<typeof mutationError>;

export const mutationResult = z
  .object({
    id: z.uuid(),
    status: z.enum(['applied', 'duplicate', 'rejected']).meta({ description: 'all three are final, except a rejection with code retry_later' }),
    firstStatus: z.enum(['applied', 'rejected']).optional().meta({ description: 'for a duplicate: what the first attempt was (its result or error follows)' }),
    result: z.unknown().optional().meta({ description: "the handler's result (applied, or a duplicate of an applied one)" }),
    error: mutationError.optional(),
  })
  .meta({ id: 'MutationResult' });
export type MutationResult = z.output<typeof mutationResult>;

export const pushAnswer = z
  .object({
    results: z.array(mutationResult).meta({ description: 'one per mutation, in the order sent' }),
    visibleAfter: z
      .string()
      .regex(/^(0|[1-9][0-9]{0,18})$/)
      .nullable()
      .meta({ description: 'the batch that took the applied writes: they are in your replica once a pull answers hasMore false with a watermark above it (null: none applied, or they come with a later batch)' }),
  })
  .meta({ id: 'PushAnswer' });
export type PushAnswer = z.output<typeof pushAnswer>;

export interface RejectionDoc {
  code: string;
  meaning: string;
  /** the mutation types that may answer it (every type for a generic code) */
  types: string[];
}

/**
 * Every rejection code a server with these handlers may answer, generic ones first, for
 * the docs (README, OpenAPI). A code several handlers declare is listed once, with the
 * first meaning given.
 */
export function rejectionCodes(mutations: Readonly<Record<string, { rejections: Readonly<Record<string, string>> }>>): RejectionDoc[] {
  const types = Object.keys(mutations);
  const docs = new Map<string, RejectionDoc>(Object.entries(genericRejections).map(([code, meaning]) => [code, { code, meaning, types: [...types] }]));
  for (const [type, handler] of Object.entries(mutations)) {
    for (const [code, meaning] of Object.entries(handler.rejections)) {
      const doc = docs.get(code);
      if (!doc) docs.set(code, { code, meaning, types: [type] });
      else if (!Object.hasOwn(genericRejections, code)) doc.types.push(type);
    }
  }
  return [...docs.values()];
}
