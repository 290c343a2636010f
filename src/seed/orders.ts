import type { Rand } from './random.js';
import type { ClientRow, DemoUserRow, OrderLineRow, OrderRow, OrderStatus, ProductRow, SalesmanRow } from './rows.js';
import { isoDate, money } from './text.js';
import { LINE_NOTES, ORDER_NOTES } from './vocabulary.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

type Weights = readonly (readonly [OrderStatus, number])[];

// Older orders have moved further along: most are delivered, recent ones still open.
const STATUS_BY_AGE: readonly (readonly [number, Weights])[] = [
  [3, [['pending', 40], ['confirmed', 25], ['picking', 15], ['shipped', 10], ['cancelled', 10]]],
  [14, [['pending', 5], ['confirmed', 10], ['picking', 10], ['shipped', 25], ['delivered', 40], ['cancelled', 10]]],
  [Infinity, [['shipped', 5], ['delivered', 85], ['cancelled', 10]]],
];

export interface OrderContext {
  /** the fixed "now" of the data set: orders are placed in the 90 days before it */
  epochMs: number;
  products: readonly ProductRow[];
  clients: readonly ClientRow[];
  salesmen: readonly SalesmanRow[];
  users: readonly DemoUserRow[];
  /** `prices[pricelistId - 1][productId]` in halalas, -1 when not listed */
  prices: readonly Int32Array[];
}

/**
 * Past orders by salesmen for their own clients, priced from the client's pricelist, so
 * every line's unit_price matches the prices table and every total is the sum of its lines.
 */
export function buildOrders(rand: Rand, count: number, ctx: OrderContext): { orders: OrderRow[]; lines: OrderLineRow[] } {
  const clients = ctx.clients.filter((c) => c.is_active && c.pricelist_id !== null && c.salesman_id !== null);
  // salesman id -> the id of his login, which orders.created_by names (as text)
  const userOf = new Map<number, number>();
  for (const u of ctx.users) if ('salesmanId' in u.claims) userOf.set(u.claims.salesmanId, u.id);
  // What each pricelist can sell: active products it lists.
  const sellable = ctx.prices.map((table) => ctx.products.filter((p) => p.is_active && (table[p.id] ?? -1) >= 0));

  const made: { order: OrderRow; lines: OrderLineRow[]; at: number }[] = [];
  for (let n = 0; n < count && clients.length > 0; n++) {
    const client = rand.pick(clients);
    const salesman = ctx.salesmen[(client.salesman_id ?? 0) - 1] as SalesmanRow;
    const table = ctx.prices[(client.pricelist_id ?? 0) - 1] as Int32Array;
    const choices = sellable[(client.pricelist_id ?? 0) - 1] ?? [];
    if (choices.length === 0) continue;

    const daysAgo = rand.int(1, 90);
    // 07:00-21:00 Riyadh time (UTC+3)
    const placed = ctx.epochMs - daysAgo * DAY + rand.int(4 * 60, 18 * 60) * MINUTE + rand.int(0, 59) * 1000;
    // most reach the server within minutes; some wait hours for a network
    const delay = rand.chance(0.85) ? rand.int(5, 600) * 1000 : rand.int(1, 20) * HOUR;
    const status = rand.weighted(STATUS_BY_AGE.find(([days]) => daysAgo <= days)?.[1] ?? [], (s) => s[1])[0];
    const createdBy = userOf.get(salesman.id);
    if (createdBy === undefined) throw new Error(`seed: salesman ${salesman.id} has no user`);
    const id = rand.uuid();

    const lineCount = Math.min(choices.length, rand.int(1, 4) + rand.int(0, 4) + rand.int(0, 4));
    const chosen = new Set<ProductRow>();
    while (chosen.size < lineCount) chosen.add(rand.pick(choices));
    let total = 0;
    const lines = [...chosen].map((product, i): OrderLineRow => {
      const qty = product.unit === 'carton' ? rand.int(1, 5) : product.unit === 'pack' ? rand.int(1, 10) : rand.int(1, 24);
      const unit = table[product.id] ?? 0;
      total += qty * unit;
      return {
        order_id: id,
        line_no: i + 1,
        product_id: product.id,
        qty,
        unit_price: money(unit),
        line_total: money(qty * unit),
        note: rand.chance(0.03) ? rand.pick(LINE_NOTES) : null,
      };
    });

    made.push({
      at: placed,
      lines,
      order: {
        id,
        client_id: client.id,
        salesman_id: salesman.id,
        warehouse_id: salesman.warehouse_id,
        created_by: String(createdBy),
        status,
        requested_delivery: isoDate(placed + rand.int(1, 3) * DAY),
        notes: rand.chance(0.15) ? rand.pick(ORDER_NOTES) : null,
        total: money(total),
        placed_at: new Date(placed).toISOString(),
        created_at: new Date(Math.min(placed + delay, ctx.epochMs)).toISOString(),
      },
    });
  }
  made.sort((a, b) => a.at - b.at || (a.order.id < b.order.id ? -1 : 1));
  return { orders: made.map((m) => m.order), lines: made.flatMap((m) => m.lines) };
}
