import test from 'ava';
import type { Principal } from '../../src/auth/principal.js';
import demo from '../../src/demo/config.js';
import { fromCents, toCents } from '../../src/demo/money.js';
import { cancelOrder, createOrder, updateClientContact, updateOrderNotes } from '../../src/demo/mutations.js';
import { Rejected } from '../../src/model/mutations.js';
import { genericRejections, rejectionCodes } from '../../src/protocol/mutations.js';

// The demo's mutation handlers, decided without a database: each test hands decide()
// what the reads would have returned.

const salesman: Principal = { userId: '3', role: 'salesman', claims: { salesmanId: 1 } };
const ctx = { deviceId: 'phone', createdAt: new Date('2026-11-22T10:00:00Z') };
const ORDER_ID = '6f1c2b8e-3d4a-4c5b-9e6f-7a8b9c0d1e2f';
const order = createOrder.payload.parse({ orderId: ORDER_ID, clientId: 4, lines: [{ productId: 1, qty: 3, price: '9.99' }, { productId: 2, qty: 2 }] });
/** what order.create's reads return: [existing order, client, warehouse, priced products, free stock] */
const reads = (over: { exists?: boolean; client?: object; free?: [number, number][] } = {}): unknown[][] => [
  over.exists ? [{ '?column?': 1 }] : [],
  [{ id: 4, salesman_id: 1, pricelist_id: 2, allow_backorder: false, is_active: true, ...over.client }],
  [{ id: 1 }],
  [{ id: 1, is_active: true, unit_price: '1.13' }, { id: 2, is_active: true, unit_price: '12.50' }],
  (over.free ?? [[1, 10], [2, 10]]).map(([product_id, free]) => ({ product_id, free })),
];
const decide = (r = reads(), p = salesman, o = order) => createOrder.decide(p, o, r, ctx);
const code = (fn: () => unknown) => (() => {
  try {
    fn();
  } catch (err) {
    if (err instanceof Rejected) return err.code;
    throw err;
  }
  return 'accepted';
})();

test('money is exact: cents in BigInt, two decimals out', (t) => {
  t.is(toCents('12.5'), 1250n);
  t.is(fromCents(toCents('1.13') * 3n), '3.39');
  t.is(fromCents(toCents('0.1') + toCents('0.2')), '0.30');
  t.is(fromCents(-150n), '-1.50');
});

test('order.create payloads are checked by the handler schema', (t) => {
  const bad = createOrder.payload.safeParse({ orderId: ORDER_ID, lines: [{ productId: 1, qty: 1.5 }, { productId: 1, qty: 1 }] });
  t.false(bad.success);
  t.false(createOrder.payload.safeParse({ orderId: 'not-a-uuid', lines: [{ productId: 1, qty: 1 }] }).success);
  t.false(createOrder.payload.safeParse({ orderId: ORDER_ID, lines: [] }).success);
  t.true(createOrder.payload.safeParse({ orderId: ORDER_ID, lines: [{ productId: 1, qty: 1 }] }).success);
});

test('order.create reads lock the order id first, then the client, then stock in product order', (t) => {
  const sql = createOrder.reads(salesman, order);
  t.is(sql.length, 5);
  t.regex(sql[0]!, /FROM orders WHERE id = '6f1c2b8e-[^']+' FOR UPDATE/);
  t.regex(sql[1]!, /FROM clients WHERE id = 4 FOR SHARE/);
  t.regex(sql[4]!, /ORDER BY product_id FOR UPDATE/);
  const own = createOrder.reads({ userId: '8', role: 'client_app', claims: { clientId: 9 } }, createOrder.payload.parse({ orderId: ORDER_ID, lines: [{ productId: 1, qty: 1 }] }));
  t.regex(own[1]!, /WHERE id = 9 FOR SHARE/, "client_app: its own client by default");
});

