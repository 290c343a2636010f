import test from 'ava';
import { erpPool } from '../helpers/db.js';
import { Device } from '../helpers/device.js';
import { FIXTURE_PASSWORD, loadFixture } from '../helpers/fixture.js';
import { startSecondInstance, startTestServer, type TestServer } from '../helpers/server.js';
import { connected, record, sockets, until, wait } from '../helpers/sockets.js';

const REDIS = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

let s: TestServer;
let erp: ReturnType<typeof erpPool>;
const tokens: Record<string, string> = {};
const { socket, closeAll } = sockets();

/**
 * The push channel end to end: plain SQL by the ERP -> capture triggers -> fieldsync's
 * outbox -> the doorbell (polling every DOORBELL_POLL_MS, default 10 ms; no LISTEN/NOTIFY)
 * -> the indexer's batch -> heads -> pokes and config events to the rooms of the rows' buckets.
 * The server runs with the default poll interval. Who may connect: realtime-admission.test.ts.
 */
test.before(async () => {
  s = await startTestServer({ POKE_WINDOW_MS: '200' });
  await loadFixture(s.db);
  await s.settle();
  erp = erpPool(s.tdb.url, 4);
  for (const who of ['admin', 'salesman1', 'salesman2', 'warehouse', 'client']) {
    const res = await s.post('/v1/auth/login', { email: `${who}@fixture.test`, password: FIXTURE_PASSWORD });
    tokens[who] = ((await res.json()) as { token: string }).token;
  }
});
test.after.always(async () => {
  try {
    closeAll(); // throws when an event was off its schema
  } finally {
    await erp?.$pool.end();
    await s?.close();
  }
});

