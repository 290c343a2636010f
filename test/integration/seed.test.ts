import test from 'ava';
import { verifyPassword } from '../../src/auth/passwords.js';
import { readPrincipal } from '../../src/auth/tokens.js';
import type { Db } from '../../src/db/pg.js';
import { UsersRepo } from '../../src/db/repos/users.js';
import { DEMO_TABLES, demoTableName, seedDemo, type DemoTable } from '../../src/seed/load.js';
import { ean13CheckDigit } from '../../src/seed/text.js';
import { createTestDatabase, type TestDatabase, type TestDatabaseOptions } from '../helpers/db.js';

const PASSWORD = 'demo-password-1';

// Serial: the scale-10 timing should not compete with the other tests for 2 cores.
// Every test makes and drops its own database (one at a time: the helper opens a pool to
// the server's `postgres` database per test database, and pg-promise warns about two).
async function withDatabase<T>(fn: (tdb: TestDatabase) => Promise<T>, opts: TestDatabaseOptions = {}): Promise<T> {
  const tdb = await createTestDatabase(opts);
  try {
    return await fn(tdb);
  } finally {
    await tdb.drop();
  }
}

/** fieldsync's own schema in the test databases (the demo config's default) */
const SCHEMA = 'fieldsync';
/** fieldsync's login table, where the seed's users go (the ERP's tables are in public) */
const USERS = `${SCHEMA}.users`;

/**
 * md5 of each seeded table's rows (the demo ERP's and fieldsync's users), without what
 * legitimately differs between two runs: `updated_at` (set by the database) and
 * `password_hash` (salted).
 */
async function checksums(db: Db): Promise<Record<DemoTable, string>> {
  const out = {} as Record<DemoTable, string>;
  for (const table of DEMO_TABLES) {
    const { h } = await db.one<{ h: string }>(
      `SELECT md5(coalesce(string_agg(r, '|' ORDER BY r), '')) AS h
         FROM (SELECT (to_jsonb(t) - 'updated_at' - 'password_hash')::text AS r FROM $1:raw t) rows`,
      [demoTableName(table, SCHEMA)],
    );
    out[table] = h;
  }
  return out;
}

async function count(db: Db, from: string): Promise<number> {
  return (await db.one<{ n: number }>(`SELECT count(*)::int AS n FROM ${from}`)).n;
}

test.serial('the same scale and seed give identical data; another seed gives other data', async (t) => {
  const first = await withDatabase(async ({ db }) => {
    await seedDemo(db, { scale: 0.2, seed: 7, password: PASSWORD });
    return checksums(db);
  });
  await withDatabase(async ({ db }) => {
    await seedDemo(db, { scale: 0.2, seed: 7, password: PASSWORD });
    t.deepEqual(await checksums(db), first);

    await seedDemo(db, { scale: 0.2, seed: 8, password: PASSWORD, reset: true });
    const other = await checksums(db);
    t.notDeepEqual(other, first);
    t.not(other.products, first.products);
    t.not(other.orders, first.orders);
    // the category tree and the fixed tables do not depend on the seed
    t.is(other.categories, first.categories);
    t.is(other.warehouses, first.warehouses);
  });
});

