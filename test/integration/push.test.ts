import { randomUUID } from 'node:crypto';
import test from 'ava';
import { createOrder } from '../../src/demo/mutations.js';
import type { MutationResult } from '../../src/protocol/mutations.js';
import { erpPool } from '../helpers/db.js';
import { Device } from '../helpers/device.js';
import { FIXTURE_PASSWORD, loadFixture } from '../helpers/fixture.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

let s: TestServer;
let erp: ReturnType<typeof erpPool>;
const tokens: Record<string, string> = {};
/** the fieldsync user id (text, as the ledger, audit and orders.created_by hold it) of each login */
const userIds: Record<string, string> = {};

test.before(async () => {
  s = await startTestServer();
  await loadFixture(s.db);
  erp = erpPool(s.tdb.url, 4);
  for (const who of ['admin', 'salesman1', 'salesman2', 'client', 'warehouse']) {
    const res = await s.post('/v1/auth/login', { email: `${who}@fixture.test`, password: FIXTURE_PASSWORD });
    const body = (await res.json()) as { token: string; user: { id: number } };
    tokens[who] = body.token;
    userIds[who] = String(body.user.id);
  }
});
test.after.always(async () => {
  await erp?.$pool.end();
  await s?.close();
});

interface PushAnswer {
  results: (MutationResult & { result?: any; error?: any })[];
  visibleAfter: string | null;
}
type M = { id?: string; type: string; payload: unknown; createdAt?: number };
const push = (who: string, mutations: M[], deviceId = `${who}-phone`) =>
  s.post('/v1/sync/push', { deviceId, mutations: mutations.map((m) => ({ id: m.id ?? randomUUID(), ...m })) }, { authorization: `Bearer ${tokens[who]}` });