/** The app's own connections to its database (the pool the doorbell polls through). */
const appBackends = (db: ReturnType<typeof erpPool>) =>
  db.one<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'fieldsync'`).then((r) => r.n);
const poked = <E extends { event: string; data: any }>(got: E[], bucket: string): E[] => got.filter((e) => e.event === 'sync:poke' && e.data.buckets.includes(bucket));

test.serial('an ERP change pokes each affected bucket once, and the pull that follows sees it', async (t) => {
  const device = new Device('salesman1', (cursor, limit) => s.post('/v1/sync/pull', { ...(cursor && { cursor }), limit }, { authorization: `Bearer ${tokens.salesman1}` }), s.url);
  await device.catchUp(1000);
  const c = socket(s.url, tokens.salesman1);
  const got = record(c);
  await connected(c);
  await s.settle();
  await wait(250); // quiet spell
  got.length = 0;
  await erp.none('UPDATE stock SET qty = 321 WHERE product_id = 3 AND warehouse_id = 1');
  const visible = Date.now(); // the commit returned: from here the latency is fieldsync's
  await until(() => poked(got, 'stock:1').length > 0, 'the poke');
  await wait(400); // a whole window: no second poke may follow
  const pokes = got.filter((e) => e.event === 'sync:poke');
  t.is(pokes.length, 1, JSON.stringify(got));
  t.deepEqual(pokes[0]!.data.buckets, ['stock:1']);
  // latency is a benchmark figure (npm run bench:realtime), not a timed assertion
  t.log(`poked ${pokes[0]!.at - visible} ms after the commit became visible`);
  await until(() => got.some((e) => e.event === 'stock:changed'), 'stock:changed');
  const stock = got.filter((e) => e.event === 'stock:changed');
  t.deepEqual(stock.at(-1)?.data.items, [{ productId: 3, warehouseId: 1, qty: 321, reserved: 0 }]);
  await device.catchUp(1000);
  t.is([...device.table('stock').values()].find((r) => r.row.product === 3)!.row.qty, 321, 'the pull after the poke has it');
});

test.serial('a burst of 1,000 stock updates becomes a handful of messages with the last quantities', async (t) => {
  const c = socket(s.url, tokens.warehouse);
  const got = record(c);
  await connected(c);
  await wait(250);
  const started = Date.now();
  for (let i = 1; i <= 1000; i++) await erp.none('UPDATE stock SET qty = $1 WHERE product_id = $2 AND warehouse_id = 2', [i, 1 + (i % 10)]);
  const took = Date.now() - started;
  await s.settle();
  await wait(600);
  const pokes = got.filter((e) => e.event === 'sync:poke' && e.data.buckets.includes('stock:2'));
  const stock = got.filter((e) => e.event === 'stock:changed');
  t.log(`1,000 commits in ${took} ms -> ${pokes.length} pokes, ${stock.length} stock:changed`);
  // one per window while it lasts (+ leading and trailing edges); the watermark may hold
  // the burst back and release it at once, which only makes fewer messages
  t.true(pokes.length >= 1 && pokes.length <= Math.ceil((Date.now() - started) / 200) + 2, `${pokes.length} pokes`);
  t.true(stock.length <= Math.ceil((Date.now() - started) / 200) + 2);
  const latest = new Map<number, number>();
  for (const e of stock) for (const it of e.data.items) if (it.warehouseId === 2) latest.set(it.productId, it.qty);
  const db = await s.db.map('SELECT product_id, qty FROM stock WHERE warehouse_id = 2 AND product_id <= 10', [], (r: { product_id: number; qty: number }) => [r.product_id, r.qty] as const);
  for (const [p, q] of db) t.is(latest.get(p), q, `product ${p}: the last quantity arrived`);
});

test.serial('rooms follow the bucket set: a salesman gets his order events, never another salesman’s', async (t) => {
  const one = socket(s.url, tokens.salesman1);
  const two = socket(s.url, tokens.salesman2);
  const admin = socket(s.url, tokens.admin);
  const [g1, g2, ga] = [record(one), record(two), record(admin)];
  await Promise.all([connected(one), connected(two), connected(admin)]);
  const id = '22222222-2222-4222-8222-222222222222';
  await erp.none(`INSERT INTO orders (id, client_id, salesman_id, warehouse_id, total) VALUES ($1, 4, 1, 1, 5)`, [id]);
  await erp.none(`UPDATE orders SET status = 'confirmed' WHERE id = $1`, [id]);
  await s.settle();
  await until(() => ga.some((e) => e.event === 'order:status' && e.data.status === 'confirmed'), 'order:status');
  await wait(300);
  const statuses = (g: typeof g1) => g.filter((e) => e.event === 'order:status' && e.data.orderId === id).map((e) => e.data.status);
  t.deepEqual(statuses(g1).at(-1), 'confirmed');
  t.deepEqual(statuses(ga).at(-1), 'confirmed', 'managers see every order');
  t.deepEqual(statuses(g2), [], 'never another salesman’s');
  t.false(g2.some((e) => e.event === 'sync:poke' && e.data.buckets.some((b: string) => b === 'orders:1' || b === 'clients:1')));

  // client 5 moves from salesman 2 to salesman 1: salesman 1's rooms grow, salesman 2 is told to pull
  const before = g2.length;
  await erp.none('UPDATE clients SET salesman_id = 1 WHERE id = 5');
  await until(() => g2.slice(before).some((e) => e.event === 'sync:poke' && e.data.buckets.includes('clients:2')), 'the poke for the moved client');
  t.pass();
});

test.serial('config events reach only the rooms of the changed rows’ buckets: stock:changed (batch) and order:status (row)', async (t) => {
  // rooms: salesman1 stock:1 orders:1; salesman2 stock:2 orders:2; warehouse stock:1-3;
  // admin stock:1-3 orders:all; client (client 1, salesman 2's) client_orders:1, no stock
  const who = ['salesman1', 'salesman2', 'warehouse', 'admin', 'client'] as const;
  const sockets = who.map((w) => socket(s.url, tokens[w]));
  const got = Object.fromEntries(who.map((w, i) => [w, record(sockets[i]!)])) as Record<(typeof who)[number], ReturnType<typeof record>>;
  await Promise.all(sockets.map(connected));
  await s.settle();
  await wait(300);
  const order = '33333333-3333-4333-8333-333333333333';
  // one ERP transaction: a product's stock in every warehouse, and a new order of client 1
  // (salesman 2) confirmed at once
  await erp.tx(async (tx) => {
    await tx.none('UPDATE stock SET qty = 600 + warehouse_id WHERE product_id = 6');
    await tx.none(`INSERT INTO orders (id, client_id, salesman_id, warehouse_id, total) VALUES ($1, 1, 2, 2, 5)`, [order]);
    await tx.none(`UPDATE orders SET status = 'confirmed' WHERE id = $1`, [order]);
  });
  const stockOf = (g: ReturnType<typeof record>) =>
    g.filter((e) => e.event === 'stock:changed').flatMap((e) => e.data.items as { productId: number; warehouseId: number; qty: number }[]).filter((i) => i.productId === 6);
  const statusOf = (g: ReturnType<typeof record>) => g.filter((e) => e.event === 'order:status' && e.data.orderId === order).map((e) => e.data.status as string);
  await until(() => new Set(stockOf(got.warehouse).map((i) => i.warehouseId)).size === 3, 'stock:changed of every warehouse');
  await until(() => statusOf(got.admin).length > 0 && statusOf(got.salesman2).length > 0 && statusOf(got.client).length > 0, 'order:status');
  await wait(500); // a whole window more: nothing else may arrive
  const warehouses = (g: ReturnType<typeof record>) => [...new Set(stockOf(g).map((i) => i.warehouseId))].sort();
  t.deepEqual(warehouses(got.salesman1), [1], 'his warehouse only');
  t.deepEqual(warehouses(got.salesman2), [2]);
  t.deepEqual(warehouses(got.warehouse), [1, 2, 3], 'one batch per room, none dropped for a socket in several rooms');
  t.deepEqual(warehouses(got.admin), [1, 2, 3]);
  t.deepEqual(warehouses(got.client), [], 'no stock bucket, no stock events');
  for (const i of stockOf(got.warehouse)) t.is(i.qty, 600 + i.warehouseId);
  // a row event goes out once per (row, transaction), to every room of the row at once
  t.deepEqual(statusOf(got.salesman2), ['confirmed'], 'orders:2');
  t.deepEqual(statusOf(got.admin), ['confirmed'], 'orders:all');
  t.deepEqual(statusOf(got.client), ['confirmed'], 'client_orders:1');
  t.deepEqual(statusOf(got.salesman1), [], 'never another salesman’s order');
  t.deepEqual(statusOf(got.warehouse), [], 'no orders bucket');
  t.like(got.admin.find((e) => e.event === 'order:status' && e.data.orderId === order)!.data, { orderId: order, status: 'confirmed' });
  t.is(typeof got.admin.find((e) => e.event === 'order:status' && e.data.orderId === order)!.data.updatedAt, 'number');
  for (const c of sockets) c.disconnect();
});

test.serial('the app’s database connections killed: the doorbell polls on, and each later change is poked exactly once', async (t) => {
  const c = socket(s.url, tokens.salesman1);
  const got = record(c);
  await connected(c);
  await s.settle();
  await wait(300); // quiet spell: nothing pending for stock:1
  // cut every connection of the app's pool (the doorbell, the heads, requests): a failover,
  // an idle-session killer, a restarted PgBouncer
  await until(() => s.doorbell.watermark !== undefined, 'a first poll');
  t.true((await appBackends(erp)) > 0);
  // for a while, so polls and heads scans die mid-statement too, not only idle connections
  let killed = 0;
  let midStatement = 0;
  for (const until = Date.now() + 300; Date.now() < until; await wait(3)) {
    const r = await erp.one<{ killed: number; active: number }>(
      `SELECT count(pg_terminate_backend(pid))::int AS killed, count(*) FILTER (WHERE state = 'active')::int AS active
         FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'fieldsync'`,
    );
    killed += r.killed;
    midStatement += r.active;
  }
  t.true(killed > 0, 'the pool had connections to kill');
  t.log(`${killed} connections killed, ${midStatement} of them mid-statement`);
  got.length = 0;
  for (const [i, qty] of [77, 78].entries()) {
    const n = got.length;
    const x = s.heads.head('stock:1');
    await erp.none('UPDATE stock SET qty = $1 WHERE product_id = 4 AND warehouse_id = 1', [qty]);
    // no settle() here: only the doorbell's polls may index and move the heads
    await until(() => poked(got.slice(n), 'stock:1').length > 0, `the poke of change ${i + 1} after the kill`);
    t.true(s.doorbell.watermark! > x, 'the doorbell polled past the commit');
    t.true(s.heads.head('stock:1') > x, 'and moved the heads');
    await wait(500); // more than a window: no second poke may follow
    const pokes = poked(got.slice(n), 'stock:1');
    t.is(pokes.length, 1, JSON.stringify(got.slice(n)));
    t.true(BigInt(pokes[0]!.data.head) > x, 'the poke names a head past the change');
    await until(() => got.slice(n).some((e) => e.event === 'stock:changed'), `stock:changed ${qty}`);
    t.deepEqual(got.slice(n).filter((e) => e.event === 'stock:changed').at(-1)?.data.items, [{ productId: 4, warehouseId: 1, qty, reserved: 0 }]);
  }
  t.true((await appBackends(erp)) > 0, 'the pool reconnected');
});

test.serial('a short disconnect is recovered: the socket keeps its session and gets the events it missed', async (t) => {
  const c = socket(s.url, tokens.salesman1);
  const got = record(c);
  await connected(c);
  // a client resumes from the last broadcast it received: receive one first
  await erp.none('UPDATE stock SET qty = 554 WHERE product_id = 5 AND warehouse_id = 1');
  await until(() => got.some((e) => e.event === 'sync:poke'), 'a first poke');
  got.length = 0;
  const id = c.id!;
  c.io.engine.close(); // the network drops
  await until(() => !s.io.of('/').sockets.has(id), 'the server to notice');
  await erp.none('UPDATE stock SET qty = 555 WHERE product_id = 5 AND warehouse_id = 1');
  await s.settle();
  await wait(300); // the poke goes out while the phone is away
  c.connect();
  await connected(c);
  t.true(c.recovered, 'connection state recovered');
  await until(() => poked(got, 'stock:1').length > 0, 'the missed poke');
});

test('with the default poll interval and no LISTEN (PgBouncer-safe), an ERP change is poked, and the pull after the poke has it', async (t) => {
  const polled = await startTestServer({ POKE_WINDOW_MS: '100' }); // DOORBELL_POLL_MS unset: the default
  try {
    t.is(polled.config.doorbell.pollMs, 5, 'the default poll interval');
    await loadFixture(polled.db);
    await polled.settle();
    const login = await polled.post('/v1/auth/login', { email: 'warehouse@fixture.test', password: FIXTURE_PASSWORD });
    const token = ((await login.json()) as { token: string }).token;
    const device = new Device('warehouse', (cursor, limit) => polled.post('/v1/sync/pull', { ...(cursor && { cursor }), limit }, { authorization: `Bearer ${token}` }), polled.url);
    await device.catchUp(1000);
    const c = socket(polled.url, token);
    const got = record(c);
    await connected(c);
    await wait(200);
    const pool = erpPool(polled.tdb.url, 1);
    let visible = 0;
    try {
      // nothing session-bound: the app's connections listen on no channel (a PgBouncer in
      // transaction mode would break LISTEN), and none of its sessions ran a LISTEN
      const listening = await pool.one<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'fieldsync' AND query ILIKE 'LISTEN%'`,
      );
      t.is(listening.n, 0);
      await pool.none('UPDATE stock SET qty = 9 WHERE product_id = 1 AND warehouse_id = 3');
      visible = Date.now(); // the commit returned: from here the latency is fieldsync's
    } finally {
      await pool.$pool.end();
    }
    // no settle(): the doorbell alone moves the heads
    await until(() => poked(got, 'stock:3').length > 0, 'a poke from polling');
    t.log(`poked ${poked(got, 'stock:3')[0]!.at - visible} ms after the commit became visible`);
    // a poke goes out only once the watermark passed the change: the pull it causes has it
    await device.catchUp(1000);
    t.is([...device.table('stock').values()].find((r) => r.row.product === 1 && r.row.warehouse === 3)!.row.qty, 9);
    await wait(300);
    t.is(poked(got, 'stock:3').length, 1, 'once');
  } finally {
    await polled.close();
  }
});

