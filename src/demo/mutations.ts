import { z } from 'zod';
import type { Principal } from '../auth/principal.js';
import { pgp } from '../db/pg.js';
import { defineMutation, Rejected } from '../model/mutations.js';
import { fromCents, toCents } from './money.js';
import { isoDate, rowId } from '../protocol/values.js';

/**
 * The demo ERP's offline writes: the worked example of mutation handlers (README
 * "Writing a mutation handler"). Each is a plan: `reads` runs in the same round trip as
 * the ledger insert, locking what the decision depends on; `decide` is pure.
 */
export const MAX_LINES = 200;
export const MAX_QTY = 100_000;

const id = rowId;
const money = z.string().regex(/^\d{1,12}(\.\d{1,2})?$/, 'a decimal string such as "12.50"');
const text = (max: number) => z.string().trim().max(max);

/** The demo handlers' rejection codes and what they mean. */
const demoRejections = {
  invalid_payload: 'the payload does not fit the rules (details list each path)',
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

const pick = (...codes: (keyof typeof demoRejections)[]) => Object.fromEntries(codes.map((c) => [c, demoRejections[c]]));

const payloads = {
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
    requestedDelivery: isoDate.optional(),
    notes: text(2000).optional(),
  }),
  'order.cancel': z.strictObject({ orderId: z.uuid(), reason: text(500).optional() }),
  'order.update_notes': z.strictObject({
    orderId: z.uuid(),
    notes: text(2000).nullable().optional(),
    requestedDelivery: isoDate.nullable().optional(),
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

/** A numeric claim of the caller (the demo's salesmanId and clientId are int claims), or undefined. */
function claimId(p: Principal, claim: 'salesmanId' | 'clientId'): number | undefined {
  const v = p.claims[claim];
  return v === undefined ? undefined : Number(v);
}

/** May the caller act on this client? (salesman: his own; client_app: itself; admin/manager: any) */
function ownsClient(p: Principal, client: { id: number; salesman_id: number | null }): boolean {
  if (p.role === 'admin' || p.role === 'manager') return true;
  if (p.role === 'salesman') return client.salesman_id === claimId(p, 'salesmanId');
  if (p.role === 'client_app') return client.id === claimId(p, 'clientId');
  return false;
}

const writers: readonly string[] = ['salesman', 'client_app', 'admin', 'manager'];
const lineColumns = new pgp.helpers.ColumnSet(['order_id', 'line_no', 'product_id', 'qty', 'unit_price', 'line_total', 'note', 'reserved_qty'], {
  table: 'order_lines',
});

interface ClientRow {
  id: number;
  salesman_id: number | null;
  pricelist_id: number | null;
  allow_backorder: boolean;
  is_active: boolean;
}
interface ProductRow {
  id: number;
  is_active: boolean;
  unit_price: string;
}

/** The warehouse an order ships from: the one asked for, else the salesman's, else the first active one. */
const WAREHOUSE = `(SELECT w.id FROM warehouses w WHERE w.is_active AND ($<warehouseId>::bigint IS NULL OR w.id = $<warehouseId>)
   ORDER BY w.id = (SELECT s.warehouse_id FROM salesmen s JOIN clients c ON c.salesman_id = s.id WHERE c.id = $<clientId>) DESC NULLS LAST, w.id
   LIMIT 1)`;

/**
 * order.create: the server decides everything that matters (DESIGN §4.5). The client must
 * be the caller's; products must exist and be sold; unit prices come from the client's
 * pricelist, else the product's base price (a price the device sends is only compared);
 * stock rows are locked in product order (concurrent orders for the last units cannot
 * oversell, nor deadlock on them) and the quantities reserved. Short stock rejects the
 * order (insufficient_stock) unless the client allows backorders: then what is free is
 * reserved and the order is marked backorder. An orderId already taken (by another
 * mutation) is order_exists; one taken by a transaction still in flight is caught by the
 * orders primary key at the insert, which push answers with the generic `conflict`.
 */
export const createOrder = defineMutation({
  payload: payloads['order.create'],
  rejections: pick('invalid_payload', 'client_not_found', 'client_not_yours', 'client_inactive', 'warehouse_not_found', 'unknown_product', 'product_inactive', 'insufficient_stock', 'order_exists'),
  conflicts: { orders_pkey: 'order_exists' },
  roles: writers,
  reads(p, o) {
    const values = { orderId: o.orderId, clientId: o.clientId ?? claimId(p, 'clientId') ?? 0, warehouseId: o.warehouseId ?? null, ids: o.lines.map((l) => l.productId) };
    return [
      // first: the same lock order as cancel (the order, then stock rows)
      pgp.as.format('SELECT 1 FROM orders WHERE id = $<orderId> FOR UPDATE', values),
      pgp.as.format('SELECT id, salesman_id, pricelist_id, allow_backorder, is_active FROM clients WHERE id = $<clientId> FOR SHARE', values),
      pgp.as.format(`SELECT ${WAREHOUSE} AS id`, values),
      pgp.as.format(
        `SELECT p.id, p.is_active, coalesce(pr.price, p.base_price)::text AS unit_price
           FROM products p LEFT JOIN prices pr ON pr.product_id = p.id
            AND pr.pricelist_id = (SELECT pricelist_id FROM clients WHERE id = $<clientId>)
          WHERE p.id IN ($<ids:csv>)`,
        values,
      ),
      pgp.as.format(
        `SELECT product_id, greatest(qty - reserved, 0) AS free FROM stock
          WHERE warehouse_id = ${WAREHOUSE} AND product_id IN ($<ids:csv>) ORDER BY product_id FOR UPDATE`,
        values,
      ),
    ];
  },
  decide(p, o, [existing, clients, warehouses, priced, stocked], ctx) {
    const clientId = o.clientId ?? claimId(p, 'clientId');
    if (clientId === undefined) throw new Rejected('invalid_payload', 'clientId is required', [{ path: 'clientId', message: 'required' }]);
    const client = clients![0] as ClientRow | undefined;
    if (!client) throw new Rejected('client_not_found', `no client ${clientId}`);
    if (!ownsClient(p, client)) throw new Rejected('client_not_yours', `client ${clientId} is not yours`);
    if (!client.is_active) throw new Rejected('client_inactive', `client ${clientId} is deactivated`);
    const warehouse = (warehouses![0] as { id: number | null }).id;
    if (warehouse === null) throw new Rejected('warehouse_not_found', `no warehouse ${o.warehouseId ?? ''}`.trim());

    const ids = o.lines.map((l) => l.productId);
    const products = new Map((priced as ProductRow[]).map((r) => [r.id, r]));
    const unknown = ids.filter((id) => !products.has(id));
    if (unknown.length) throw new Rejected('unknown_product', `unknown products: ${unknown.join(', ')}`, { productIds: unknown });
    const inactive = ids.filter((id) => !products.get(id)!.is_active);
    if (inactive.length) throw new Rejected('product_inactive', `products not sold any more: ${inactive.join(', ')}`, { productIds: inactive });

    const free = new Map((stocked as { product_id: number; free: number }[]).map((r) => [r.product_id, r.free]));
    const short = o.lines
      .map((l) => ({ productId: l.productId, requested: l.qty, available: free.get(l.productId) ?? 0 }))
      .filter((l) => l.requested > l.available);
    if (short.length && !client.allow_backorder) {
      throw new Rejected('insufficient_stock', `not enough stock for ${short.length} line(s)`, { lines: short });
    }
    if (existing!.length > 0) throw new Rejected('order_exists', 'an order with this orderId exists');

    let total = 0n;
    const warnings: { code: 'price_changed'; productId: number; claimed: string; actual: string }[] = [];
    const lines = o.lines.map((l, i) => {
      const unit = products.get(l.productId)!.unit_price;
      const lineTotal = toCents(unit) * BigInt(l.qty);
      total += lineTotal;
      if (l.price !== undefined && toCents(l.price) !== toCents(unit)) {
        warnings.push({ code: 'price_changed', productId: l.productId, claimed: l.price, actual: unit });
      }
      return {
        order_id: o.orderId,
        line_no: i + 1,
        product_id: l.productId,
        qty: l.qty,
        unit_price: unit,
        line_total: fromCents(lineTotal),
        note: l.note ?? null,
        reserved_qty: Math.min(l.qty, free.get(l.productId) ?? 0),
      };
    });
    const reserve = lines.filter((l) => l.reserved_qty > 0);
    const writes = [
      ...(reserve.length === 0
        ? []
        : [
            pgp.as.format(
              `UPDATE stock s SET reserved = s.reserved + v.q
                 FROM (VALUES ${reserve.map((l) => pgp.as.format('($1::bigint, $2::int)', [l.product_id, l.reserved_qty])).join(', ')}) AS v(p, q)
                WHERE s.warehouse_id = $1 AND s.product_id = v.p`,
              [warehouse],
            ),
          ]),
      pgp.as.format(
        `INSERT INTO orders (id, client_id, salesman_id, warehouse_id, created_by, status, requested_delivery, notes, total, placed_at, device_id, backorder)
         VALUES ($<id>, $<client>, $<salesman>, $<warehouse>, $<user>, 'pending', $<delivery>, $<notes>, $<total>, $<placed>, $<device>, $<backorder>)`,
        {
          id: o.orderId,
          client: client.id,
          salesman: client.salesman_id,
          warehouse,
          user: p.userId,
          delivery: o.requestedDelivery ?? null,
          notes: o.notes ?? null,
          total: fromCents(total),
          placed: ctx.createdAt,
          device: ctx.deviceId,
          backorder: short.length > 0,
        },
      ),
      pgp.helpers.insert(lines, lineColumns),
    ];
    return {
      writes,
      result: {
        orderId: o.orderId,
        status: 'pending',
        clientId: client.id,
        warehouseId: warehouse,
        total: fromCents(total),
        backorder: short.length > 0,
        lines: lines.map((l) => ({ productId: l.product_id, qty: l.qty, unitPrice: l.unit_price, lineTotal: l.line_total, reserved: l.reserved_qty })),
        ...(warnings.length && { warnings }),
      },
    };
  },
});

interface OrderRow {
  id: string;
  client_id: number;
  salesman_id: number | null;
  warehouse_id: number;
  status: string;
}

const lockOrder = (orderId: string) =>
  pgp.as.format('SELECT id, client_id, salesman_id, warehouse_id, status::text FROM orders WHERE id = $1 FOR UPDATE', [orderId]);

/** The order if the caller may see it; else order_not_found (no existence leak). */
function visibleOrder(p: Principal, orderId: string, rows: unknown[] | undefined): OrderRow {
  const o = rows?.[0] as OrderRow | undefined;
  const visible =
    o && (p.role === 'admin' || p.role === 'manager' || (p.role === 'salesman' && o.salesman_id === claimId(p, 'salesmanId')) || (p.role === 'client_app' && o.client_id === claimId(p, 'clientId')));
  if (!visible) throw new Rejected('order_not_found', `no order ${orderId}`);
  return o;
}

/** order.cancel: only while pending (the ERP wins once it moved the order); releases exactly what was reserved. */
export const cancelOrder = defineMutation({
  payload: payloads['order.cancel'],
  rejections: pick('order_not_found', 'order_locked'),
  roles: writers,
  reads: (_p, c) => [lockOrder(c.orderId)],
  decide(p, c, [rows]) {
    const o = visibleOrder(p, c.orderId, rows);
    if (o.status === 'cancelled') return { result: { orderId: o.id, status: 'cancelled' }, writes: [] };
    if (o.status !== 'pending') throw new Rejected('order_locked', `order ${o.id} is ${o.status}`, { status: o.status });
    return {
      result: { orderId: o.id, status: 'cancelled' },
      writes: [
        pgp.as.format(
          `UPDATE stock s SET reserved = greatest(s.reserved - l.reserved_qty, 0)
             FROM order_lines l
            WHERE l.order_id = $1 AND l.reserved_qty > 0 AND s.warehouse_id = $2 AND s.product_id = l.product_id`,
          [o.id, o.warehouse_id],
        ),
        pgp.as.format('UPDATE order_lines SET reserved_qty = 0 WHERE order_id = $1 AND reserved_qty > 0', [o.id]),
        pgp.as.format(
          `UPDATE orders SET status = 'cancelled',
                  notes = CASE WHEN $2::text IS NULL THEN notes ELSE concat_ws(E'\\n', notes, 'Cancelled: ' || $2) END
            WHERE id = $1`,
          [o.id, c.reason ?? null],
        ),
      ],
    };
  },
});

/** order.update_notes: a small edit of an existing row, with the same conflict rule. */
export const updateOrderNotes = defineMutation({
  payload: payloads['order.update_notes'],
  rejections: pick('order_not_found', 'order_locked'),
  roles: writers,
  reads: (_p, u) => [lockOrder(u.orderId), pgp.as.format(`SELECT notes, to_char(requested_delivery, 'YYYY-MM-DD') AS delivery FROM orders WHERE id = $1`, [u.orderId])],
  decide(p, u, [rows, current]) {
    const o = visibleOrder(p, u.orderId, rows);
    if (o.status !== 'pending') throw new Rejected('order_locked', `order ${o.id} is ${o.status}`, { status: o.status });
    const now = current![0] as { notes: string | null; delivery: string | null };
    const notes = u.notes !== undefined ? u.notes : now.notes;
    const delivery = u.requestedDelivery !== undefined ? u.requestedDelivery : now.delivery;
    return {
      result: { orderId: o.id, notes, requestedDelivery: delivery },
      writes: [pgp.as.format('UPDATE orders SET notes = $2, requested_delivery = $3::date WHERE id = $1', [o.id, notes, delivery])],
    };
  },
});

/** client.update_contact: a salesman corrects his own client's phone, e-mail or address. */
export const updateClientContact = defineMutation({
  payload: payloads['client.update_contact'],
  rejections: pick('client_not_found', 'client_not_yours'),
  roles: writers,
  reads: (_p, c) => [pgp.as.format('SELECT id, salesman_id, phone, email, address FROM clients WHERE id = $1 FOR UPDATE', [c.clientId])],
  decide(p, c, [rows]) {
    const client = rows?.[0] as { id: number; salesman_id: number | null; phone: string | null; email: string | null; address: string | null } | undefined;
    if (!client) throw new Rejected('client_not_found', `no client ${c.clientId}`);
    if (!ownsClient(p, client)) throw new Rejected('client_not_yours', `client ${c.clientId} is not yours`);
    const next = { phone: c.phone ?? client.phone, email: c.email ?? client.email, address: c.address ?? client.address };
    return {
      result: { clientId: c.clientId, ...next },
      writes: [pgp.as.format('UPDATE clients SET phone = $<phone>, email = $<email>, address = $<address> WHERE id = $<id>', { id: c.clientId, ...next })],
    };
  },
});