test.serial("scale 1 is today's business, consistent with itself", async (t) => {
  await withDatabase(async ({ db }) => {
    const report = await seedDemo(db, { scale: 1, seed: 42, password: PASSWORD });
    t.log(`scale 1 seeded in ${report.elapsedMs} ms`);

    t.is(await count(db, 'products'), 2218);
    t.is(await count(db, 'clients'), 500);
    t.is(await count(db, 'salesmen'), 100);
    t.is(await count(db, 'pricelists'), 5);
    t.is(await count(db, 'warehouses'), 3);
    t.is(await count(db, 'stock'), 2218 * 3);
    t.is(await count(db, USERS), 100 + 5);
    const orders = await count(db, 'orders');
    t.true(orders >= 200 && orders <= 500, `a few hundred orders (${orders})`);
    const categories = await count(db, 'categories');
    t.true(categories >= 180 && categories <= 220, `~200 categories (${categories})`);
    const tops = await count(db, 'categories WHERE parent_id IS NULL');
    t.true(tops >= 12 && tops <= 15, `12-15 top-level categories (${tops})`);
    t.deepEqual(report.counts.products, 2218);

    t.is(await count(db, `products WHERE name_ar !~ '[\\u0600-\\u06FF]' OR description_ar !~ '[\\u0600-\\u06FF]'`), 0);
    // products hang off subcategories only, and every subcategory has some
    t.is(await count(db, 'products p JOIN categories c ON c.id = p.category_id WHERE c.parent_id IS NULL'), 0);
    t.is(await count(db, `categories c WHERE parent_id IS NOT NULL AND NOT EXISTS
                            (SELECT 1 FROM products p WHERE p.category_id = c.id)`), 0);
    t.is(await count(db, 'products WHERE base_price::text !~ $$^\\d+\\.\\d\\d$$'), 0);

    const barcodes = await db.map('SELECT barcode FROM products', [], (r: { barcode: string }) => r.barcode);
    t.true(barcodes.every((b) => /^\d{13}$/.test(b) && Number(b.charAt(12)) === ean13CheckDigit(b)), 'valid EAN-13');
    t.is(new Set(barcodes).size, barcodes.length);

    // an order's total is the sum of its lines; a line's price is the client's pricelist price
    t.is(await count(db, `orders o WHERE o.total <> (SELECT sum(line_total) FROM order_lines l WHERE l.order_id = o.id)`), 0);
    t.is(await count(db, 'orders o WHERE NOT EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = o.id)'), 0);
    t.is(await count(db, 'order_lines WHERE line_total <> qty * unit_price'), 0);
    t.is(await count(db, `order_lines l JOIN orders o ON o.id = l.order_id JOIN clients c ON c.id = o.client_id
                          LEFT JOIN prices p ON p.pricelist_id = c.pricelist_id AND p.product_id = l.product_id
                          WHERE p.price IS DISTINCT FROM l.unit_price`), 0);
    // orders.created_by names the salesman's login (its id as text), whose claim is the order's salesman
    t.is(await count(db, `orders o LEFT JOIN ${USERS} u ON u.id::text = o.created_by
                          WHERE u.id IS NULL OR u.role <> 'salesman' OR (u.claims->>'salesmanId')::bigint IS DISTINCT FROM o.salesman_id`), 0);
    const statuses = await db.map('SELECT DISTINCT status FROM orders ORDER BY 1', [], (r: { status: string }) => r.status);
    t.deepEqual(statuses, ['pending', 'confirmed', 'picking', 'shipped', 'delivered', 'cancelled']);

    // the identity sequences continue after the seeded ids
    const wh = await db.one<{ id: number }>(`INSERT INTO warehouses (code, name, name_ar) VALUES ('WH-X', 'X', 'س') RETURNING id`);
    t.is(wh.id, 4);
  });
});

test.serial('scale 10 is the growth target and loads fast', async (t) => {
  t.timeout(120_000);
  await withDatabase(async ({ db }) => {
    const report = await seedDemo(db, { scale: 10, seed: 42, password: PASSWORD });
    t.log(`scale 10 seeded in ${report.elapsedMs} ms`, report.counts);
    t.is(await count(db, 'products'), 20_000);
    t.is(await count(db, 'clients'), 5000);
    t.is(await count(db, 'salesmen'), 1000);
    t.is(await count(db, 'stock'), 60_000);
    t.is(await count(db, USERS), 1005);
    t.true(report.elapsedMs < 60_000);
  });
});

test.serial('a non-empty database is refused unless reset is asked for', async (t) => {
  await withDatabase(async ({ db }) => {
    // one hand-made user is enough to refuse: seeding would mix demo rows into real ones
    await db.none(`INSERT INTO ${USERS} (email, role, display_name) VALUES ('ops@example.com', 'admin', 'Ops')`);
    await t.throwsAsync(seedDemo(db, { scale: 0.1, seed: 1, password: PASSWORD }), { message: /already has data.*fieldsync\.users/ });
    t.is(await count(db, 'products'), 0);
    t.is(await count(db, USERS), 1, 'nothing written');

    const first = await seedDemo(db, { scale: 0.1, seed: 1, password: PASSWORD, reset: true });
    t.is(await count(db, `${USERS} WHERE email = 'ops@example.com'`), 0);
    t.is(await count(db, 'products'), first.counts.products);

    await t.throwsAsync(seedDemo(db, { scale: 0.1, seed: 1, password: PASSWORD }), { message: /already has data/ });
    const again = await seedDemo(db, { scale: 0.2, seed: 2, password: PASSWORD, reset: true });
    t.is(await count(db, 'products'), again.counts.products);
    t.is(await count(db, USERS), again.counts.users);
    t.is((await db.one<{ id: number }>(`SELECT min(id)::int AS id FROM ${USERS}`)).id, 1, 'user identities restarted too');
    t.is((await db.one<{ id: number }>('SELECT min(id) AS id FROM products')).id, 1, 'identities restarted');
  });
});