test('two instances sharing Redis: a socket on either gets each event exactly once', async (t) => {
  const a = await startTestServer({ REDIS_URL: REDIS, POKE_WINDOW_MS: '100' });
  try {
    await loadFixture(a.db);
    await a.settle();
    const b = await startSecondInstance(a, { REDIS_URL: REDIS, POKE_WINDOW_MS: '100' }); // same database and Redis
    try {
      const login = await a.post('/v1/auth/login', { email: 'warehouse@fixture.test', password: FIXTURE_PASSWORD });
      const token = ((await login.json()) as { token: string }).token;
      const onA = socket(a.url, token);
      const onB = socket(b.url, token);
      const [ga, gb] = [record(onA), record(onB)];
      await Promise.all([connected(onA), connected(onB)]);
      await wait(300);
      const pool = erpPool(a.tdb.url, 1);
      await pool.none('UPDATE stock SET qty = 4242 WHERE product_id = 2 AND warehouse_id = 3');
      await pool.$pool.end();
      await until(() => poked(ga, 'stock:3').length > 0 && poked(gb, 'stock:3').length > 0, 'both sockets poked');
      await wait(500); // no duplicate may follow
      for (const [name, g] of [['A', ga], ['B', gb]] as const) {
        const pokes = g.filter((e) => e.event === 'sync:poke' && e.data.buckets.includes('stock:3'));
        t.is(pokes.length, 1, `socket on ${name}: ${JSON.stringify(g.map((e) => e.event))}`);
      }
    } finally {
      await b.stop();
    }
  } finally {
    await a.close();
  }
});
