import { z } from 'zod';

/**
 * The push contract: POST /v1/sync/push {deviceId, mutations: [...]}.
 * Each mutation is {id: uuid made by the device, type, payload, createdAt}; the answer
 * has one result per mutation, in order. Payloads are validated per type; a payload that
 * does not validate is a per-mutation `rejected` with code `invalid_payload`.
 */
export const MAX_MUTATIONS = 500;
export const MAX_LINES = 200;
export const MAX_QTY = 100_000;

const id = z.number().int().positive().max(2 ** 53 - 1);
const money = z.string().regex(/^\d{1,12}(\.\d{1,2})?$/, 'a decimal string such as "12.50"');
const text = (max: number) => z.string().trim().max(max);

export const payloads = {
  'order.create': z.strictObject({
    orderId: z.uuid(),
    clientId: id.optional(), // client_app: defaults to its own client
    warehouseId: id.optional(),
    lines: z
      .array(
        z.strictObject({
          productId: id,
          qty: z.number().int('a whole number of units').positive().max(MAX_QTY),
          note: text(500).optional(),
          /** what the device showed; compared and reported, never used */
          price: money.optional(),
        }),
      )
      .min(1)
      .max(MAX_LINES)
      .refine((ls) => new Set(ls.map((l) => l.productId)).size === ls.length, 'each product at most once per order'),
    requestedDelivery: z.iso.date().optional(),
    notes: text(2000).optional(),
  }),
  'order.cancel': z.strictObject({ orderId: z.uuid(), reason: text(500).optional() }),
  'order.update_notes': z.strictObject({
    orderId: z.uuid(),
    notes: text(2000).nullable().optional(),
    requestedDelivery: z.iso.date().nullable().optional(),
  }),
  'client.update_contact': z
    .strictObject({
      clientId: id,
      phone: z.string().trim().regex(/^\+?[0-9 ()-]{6,20}$/, 'a phone number').optional(),
      email: z.email().max(254).optional(),
      address: text(500).optional(),
    })
    .refine((p) => p.phone !== undefined || p.email !== undefined || p.address !== undefined, 'nothing to update'),
} as const;

export type MutationType = keyof typeof payloads;
export const mutationTypes = Object.keys(payloads) as MutationType[];
export type Payload<T extends MutationType> = z.output<(typeof payloads)[T]>;

export const pushBody = z.strictObject({
  deviceId: z.string().trim().min(1).max(128),
  mutations: z
    .array(
      z.strictObject({
        id: z.uuid(),
        type: z.string().min(1).max(64),
        payload: z.unknown(),
        /** when the device made it: epoch ms or ISO 8601 */
        createdAt: z.union([z.number().int().positive(), z.iso.datetime({ offset: true })]).optional(),
      }),
    )
    .min(1)
    .max(MAX_MUTATIONS)
    .refine((ms) => new Set(ms.map((m) => m.id)).size === ms.length, 'mutation ids must be unique within a request'),
});
export type PushBody = z.output<typeof pushBody>;

/**
 * Why a mutation was rejected: machine-readable, stable, documented in the README.
 * A rejection is final for that mutation id (recorded in the ledger); to try again with
 * other data, the device makes a new mutation with a new id.
 */
export const rejectionCodes = {
  invalid_payload: 'the payload does not match the type\'s schema (details list each path)',
  unknown_type: 'no such mutation type',
  forbidden: 'the caller\'s role may not make this mutation',
  id_conflict: 'this mutation id was already used with another payload or by another user',
  client_not_found: 'no such client',
  client_not_yours: 'the client belongs to another salesman (or is not the app\'s own client)',
  client_inactive: 'the client is deactivated',
  unknown_product: 'one or more products do not exist (details.productIds)',
  product_inactive: 'one or more products are not sold any more (details.productIds)',
  warehouse_not_found: 'no such warehouse',
  insufficient_stock: 'not enough free stock for some lines (details.lines: productId, requested, available)',
  order_exists: 'an order with this orderId exists (made by another mutation)',
  order_not_found: 'no such order visible to the caller',
  order_locked: 'the ERP has moved the order past pending; it can no longer be changed or cancelled',
} as const;
export type RejectionCode = keyof typeof rejectionCodes;

export interface MutationError {
  code: RejectionCode | 'retry_later';
  message: string;
  details?: unknown;
}

export interface MutationResult {
  id: string;
  status: 'applied' | 'duplicate' | 'rejected';
  /** for a duplicate: what the first attempt was (its result or error follows) */
  firstStatus?: 'applied' | 'rejected';
  result?: unknown;
  error?: MutationError;
}