async function pushOk(who: string, mutations: M[]): Promise<PushAnswer> {
  const res = await push(who, mutations);
  if (res.status !== 200) throw new Error(`push answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as PushAnswer;
}
const order = (clientId: number, lines: { productId: number; qty: number; price?: string }[], extra: Record<string, unknown> = {}): M => ({
  type: 'order.create',
  payload: { orderId: randomUUID(), clientId, lines, ...extra },
});
const stockOf = (product: number, warehouse: number) =>
  s.db.one<{ qty: number; reserved: number }>('SELECT qty, reserved FROM stock WHERE product_id = $1 AND warehouse_id = $2', [product, warehouse]);
const orders = async () => (await s.db.one<{ n: number }>('SELECT count(*) AS n FROM orders')).n;
/** salesman 1's clients are 4 and 8 (pricelists 2 and 3); salesman 2 has 1, 5, 9 */
const S1_CLIENT = 4;
const S2_CLIENT = 5;

test.serial('order.create applies with server prices from the client’s pricelist and reserves stock', async (t) => {
  await erp.none('UPDATE stock SET qty = 100, reserved = 0 WHERE product_id IN (1, 2) AND warehouse_id = 1');
  const before = await orders();
  const m = order(S1_CLIENT, [{ productId: 1, qty: 3, price: '0.01' }, { productId: 2, qty: 2 }], { notes: 'بعد العصر', requestedDelivery: '2026-12-01' });
  const { results, visibleAfter } = await pushOk('salesman1', [m]);
  t.is(results.length, 1);
  const r = results[0]!;
  t.is(r.status, 'applied', JSON.stringify(r));
  const prices = await s.db.map(
    `SELECT p.id, coalesce(pr.price, p.base_price)::text AS price FROM products p
       LEFT JOIN prices pr ON pr.product_id = p.id AND pr.pricelist_id = (SELECT pricelist_id FROM clients WHERE id = $1)
      WHERE p.id IN (1, 2) ORDER BY p.id`,
    [S1_CLIENT],
    (x: { price: string }) => x.price,
  );
  t.deepEqual(r.result.lines.map((l: { unitPrice: string }) => l.unitPrice), prices);
  const total = (Number(prices[0]) * 3 + Number(prices[1]) * 2).toFixed(2);
  t.is(r.result.total, total);
  t.is(r.result.warehouseId, 1, "the salesman's warehouse");
  t.deepEqual(r.result.warnings, [{ code: 'price_changed', productId: 1, claimed: '0.01', actual: prices[0] }], 'the claimed price is reported, not used');
  t.is(await orders(), before + 1);
  t.like(await stockOf(1, 1), { qty: 100, reserved: 3 });
  t.like(await stockOf(2, 1), { reserved: 2 });
  const row = await s.db.one('SELECT salesman_id, status::text, total::text, notes, device_id, created_by FROM orders WHERE id = $1', [(m.payload as { orderId: string }).orderId]);
  t.like(row, { salesman_id: 1, status: 'pending', total, notes: 'بعد العصر', device_id: 'salesman1-phone', created_by: userIds.salesman1 });
  t.truthy(visibleAfter);
});

test.serial('the same mutation again answers duplicate with the first result; a reused id with another payload is id_conflict', async (t) => {
  const m = { ...order(S1_CLIENT, [{ productId: 1, qty: 1 }]), id: randomUUID() };
  const first = (await pushOk('salesman1', [m])).results[0]!;
  const before = await orders();
  const again = (await pushOk('salesman1', [m])).results[0]!;
  t.is(again.status, 'duplicate');
  t.is(again.firstStatus, 'applied');
  t.deepEqual(again.result, first.result);
  t.is(await orders(), before, 'applied once');
  const other = { ...m, payload: { ...(m.payload as object), notes: 'changed' } };
  const conflict = (await pushOk('salesman1', [other])).results[0]!;
  t.like(conflict, { status: 'rejected', error: { code: 'id_conflict' } });
  const byOther = (await pushOk('salesman2', [m])).results[0]!;
  t.like(byOther, { status: 'rejected', error: { code: 'id_conflict' } }, "another user's id");
});

test.serial('many connections sending the same mutation at once make exactly one order', async (t) => {
  const m = { ...order(S1_CLIENT, [{ productId: 2, qty: 1 }]), id: randomUUID() };
  const before = await orders();
  const reserved = (await stockOf(2, 1)).reserved;
  const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => push('salesman1', [m], `phone-${i % 3}`).then((r) => r.json() as Promise<PushAnswer>)));
  const statuses = answers.map((a) => a.results[0]!.status).sort();
  t.is(statuses.filter((x) => x === 'applied').length, 1, statuses.join(','));
  t.is(statuses.filter((x) => x === 'duplicate').length, 19);
  const totals = new Set(answers.map((a) => a.results[0]!.result.total));
  t.is(totals.size, 1, 'every answer carries the first result');
  t.is(await orders(), before + 1);
  t.is((await stockOf(2, 1)).reserved, reserved + 1);
});

test.serial('another mutation with a taken orderId is order_exists, final and recorded', async (t) => {
  await erp.none('UPDATE stock SET qty = 100, reserved = 0 WHERE product_id = 14 AND warehouse_id = 1');
  const first = order(S1_CLIENT, [{ productId: 14, qty: 1 }]);
  t.is((await pushOk('salesman1', [first])).results[0]!.status, 'applied');
  const before = await orders();
  const again = { ...first, id: randomUUID(), payload: { ...(first.payload as object), notes: 'second try' } };
  const r = (await pushOk('salesman1', [again])).results[0]!;
  t.like(r, { status: 'rejected', error: { code: 'order_exists' } });
  t.is(await orders(), before);
  t.like(await stockOf(14, 1), { reserved: 1 }, 'reserved once');
  const repeat = (await pushOk('salesman1', [again])).results[0]!;
  t.like(repeat, { status: 'duplicate', firstStatus: 'rejected', error: { code: 'order_exists' } }, 'the rejection is final for its id');
});

test.serial('two mutations racing for the same orderId: one order, the other order_exists through the handler\'s conflicts map', async (t) => {
  await erp.none('UPDATE stock SET qty = 100, reserved = 0 WHERE product_id = 15 AND warehouse_id = 1');
  const before = await orders();
  const orderId = randomUUID();
  const a: M = { id: randomUUID(), type: 'order.create', payload: { orderId, clientId: S1_CLIENT, lines: [{ productId: 15, qty: 2 }] } };
  const b: M = { id: randomUUID(), type: 'order.create', payload: { orderId, clientId: S1_CLIENT, lines: [{ productId: 15, qty: 3 }], notes: 'other phone' } };
  // The ERP holds the stock row both orders lock. Each mutation reads `orders` (no row with
  // that id yet, and nothing to lock), then waits for the stock row. When the ERP lets go,
  // the first commits its order and the second's INSERT runs into orders_pkey: a row its
  // reads could not see. Without the lock the second would only see the first's order in
  // its reads (the handler's own order_exists), not race.
  let pending: Promise<PushAnswer[]> | undefined;
  await erp.tx(async (hold) => {
    await hold.one('SELECT 1 FROM stock WHERE product_id = 15 AND warehouse_id = 1 FOR UPDATE');
    pending = Promise.all([
      push('salesman1', [a], 'phone-a').then((r) => r.json() as Promise<PushAnswer>),
      push('admin', [b], 'phone-b').then((r) => r.json() as Promise<PushAnswer>),
    ]);
    const deadline = Date.now() + 20_000;
    for (;;) {
      const { n } = await s.db.one<{ n: number }>(
        // a push's first round trip starts with BEGIN and the ledger insert (the stock read
        // is further on than pg_stat_activity keeps of a query's text)
        `SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'BEGIN;%mutations%'`,
      );
      if (n >= 2) break;
      if (Date.now() > deadline) throw new Error(`only ${n} of 2 mutations are waiting on the stock row`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }); // COMMIT: the ERP lets go of the stock row
  const answers = await pending!;
  const results = answers.map((x) => x.results[0]!);
  t.is(results.length, 2);
  const applied = results.filter((r) => r.status === 'applied');
  const rejected = results.filter((r) => r.status === 'rejected');
  t.is(applied.length, 1, JSON.stringify(results));
  t.is(rejected.length, 1, JSON.stringify(results));
  // the conflicts map's code, with the handler's documented meaning (the pure decide()
  // words its own order_exists differently): a business outcome, not a 500 or generic conflict
  t.like(rejected[0]!.error, { code: 'order_exists', message: createOrder.rejections.order_exists });
  t.is(await orders(), before + 1, 'one order');
  const winner = applied[0]!.id === a.id ? 2 : 3;
  t.like(await stockOf(15, 1), { reserved: winner }, "only the winner's reservation stays");
  t.like(await s.db.one('SELECT count(*)::int AS n FROM order_lines WHERE order_id = $1', [orderId]), { n: 1 });
  const loser = applied[0]!.id === a.id ? { who: 'admin', m: b } : { who: 'salesman1', m: a };
  const retry = (await pushOk(loser.who, [loser.m])).results[0]!;
  t.like(retry, { status: 'duplicate', firstStatus: 'rejected', error: { code: 'order_exists' } }, 'recorded in the ledger: final');
});

test.serial('mutations apply in order; a rejection in the middle does not stop the rest', async (t) => {
  const a = order(S1_CLIENT, [{ productId: 3, qty: 1 }]);
  await erp.none('UPDATE stock SET qty = 50, reserved = 0 WHERE product_id = 3 AND warehouse_id = 1');
  const orderId = (a.payload as { orderId: string }).orderId;
  const { results } = await pushOk('salesman1', [
    a,
    order(S2_CLIENT, [{ productId: 3, qty: 1 }]), // another salesman's client
    { type: 'order.update_notes', payload: { orderId, notes: 'ring twice' } },
    { type: 'order.teleport', payload: {} },
    { type: 'order.cancel', payload: { orderId, reason: 'client closed' } },
    { type: 'order.update_notes', payload: { orderId, notes: 'too late' } },
  ]);
  t.deepEqual(
    results.map((r) => r.error?.code ?? r.status),
    ['applied', 'client_not_yours', 'applied', 'unknown_type', 'applied', 'order_locked'],
  );
  const row = await s.db.one<{ status: string; notes: string }>('SELECT status::text, notes FROM orders WHERE id = $1', [orderId]);
  t.is(row.status, 'cancelled');
  t.is(row.notes, 'ring twice\nCancelled: client closed');
  t.like(await stockOf(3, 1), { reserved: 0 }, 'the cancel released the reservation');
});

test.serial('prices come from each client’s pricelist, falling back to the base price', async (t) => {
  await erp.none('UPDATE stock SET qty = 100, reserved = 0 WHERE product_id IN (5, 6) AND warehouse_id IN (1, 2)');
  await erp.none('DELETE FROM prices WHERE product_id = 6 AND pricelist_id = 3');
  const [p2, p3, base6] = await Promise.all([
    s.db.one<{ p: string }>('SELECT price::text AS p FROM prices WHERE product_id = 5 AND pricelist_id = 2'),
    s.db.one<{ p: string }>('SELECT price::text AS p FROM prices WHERE product_id = 5 AND pricelist_id = 3'),
    s.db.one<{ p: string }>('SELECT base_price::text AS p FROM products WHERE id = 6'),
  ]);
  t.not(p2.p, p3.p);
  // client 4 uses pricelist 2, client 8 pricelist 3 (both salesman 1's)
  const { results } = await pushOk('salesman1', [order(4, [{ productId: 5, qty: 1 }]), order(8, [{ productId: 5, qty: 1 }, { productId: 6, qty: 1 }])]);
  t.is(results[0]!.result.lines[0].unitPrice, p2.p);
  t.is(results[1]!.result.lines[0].unitPrice, p3.p);
  t.is(results[1]!.result.lines[1].unitPrice, base6.p, 'no price in the pricelist: base price');
});

test.serial('concurrent orders for the last units never oversell', async (t) => {
  await erp.none('UPDATE stock SET qty = 5, reserved = 0 WHERE product_id = 9 AND warehouse_id = 1');
  const answers = await Promise.all(
    Array.from({ length: 12 }, (_, i) => pushOk(i % 2 ? 'salesman1' : 'admin', [order(i % 2 ? 4 : 8, [{ productId: 9, qty: 1 }], { warehouseId: 1 })])),
  );
  const results = answers.map((a) => a.results[0]!);
  t.is(results.filter((r) => r.status === 'applied').length, 5);
  const short = results.filter((r) => r.status === 'rejected');
  t.is(short.length, 7);
  for (const r of short) t.like(r.error, { code: 'insufficient_stock', details: { lines: [{ productId: 9, requested: 1, available: 0 }] } });
  t.like(await stockOf(9, 1), { qty: 5, reserved: 5 });
});

test.serial('a client that allows backorders gets the order with what is free reserved', async (t) => {
  await erp.none('UPDATE clients SET allow_backorder = true WHERE id = 8');
  await erp.none('UPDATE stock SET qty = 2, reserved = 0 WHERE product_id = 10 AND warehouse_id = 1');
  const r = (await pushOk('salesman1', [order(8, [{ productId: 10, qty: 5 }], { warehouseId: 1 })])).results[0]!;
  t.is(r.status, 'applied');
  t.true(r.result.backorder);
  t.is(r.result.lines[0].reserved, 2);
  t.like(await stockOf(10, 1), { reserved: 2 });
  await pushOk('salesman1', [{ type: 'order.cancel', payload: { orderId: r.result.orderId } }]);
  t.like(await stockOf(10, 1), { reserved: 0 }, 'cancel releases exactly what was reserved');
});

test.serial('once the ERP moves an order past pending, cancel and edits are order_locked', async (t) => {
  await erp.none('UPDATE stock SET qty = 10, reserved = 0 WHERE product_id = 11 AND warehouse_id = 1');
  const r = (await pushOk('salesman1', [order(S1_CLIENT, [{ productId: 11, qty: 1 }])])).results[0]!;
  await erp.none(`UPDATE orders SET status = 'shipped' WHERE id = $1`, [r.result.orderId]);
  const { results } = await pushOk('salesman1', [
    { type: 'order.cancel', payload: { orderId: r.result.orderId } },
    { type: 'order.update_notes', payload: { orderId: r.result.orderId, notes: 'x' } },
  ]);
  t.deepEqual(results.map((x) => x.error?.code), ['order_locked', 'order_locked']);
  t.like(results[0]!.error, { details: { status: 'shipped' } });
  t.like(await stockOf(11, 1), { reserved: 1 }, 'nothing released');
});

test.serial('scoping: other salesmen’s orders and clients are out of reach; roles without writes are refused', async (t) => {
  await erp.none('UPDATE stock SET qty = 10, reserved = 0 WHERE product_id = 12 AND warehouse_id = 1');
  const mine = (await pushOk('salesman1', [order(S1_CLIENT, [{ productId: 12, qty: 1 }])])).results[0]!;
  const { results } = await pushOk('salesman2', [
    { type: 'order.cancel', payload: { orderId: mine.result.orderId } },
    { type: 'order.update_notes', payload: { orderId: mine.result.orderId, notes: 'mine now' } },
    { type: 'client.update_contact', payload: { clientId: S1_CLIENT, phone: '+966500000000' } },
    order(S1_CLIENT, [{ productId: 12, qty: 1 }]),
    { type: 'client.update_contact', payload: { clientId: S2_CLIENT, phone: '+966 50 123 4567' } },
  ]);
  t.deepEqual(results.map((x) => x.error?.code ?? x.status), ['order_not_found', 'order_not_found', 'client_not_yours', 'client_not_yours', 'applied']);
  t.like(await s.db.one('SELECT status::text FROM orders WHERE id = $1', [mine.result.orderId]), { status: 'pending' });
  t.is((await s.db.one<{ phone: string }>('SELECT phone FROM clients WHERE id = $1', [S2_CLIENT])).phone, '+966 50 123 4567');
  const wh = (await pushOk('warehouse', [order(S1_CLIENT, [{ productId: 12, qty: 1 }])])).results[0]!;
  t.like(wh, { status: 'rejected', error: { code: 'forbidden' } });
  const own = (await pushOk('client', [{ type: 'order.create', payload: { orderId: randomUUID(), lines: [{ productId: 12, qty: 1 }] } }])).results[0]!;
  t.is(own.status, 'applied', 'client_app orders for itself');
  t.is(own.result.clientId, 1);
});

test.serial('bad input: a 400/413 problem and nothing written, or a per-mutation rejection naming the problem', async (t) => {
  const before = await orders();
  const auth = { authorization: `Bearer ${tokens.salesman1}` };
  t.is((await s.post('/v1/sync/push', '{"deviceId": "x", "mutations": [', auth)).status, 400);
  t.is((await s.post('/v1/sync/push', { mutations: [] }, auth)).status, 400);
  const notUuid = await s.post('/v1/sync/push', { deviceId: 'd', mutations: [{ id: '42', type: 'order.create', payload: {} }] }, auth);
  t.is(notUuid.status, 400);
  t.regex(JSON.stringify(await notUuid.json()), /mutations\.0\.id/);
  const many = Array.from({ length: 501 }, () => ({ id: randomUUID(), type: 'order.cancel', payload: { orderId: randomUUID() } }));
  t.is((await s.post('/v1/sync/push', { deviceId: 'd', mutations: many }, auth)).status, 400);
  const big = Array.from({ length: 400 }, () => order(S1_CLIENT, Array.from({ length: 200 }, (_, i) => ({ productId: i + 1, qty: 1 }))));
  t.is((await push('salesman1', big)).status, 413);
  t.is((await s.post('/v1/sync/push', { deviceId: 'd', mutations: [{ id: randomUUID(), type: 'order.cancel', payload: {} }] })).status, 401);
  t.is(await orders(), before, 'nothing written');

  const { results } = await pushOk('salesman1', [
    order(S1_CLIENT, [{ productId: 1, qty: -1 }]),
    order(S1_CLIENT, [{ productId: 1, qty: 1.5 }]),
    order(S1_CLIENT, [{ productId: 99_999, qty: 1 }]),
    order(S1_CLIENT, [{ productId: 1, qty: 1 }, { productId: 1, qty: 2 }]),
    order(S1_CLIENT, []),
    { type: 'order.create', payload: { orderId: 'nope', clientId: S1_CLIENT, lines: [{ productId: 1, qty: 1 }] } },
    order(S1_CLIENT, [{ productId: 1, qty: 1 }], { warehouseId: 77 }),
    order(777, [{ productId: 1, qty: 1 }]),
    { type: 'client.update_contact', payload: { clientId: S1_CLIENT } },
  ]);
  t.deepEqual(results.map((r) => r.error?.code), [
    'invalid_payload', 'invalid_payload', 'unknown_product', 'invalid_payload', 'invalid_payload',
    'invalid_payload', 'warehouse_not_found', 'client_not_found', 'invalid_payload',
  ]);
  t.like(results[0]!.error.details[0], { path: 'lines.0.qty' });
  t.deepEqual(results[2]!.error.details, { productIds: [99_999] });
  t.is(await orders(), before, 'still nothing written');
  t.is((await s.fetch('/health')).status, 200);
});

test.serial('round trip: push an order, pull, find it with server prices once the watermark passes visibleAfter', async (t) => {
  await erp.none('UPDATE stock SET qty = 10, reserved = 0 WHERE product_id = 13 AND warehouse_id = 1');
  const device = new Device('salesman1', (cursor, limit) =>
    s.post('/v1/sync/pull', { ...(cursor && { cursor }), limit }, { authorization: `Bearer ${tokens.salesman1}` }), s.url,
  );
  await s.settle();
  await device.catchUp(1000);
  const { results, visibleAfter } = await pushOk('salesman1', [order(S1_CLIENT, [{ productId: 13, qty: 2, price: '1.00' }])]);
  const r = results[0]!;
  await s.settle();
  await device.catchUp(1000);
  t.true(BigInt(device.last!.watermark) > BigInt(visibleAfter!), 'the pull has passed the push');
  const local = device.table('orders').get(r.result.orderId);
  t.truthy(local, 'the order came back');
  t.is(local!.row.total, r.result.total);
  t.is(local!.row.status, 'pending');
  t.deepEqual((local!.row.lines as unknown[][])[0]!.slice(1, 5), [13, 2, r.result.lines[0].unitPrice, r.result.lines[0].lineTotal]);
  t.is([...device.table('stock').values()].find((x) => x.row.product === 13 && x.row.warehouse === 1)!.row.reserved, 2, 'and so did the reservation');
});
