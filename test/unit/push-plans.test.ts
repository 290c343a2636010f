import test from 'ava';
import type { Principal } from '../../src/auth/principal.js';
import { fromCents, toCents } from '../../src/push/money.js';
import { plans } from '../../src/push/plans.js';
import { Rejected } from '../../src/push/rejection.js';

const salesman: Principal = { userId: 3, role: 'salesman', salesmanId: 1 };
const ctx = { deviceId: 'phone', createdAt: new Date('2026-11-22T10:00:00Z') };
const order = { orderId: '6f1c2b8e-3d4a-4c5b-9e6f-7a8b9c0d1e2f', clientId: 4, lines: [{ productId: 1, qty: 3, price: '9.99' }, { productId: 2, qty: 2 }] };
const reads = (over: { client?: object; free?: [number, number][] } = {}) => [
  [{ id: 4, salesman_id: 1, pricelist_id: 2, allow_backorder: false, is_active: true, ...over.client }],
  [{ id: 1 }],
  [{ id: 1, is_active: true, unit_price: '1.13' }, { id: 2, is_active: true, unit_price: '12.50' }],
  (over.free ?? [[1, 10], [2, 10]]).map(([product_id, free]) => ({ product_id, free })),
];
const decide = (r = reads(), p = salesman) => plans['order.create'].decide(p, order, r, ctx);

test('money is exact: cents in BigInt, two decimals out', (t) => {
  t.is(toCents('12.5'), 1250n);
  t.is(fromCents(toCents('1.13') * 3n), '3.39');
  t.is(fromCents(toCents('0.1') + toCents('0.2')), '0.30');
});

test('order.create prices from what was read, reports a claimed price, writes stock, order and lines', (t) => {
  const d = decide();
  t.like(d.result, { total: '28.39', backorder: false, warehouseId: 1 });
  t.deepEqual((d.result as { warnings: unknown[] }).warnings, [{ code: 'price_changed', productId: 1, claimed: '9.99', actual: '1.13' }]);
  t.is(d.writes.length, 3);
  t.regex(d.writes[0]!, /UPDATE stock/);
  t.regex(d.writes[1]!, /INSERT INTO orders/);
  t.regex(d.writes[2]!, /INSERT INTO "order_lines"/);
});

test('order.create rejects short stock, or reserves what is free for a backorder client', (t) => {
  const err = t.throws(() => decide(reads({ free: [[1, 2], [2, 10]] })), { instanceOf: Rejected });
  t.is(err.code, 'insufficient_stock');
  t.deepEqual(err.details, { lines: [{ productId: 1, requested: 3, available: 2 }] });
  const back = decide(reads({ client: { allow_backorder: true }, free: [[1, 2]] }));
  t.like(back.result, { backorder: true });
  t.deepEqual((back.result as { lines: { reserved: number }[] }).lines.map((l) => l.reserved), [2, 0]);
});

test('order.create scopes by the caller', (t) => {
  t.is(t.throws(() => decide(reads(), { userId: 9, role: 'salesman', salesmanId: 2 }), { instanceOf: Rejected }).code, 'client_not_yours');
  t.is(t.throws(() => decide(reads({ client: { is_active: false } })), { instanceOf: Rejected }).code, 'client_inactive');
  t.notThrows(() => decide(reads(), { userId: 1, role: 'admin' }));
});