test('order.create prices from what was read, reports a claimed price, writes stock, order and lines', (t) => {
  const d = decide();
  t.like(d.result, { orderId: ORDER_ID, status: 'pending', clientId: 4, total: '28.39', backorder: false, warehouseId: 1 });
  t.deepEqual((d.result as { warnings: unknown[] }).warnings, [{ code: 'price_changed', productId: 1, claimed: '9.99', actual: '1.13' }]);
  t.is(d.writes.length, 3);
  t.regex(d.writes[0]!, /UPDATE stock/);
  t.regex(d.writes[1]!, /INSERT INTO orders/);
  t.regex(d.writes[1]!, /'3'/, 'created_by is the principal user id');
  t.regex(d.writes[2]!, /INSERT INTO "order_lines"/);
});

test('order.create rejects short stock, or reserves what is free for a backorder client', (t) => {
  const err = t.throws(() => decide(reads({ free: [[1, 2], [2, 10]] })), { instanceOf: Rejected });
  t.is(err.code, 'insufficient_stock');
  t.deepEqual(err.details, { lines: [{ productId: 1, requested: 3, available: 2 }] });
  const back = decide(reads({ client: { allow_backorder: true }, free: [[1, 2]] }));
  t.like(back.result, { backorder: true });
  t.deepEqual((back.result as { lines: { reserved: number }[] }).lines.map((l) => l.reserved), [2, 0]);
  t.is(back.writes.length, 3, 'only what is free is reserved');
});

test('order.create scopes by the caller and its claims', (t) => {
  t.is(code(() => decide(reads(), { userId: '9', role: 'salesman', claims: { salesmanId: 2 } })), 'client_not_yours');
  t.is(code(() => decide(reads(), { userId: '9', role: 'salesman', claims: { salesmanId: '1' } })), 'accepted', 'a claim given as text still matches');
  t.is(code(() => decide(reads({ client: { is_active: false } }))), 'client_inactive');
  t.is(code(() => decide(reads(), { userId: '1', role: 'admin', claims: {} })), 'accepted');
  t.is(code(() => decide(reads(), { userId: '5', role: 'client_app', claims: { clientId: 4 } })), 'accepted');
  t.is(code(() => decide(reads(), { userId: '5', role: 'client_app', claims: { clientId: 8 } })), 'client_not_yours');
  const noClient = createOrder.payload.parse({ orderId: ORDER_ID, lines: [{ productId: 1, qty: 1 }] });
  t.is(code(() => decide(reads(), salesman, noClient)), 'invalid_payload', 'a salesman must name the client');
  t.is(code(() => decide([[], [], [{ id: 1 }], [], []])), 'client_not_found');
  t.is(code(() => decide([[], reads()[1]!, [{ id: null }], [], []])), 'warehouse_not_found');
});

test('order.create rejects unknown and inactive products, and an order id already taken', (t) => {
  const r = reads();
  const unknown = t.throws(() => decide([r[0]!, r[1]!, r[2]!, [r[3]![0]!], r[4]!]), { instanceOf: Rejected });
  t.like(unknown, { code: 'unknown_product', details: { productIds: [2] } });
  const inactive = t.throws(() => decide([r[0]!, r[1]!, r[2]!, [r[3]![0]!, { id: 2, is_active: false, unit_price: '1.00' }], r[4]!]), { instanceOf: Rejected });
  t.like(inactive, { code: 'product_inactive', details: { productIds: [2] } });
  t.is(code(() => decide(reads({ exists: true }))), 'order_exists');
  t.is(code(() => decide(reads({ exists: true, free: [[1, 0]] }))), 'insufficient_stock', 'the rules before it keep their precedence');
});

const pending = { id: ORDER_ID, client_id: 4, salesman_id: 1, warehouse_id: 1, status: 'pending' };