test.serial('the demo logins exist and are linked', async (t) => {
  await withDatabase(async ({ db, model }) => {
    const report = await seedDemo(db, { scale: 0.1, seed: 3, password: PASSWORD });
    const users = new UsersRepo(db, SCHEMA);
    const admin = await users.findByEmail('Admin@demo.test');
    t.is(admin?.role, 'admin');
    t.deepEqual(admin?.claims, {});
    t.true(await verifyPassword(PASSWORD, admin?.password_hash ?? null));
    t.false(await verifyPassword('wrong password', admin?.password_hash ?? null));
    for (const [email, role] of [['manager', 'manager'], ['warehouse', 'warehouse'], ['driver', 'driver']] as const) {
      t.is((await users.findByEmail(`${email}@demo.test`))?.role, role);
    }

    const salesman1 = await users.findByEmail('salesman1@demo.test');
    t.is(salesman1?.role, 'salesman');
    t.deepEqual(Object.keys(salesman1?.claims ?? {}), ['salesmanId']);
    const s = await db.one<{ code: string }>('SELECT code FROM salesmen WHERE id = $1', [salesman1?.claims.salesmanId]);
    t.is(s.code, 'S0001');
    const last = await users.findByEmail(`salesman${report.counts.salesmen}@demo.test`);
    t.truthy(last?.claims.salesmanId);
    t.is(await count(db, `${USERS} WHERE role = 'salesman'`), report.counts.salesmen);
    // each salesman's login names a different salesman, and every one exists in the ERP
    t.is(await count(db, `(SELECT DISTINCT claims->>'salesmanId' FROM ${USERS} WHERE role = 'salesman') s`), report.counts.salesmen);
    t.is(await count(db, `${USERS} u WHERE role = 'salesman' AND NOT EXISTS
                            (SELECT 1 FROM salesmen s WHERE s.id = (u.claims->>'salesmanId')::bigint)`), 0);

    const client = await users.findByEmail('client@demo.test');
    t.is(client?.role, 'client_app');
    const c = await db.one<{ pricelist_id: number | null }>('SELECT pricelist_id FROM clients WHERE id = $1', [client?.claims.clientId]);
    t.not(c.pricelist_id, null);
    t.is(await count(db, `${USERS} WHERE email <> lower(email) OR display_name = ''`), 0);

    // every seeded record fits the demo config's roles, so every demo login can log in
    const all = await db.any<{ id: number; role: string; claims: Record<string, unknown> }>(`SELECT id, role, claims FROM ${USERS}`);
    t.is(all.length, report.counts.users);
    const misfits = all
      .map((u) => ({ u, read: readPrincipal(model!, { userId: String(u.id), role: u.role, source: u.claims }) }))
      .filter((x) => 'problem' in x.read);
    t.deepEqual(misfits, []);
  });
});

test.serial('seeding a database without the demo ERP schema or without fieldsync installed says which step is missing', async (t) => {
  await withDatabase(async ({ db }) => {
    await t.throwsAsync(seedDemo(db, { scale: 0.1, seed: 1, password: PASSWORD }), { message: /demo ERP schema is missing.*applyDemoSchema/ });
  }, { erp: 'none' });
  await withDatabase(async ({ db }) => {
    await t.throwsAsync(seedDemo(db, { scale: 0.1, seed: 1, password: PASSWORD }), { message: /fieldsync is not installed in schema "fieldsync".*install/ });
    t.is(await count(db, 'products'), 0, 'nothing written');
  }, { install: false });
});
