import type { Principal } from '../auth/principal.js';
import { pgp, type Tx } from '../db/pg.js';
import type { Payload } from '../protocol/mutations.js';
import { fromCents, toCents } from './money.js';
import { Rejected } from './rejection.js';

export interface MutationContext {
  deviceId: string;
  /** when the device made the mutation (never later than now) */
  createdAt: Date;
}

interface ClientRow {
  id: number;
  salesman_id: number | null;
  pricelist_id: number | null;
  allow_backorder: boolean;
  is_active: boolean;
}

/** May the caller act on this client? (salesman: his own; client_app: itself; admin/manager: any) */
export function ownsClient(p: Principal, client: { id: number; salesman_id: number | null }): boolean {
  if (p.role === 'admin' || p.role === 'manager') return true;
  if (p.role === 'salesman') return client.salesman_id === p.salesmanId;
  if (p.role === 'client_app') return client.id === p.clientId;
  return false;
}

const lineColumns = new pgp.helpers.ColumnSet(['order_id', 'line_no', 'product_id', 'qty', 'unit_price', 'line_total', 'note', 'reserved_qty'], {
  table: 'order_lines',
});

/**
 * order.create: the server decides everything that matters (DESIGN §4.5). The client must
 * be the caller's; products must exist and be sold; unit prices come from the client's
 * pricelist, else the product's base price (a price the device sends is only compared);
 * stock is reserved in the chosen or default warehouse with its rows locked in product
 * order, so concurrent orders for the last units cannot oversell. Short stock rejects the
 * order (insufficient_stock), unless the client allows backorders: then what is free is
 * reserved and the order is marked backorder.
 */
export async function createOrder(t: Tx, p: Principal, o: Payload<'order.create'>, ctx: MutationContext) {
  const clientId = o.clientId ?? p.clientId;
  if (clientId === undefined) throw new Rejected('invalid_payload', 'clientId is required', [{ path: 'clientId', message: 'required' }]);
  const client = await t.oneOrNone<ClientRow>(
    'SELECT id, salesman_id, pricelist_id, allow_backorder, is_active FROM clients WHERE id = $1 FOR SHARE',
    [clientId],
  );
  if (!client) throw new Rejected('client_not_found', `no client ${clientId}`);
  if (!ownsClient(p, client)) throw new Rejected('client_not_yours', `client ${clientId} is not yours`);
  if (!client.is_active) throw new Rejected('client_inactive', `client ${clientId} is deactivated`);
  if (await t.oneOrNone('SELECT 1 FROM orders WHERE id = $1', [o.orderId])) {
    throw new Rejected('order_exists', `order ${o.orderId} exists`);
  }

  const warehouse = await t.oneOrNone<{ id: number }>(
    o.warehouseId !== undefined
      ? 'SELECT id FROM warehouses WHERE id = $1 AND is_active'
      : `SELECT id FROM warehouses WHERE is_active
          ORDER BY id = (SELECT warehouse_id FROM salesmen WHERE id = $2) DESC NULLS LAST, id LIMIT 1`,
    [o.warehouseId, client.salesman_id],
  );
  if (!warehouse) throw new Rejected('warehouse_not_found', `no warehouse ${o.warehouseId ?? ''}`.trim());

  const ids = o.lines.map((l) => l.productId);
  const products = new Map(
    (
      await t.any<{ id: number; is_active: boolean; unit_price: string }>(
        `SELECT p.id, p.is_active, coalesce(pr.price, p.base_price)::text AS unit_price
           FROM products p LEFT JOIN prices pr ON pr.product_id = p.id AND pr.pricelist_id = $2
          WHERE p.id IN ($1:csv)`,
        [ids, client.pricelist_id],
      )
    ).map((r) => [r.id, r]),
  );
  const unknown = ids.filter((id) => !products.has(id));
  if (unknown.length) throw new Rejected('unknown_product', `unknown products: ${unknown.join(', ')}`, { productIds: unknown });
  const inactive = ids.filter((id) => !products.get(id)!.is_active);
  if (inactive.length) throw new Rejected('product_inactive', `products not sold any more: ${inactive.join(', ')}`, { productIds: inactive });

  // lock the stock rows in product order (a fixed order: concurrent orders cannot deadlock on them)
  const stock = new Map(
    (
      await t.any<{ product_id: number; free: number }>(
        `SELECT product_id, greatest(qty - reserved, 0) AS free FROM stock
          WHERE warehouse_id = $1 AND product_id IN ($2:csv) ORDER BY product_id FOR UPDATE`,
        [warehouse.id, ids],
      )
    ).map((r) => [r.product_id, r.free]),
  );
  const short = o.lines
    .map((l) => ({ productId: l.productId, requested: l.qty, available: stock.get(l.productId) ?? 0 }))
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
      reserved_qty: Math.min(l.qty, stock.get(l.productId) ?? 0),
    };
  });
  const reserve = lines.filter((l) => l.reserved_qty > 0);
  if (reserve.length) {
    await t.none(
      `UPDATE stock s SET reserved = s.reserved + v.q
         FROM (VALUES ${reserve.map((l) => pgp.as.format('($1::bigint, $2::int)', [l.product_id, l.reserved_qty])).join(', ')}) AS v(p, q)
        WHERE s.warehouse_id = $1 AND s.product_id = v.p`,
      [warehouse.id],
    );
  }
  await t.none(
    `INSERT INTO orders (id, client_id, salesman_id, warehouse_id, created_by, status, requested_delivery, notes, total, placed_at, device_id, backorder)
     VALUES ($<id>, $<client>, $<salesman>, $<warehouse>, $<user>, 'pending', $<delivery>, $<notes>, $<total>, $<placed>, $<device>, $<backorder>)`,
    {
      id: o.orderId,
      client: client.id,
      salesman: client.salesman_id,
      warehouse: warehouse.id,
      user: p.userId,
      delivery: o.requestedDelivery ?? null,
      notes: o.notes ?? null,
      total: fromCents(total),
      placed: ctx.createdAt,
      device: ctx.deviceId,
      backorder: short.length > 0,
    },
  );
  await t.none(pgp.helpers.insert(lines, lineColumns));
  return {
    orderId: o.orderId,
    status: 'pending',
    clientId: client.id,
    warehouseId: warehouse.id,
    total: fromCents(total),
    backorder: short.length > 0,
    lines: lines.map((l) => ({ productId: l.product_id, qty: l.qty, unitPrice: l.unit_price, lineTotal: l.line_total, reserved: l.reserved_qty })),
    ...(warnings.length && { warnings }),
  };
}