test('order.cancel releases exactly what was reserved, only while pending, only for who can see it', (t) => {
  const c = cancelOrder.payload.parse({ orderId: ORDER_ID, reason: 'client called' });
  const d = cancelOrder.decide(salesman, c, [[pending]], ctx);
  t.deepEqual(d.result, { orderId: ORDER_ID, status: 'cancelled' });
  t.is(d.writes.length, 3);
  t.regex(d.writes[0]!, /reserved = greatest\(s\.reserved - l\.reserved_qty, 0\)/);
  t.regex(d.writes[1]!, /reserved_qty = 0/);
  t.regex(d.writes[2]!, /client called/);
  t.deepEqual(cancelOrder.decide(salesman, c, [[{ ...pending, status: 'cancelled' }]], ctx).writes, [], 'cancelling twice changes nothing');
  const locked = t.throws(() => cancelOrder.decide(salesman, c, [[{ ...pending, status: 'shipped' }]], ctx), { instanceOf: Rejected });
  t.like(locked, { code: 'order_locked', details: { status: 'shipped' } });
  t.is(code(() => cancelOrder.decide({ userId: '9', role: 'salesman', claims: { salesmanId: 2 } }, c, [[pending]], ctx)), 'order_not_found', 'no existence leak');
  t.is(code(() => cancelOrder.decide(salesman, c, [[]], ctx)), 'order_not_found');
});

test('order.update_notes keeps what is not sent, clears what is null', (t) => {
  const now = [{ notes: 'old', delivery: '2026-12-01' }];
  const keep = updateOrderNotes.decide(salesman, updateOrderNotes.payload.parse({ orderId: ORDER_ID, notes: 'new' }), [[pending], now], ctx);
  t.deepEqual(keep.result, { orderId: ORDER_ID, notes: 'new', requestedDelivery: '2026-12-01' });
  const clear = updateOrderNotes.decide(salesman, updateOrderNotes.payload.parse({ orderId: ORDER_ID, requestedDelivery: null }), [[pending], now], ctx);
  t.deepEqual(clear.result, { orderId: ORDER_ID, notes: 'old', requestedDelivery: null });
  t.is(code(() => updateOrderNotes.decide(salesman, { orderId: ORDER_ID }, [[{ ...pending, status: 'packed' }], now], ctx)), 'order_locked');
});

test('client.update_contact changes only the caller’s own client', (t) => {
  const row = { id: 4, salesman_id: 1, phone: '+966 1', email: 'a@b.test', address: 'Riyadh' };
  const u = updateClientContact.payload.parse({ clientId: 4, phone: '+966 555 0101' });
  const d = updateClientContact.decide(salesman, u, [[row]], ctx);
  t.deepEqual(d.result, { clientId: 4, phone: '+966 555 0101', email: 'a@b.test', address: 'Riyadh' });
  t.regex(d.writes[0]!, /UPDATE clients SET phone = '\+966 555 0101'/);
  t.is(code(() => updateClientContact.decide({ userId: '9', role: 'salesman', claims: { salesmanId: 2 } }, u, [[row]], ctx)), 'client_not_yours');
  t.is(code(() => updateClientContact.decide(salesman, u, [[]], ctx)), 'client_not_found');
  t.false(updateClientContact.payload.safeParse({ clientId: 4 }).success, 'nothing to update');
});

test('the demo config registers the handlers; every rejection code is documented once', (t) => {
  const mutations = demo.mutations!;
  t.deepEqual(Object.keys(mutations).sort(), ['client.update_contact', 'order.cancel', 'order.create', 'order.update_notes']);
  for (const handler of Object.values(mutations)) t.false(handler.roles.includes('warehouse'), 'warehouse and driver roles may not write');
  const docs = rejectionCodes(mutations);
  const codes = docs.map((d) => d.code);
  t.is(new Set(codes).size, codes.length);
  t.deepEqual(codes.slice(0, Object.keys(genericRejections).length), Object.keys(genericRejections));
  for (const c of ['order_exists', 'insufficient_stock', 'order_locked', 'client_not_yours']) t.true(codes.includes(c), c);
  t.deepEqual(docs.find((d) => d.code === 'order_locked')!.types, ['order.cancel', 'order.update_notes']);
  t.is(docs.find((d) => d.code === 'forbidden')!.types.length, 4, 'generic codes apply to every type');
});
