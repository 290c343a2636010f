import type { Principal, Role } from '../auth/principal.js';
import { pgp } from '../db/pg.js';
import { payloads, type MutationType, type Payload } from '../protocol/mutations.js';
import { fromCents, toCents } from './money.js';
import { Rejected } from './rejection.js';

/**
 * Each mutation type as a plan: `reads` is SQL (one or more statements) that runs in the
 * same round trip as the ledger insert, locking what the decision depends on; `decide` is
 * pure, applying the rules to what was read and returning the result and the writes,
 * which run in the same round trip as the ledger update and COMMIT. Two round trips per
 * mutation, and the rules testable without a database.
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

export interface Plan<T extends MutationType> {
  roles: readonly Role[];
  reads(p: Principal, payload: Payload<T>): string[];
  decide(p: Principal, payload: Payload<T>, reads: unknown[][], ctx: MutationContext): Decision;
}

/** May the caller act on this client? (salesman: his own; client_app: itself; admin/manager: any) */
export function ownsClient(p: Principal, client: { id: number; salesman_id: number | null }): boolean {
  if (p.role === 'admin' || p.role === 'manager') return true;
  if (p.role === 'salesman') return client.salesman_id === p.salesmanId;
  if (p.role === 'client_app') return client.id === p.clientId;
  return false;
}

const writers: readonly Role[] = ['salesman', 'client_app', 'admin', 'manager'];
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
 * reserved and the order is marked backorder.
 */
const createOrder: Plan<'order.create'> = {
  roles: writers,
  reads(p, o) {
    const values = { clientId: o.clientId ?? p.clientId ?? 0, warehouseId: o.warehouseId ?? null, ids: o.lines.map((l) => l.productId) };
    return [
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
  decide(p, o, [clients, warehouses, priced, stocked], ctx) {
    const clientId = o.clientId ?? p.clientId;
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
};

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
    o && (p.role === 'admin' || p.role === 'manager' || (p.role === 'salesman' && o.salesman_id === p.salesmanId) || (p.role === 'client_app' && o.client_id === p.clientId));
  if (!visible) throw new Rejected('order_not_found', `no order ${orderId}`);
  return o;
}

/** order.cancel: only while pending (the ERP wins once it moved the order); releases exactly what was reserved. */
const cancelOrder: Plan<'order.cancel'> = {
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
};

/** order.update_notes: a small edit of an existing row, with the same conflict rule. */
const updateOrderNotes: Plan<'order.update_notes'> = {
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
};

/** client.update_contact: a salesman corrects his own client's phone, e-mail or address. */
const updateClientContact: Plan<'client.update_contact'> = {
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
};

export const plans: { [T in MutationType]: Plan<T> } = {
  'order.create': createOrder,
  'order.cancel': cancelOrder,
  'order.update_notes': updateOrderNotes,
  'client.update_contact': updateClientContact,
};

export { payloads };