interface OrderRow {
  id: string;
  client_id: number;
  salesman_id: number | null;
  warehouse_id: number;
  status: string;
}

/** The order, locked, if the caller may see it; else order_not_found (no existence leak). */
async function lockOrder(t: Tx, p: Principal, orderId: string): Promise<OrderRow> {
  const o = await t.oneOrNone<OrderRow>('SELECT id, client_id, salesman_id, warehouse_id, status::text FROM orders WHERE id = $1 FOR UPDATE', [orderId]);
  const visible =
    o && (p.role === 'admin' || p.role === 'manager' || (p.role === 'salesman' && o.salesman_id === p.salesmanId) || (p.role === 'client_app' && o.client_id === p.clientId));
  if (!visible) throw new Rejected('order_not_found', `no order ${orderId}`);
  return o;
}

/** order.cancel: only while pending (conflict rule: the ERP wins once it moved the order). */
export async function cancelOrder(t: Tx, p: Principal, c: Payload<'order.cancel'>) {
  const o = await lockOrder(t, p, c.orderId);
  if (o.status === 'cancelled') return { orderId: o.id, status: 'cancelled' };
  if (o.status !== 'pending') throw new Rejected('order_locked', `order ${o.id} is ${o.status}`, { status: o.status });
  await t.none(
    `UPDATE stock s SET reserved = greatest(s.reserved - l.reserved_qty, 0)
       FROM order_lines l
      WHERE l.order_id = $1 AND l.reserved_qty > 0 AND s.warehouse_id = $2 AND s.product_id = l.product_id`,
    [o.id, o.warehouse_id],
  );
  await t.none('UPDATE order_lines SET reserved_qty = 0 WHERE order_id = $1 AND reserved_qty > 0', [o.id]);
  await t.none(
    `UPDATE orders SET status = 'cancelled',
            notes = CASE WHEN $2::text IS NULL THEN notes ELSE concat_ws(E'\\n', notes, 'Cancelled: ' || $2) END
      WHERE id = $1`,
    [o.id, c.reason ?? null],
  );
  return { orderId: o.id, status: 'cancelled' };
}

/** order.update_notes: a small edit of an existing row, with the same conflict rule. */
export async function updateOrderNotes(t: Tx, p: Principal, u: Payload<'order.update_notes'>) {
  const o = await lockOrder(t, p, u.orderId);
  if (o.status !== 'pending') throw new Rejected('order_locked', `order ${o.id} is ${o.status}`, { status: o.status });
  const r = await t.one<{ notes: string | null; requested_delivery: string | null }>(
    `UPDATE orders SET
        notes = CASE WHEN $<setNotes> THEN $<notes> ELSE notes END,
        requested_delivery = CASE WHEN $<setDelivery> THEN $<delivery>::date ELSE requested_delivery END
      WHERE id = $<id> RETURNING notes, to_char(requested_delivery, 'YYYY-MM-DD') AS requested_delivery`,
    {
      id: o.id,
      setNotes: u.notes !== undefined,
      notes: u.notes ?? null,
      setDelivery: u.requestedDelivery !== undefined,
      delivery: u.requestedDelivery ?? null,
    },
  );
  return { orderId: o.id, notes: r.notes, requestedDelivery: r.requested_delivery };
}

/** client.update_contact: a salesman corrects his own client's phone, e-mail or address. */
export async function updateClientContact(t: Tx, p: Principal, c: Payload<'client.update_contact'>) {
  const client = await t.oneOrNone<{ id: number; salesman_id: number | null }>('SELECT id, salesman_id FROM clients WHERE id = $1 FOR UPDATE', [c.clientId]);
  if (!client) throw new Rejected('client_not_found', `no client ${c.clientId}`);
  if (!ownsClient(p, client)) throw new Rejected('client_not_yours', `client ${c.clientId} is not yours`);
  const r = await t.one<{ phone: string | null; email: string | null; address: string | null }>(
    `UPDATE clients SET phone = coalesce($<phone>, phone), email = coalesce($<email>, email), address = coalesce($<address>, address)
      WHERE id = $<id> RETURNING phone, email, address`,
    { id: c.clientId, phone: c.phone ?? null, email: c.email ?? null, address: c.address ?? null },
  );
  return { clientId: c.clientId, ...r };
}
