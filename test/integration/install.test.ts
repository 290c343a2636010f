import { pino } from 'pino';
import { Indexer } from '../../src/sync/indexer.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import test from 'ava';
import { dryRun, install, installedHash, uninstall } from '../../src/install/apply.js';
import { planInstall } from '../../src/install/plan.js';
import { checkShape, type CheckedConfig } from '../../src/model/config.js';
import { loadConfigFile, loadModel } from '../../src/model/load.js';
import { createTestDatabase, erpFixture, type TestDatabase } from '../helpers/db.js';

/**
 * `sync:install` against databases fieldsync did not create (issue 10): existing data is
 * synced, a second install changes nothing, a config change moves exactly what changed,
 * and uninstall leaves the ERP's schema as it was (pg_dump --schema-only, byte for byte).
 */
const run = promisify(execFile);

async function schemaDump(url: string): Promise<string> {
  const { stdout } = await run('pg_dump', ['--schema-only', '--no-owner', '--no-privileges', url], { maxBuffer: 64 * 1024 * 1024 });
  // the header names the pg_dump version; the rest is the schema
  return stdout.replace(/^-- Dumped (from|by).*$|^\\(un)?restrict .*$/gm, '');
}

const ERP_ROWS = `
  INSERT INTO warehouses (id, code, name, name_ar) VALUES (1, 'RUH', 'Riyadh', 'الرياض'), (2, 'JED', 'Jeddah', 'جدة');
  INSERT INTO pricelists (id, code, name, name_ar) VALUES (1, 'RET', 'Retail', 'تجزئة'), (2, 'WHO', 'Wholesale', 'جملة');
  INSERT INTO salesmen (id, code, name, name_ar, warehouse_id) VALUES (1, 'S1', 'Ali', 'علي', 1);
  INSERT INTO categories (id, name, name_ar) VALUES (1, 'Water', 'مياه');
  INSERT INTO products (id, sku, name, name_ar, category_id, base_price)
    SELECT i, 'SKU-' || i, 'Product ' || i, 'منتج ' || i, 1, i FROM generate_series(1, 20) i;
  INSERT INTO prices (pricelist_id, product_id, price) SELECT pl, p, p * pl FROM generate_series(1, 2) pl, generate_series(1, 20) p;
  INSERT INTO stock (product_id, warehouse_id, qty) SELECT p, w, p FROM generate_series(1, 20) p, generate_series(1, 2) w;
  INSERT INTO clients (id, code, name, name_ar, type, pricelist_id, salesman_id)
    SELECT i, 'C' || i, 'Client ' || i, 'عميل ' || i, 'retail', 1 + i % 2, CASE WHEN i <= 3 THEN 1 END FROM generate_series(1, 5) i;
`;

async function count(tdb: TestDatabase, sql: string, values?: unknown[]): Promise<number> {
  return (await tdb.db.one<{ n: number }>(`SELECT count(*)::int AS n FROM ${sql}`, values)).n;
}

test('install adopts a database with data: every existing row is in its buckets; a second install changes nothing', async (t) => {
  const tdb = await createTestDatabase({ install: false });
  try {
    await tdb.db.none(ERP_ROWS);
    const model = await loadModel(tdb.db, await loadConfigFile(undefined));
    t.is(await installedHash(tdb.db, model.schema), undefined);

    const first = await install(tdb.db, model);
    t.deepEqual(first.migrations, ['001.do.fieldsync.sql', '002.do.outbox.sql']);
    t.true(first.steps > 0);
    t.deepEqual(first.resetBuckets, []);
    // rows written before fieldsync arrived are items of their buckets
    t.is(await count(tdb, `fieldsync.items WHERE bucket = 'catalog' AND coll = 'products' AND NOT deleted`), 20);
    t.is(await count(tdb, `fieldsync.items WHERE bucket = 'prices:2' AND NOT deleted`), 20);
    t.is(await count(tdb, `fieldsync.items WHERE bucket = 'stock:1'`), 20);
    t.is(await count(tdb, `fieldsync.items WHERE bucket = 'clients:1'`), 3);
    t.is(await count(tdb, `fieldsync.items WHERE bucket = 'clients:all'`), 5);

    // ...and new writes are captured from now on
    await tdb.db.none(`UPDATE clients SET salesman_id = NULL WHERE id = 1`);
    await new Indexer(tdb.db, model, pino({ level: 'silent' })).flush();
    t.is(await count(tdb, `fieldsync.items WHERE bucket = 'clients:1' AND row_key = '1' AND deleted`), 1);

    const triggers = async () => tdb.db.map(`SELECT tgname || ':' || oid AS t FROM pg_trigger WHERE tgname LIKE 'fieldsync%' ORDER BY 1`, [], (r: { t: string }) => r.t);
    const functions = async () => tdb.db.map(`SELECT proname || ':' || oid AS f FROM pg_proc WHERE pronamespace = 'fieldsync'::regnamespace ORDER BY 1`, [], (r: { f: string }) => r.f);
    const [beforeT, beforeF] = [await triggers(), await functions()];
    const items = await count(tdb, 'fieldsync.items');
    const second = await install(tdb.db, model);
    t.deepEqual(second, { migrations: [], steps: 0, resetBuckets: [], hash: first.hash });
    t.deepEqual(await triggers(), beforeT, 'no trigger was recreated');
    t.deepEqual(await functions(), beforeF, 'no function was recreated');
    t.is(await count(tdb, 'fieldsync.items'), items);
    t.is(await installedHash(tdb.db, model.schema), first.hash);
    t.regex((await dryRun(tdb.db, model)).text, /^BEGIN;\n\nCOMMIT;\n/);
  } finally {
    await tdb.drop();
  }
});

test('the dry run prints every statement and changes nothing; ERP tables get triggers only', async (t) => {
  const tdb = await createTestDatabase({ install: false });
  try {
    const before = await schemaDump(tdb.url);
    const model = await loadModel(tdb.db, await loadConfigFile(undefined));
    const { text, plan } = await dryRun(tdb.db, model);
    t.regex(text, /^BEGIN;\n-- fieldsync's own schema\nCREATE SCHEMA "fieldsync";/);
    t.regex(text, /CREATE TABLE items/);
    t.regex(text, /CREATE OR REPLACE FUNCTION "fieldsync"\."b_products"\(r "public"\."products"\)/);
    t.regex(text, /CREATE TRIGGER "fieldsync_orders_lines_insert" AFTER INSERT ON "public"\."order_lines"/);
    t.regex(text, /COMMIT;\n$/);
    t.true(plan.steps.length > 50);
    t.is(await schemaDump(tdb.url), before, 'a dry run changes nothing');
    // nothing on an ERP table but triggers: no ALTER TABLE, no index, no constraint outside fieldsync's schema
    for (const st of plan.steps) {
      t.false(/ALTER TABLE|CREATE (UNIQUE )?INDEX|ADD CONSTRAINT/i.test(st.sql) && !st.sql.includes('"fieldsync"'), st.sql.slice(0, 80));
    }
  } finally {
    await tdb.drop();
  }
});

test('uninstall leaves the ERP schema exactly as it was before install', async (t) => {
  const tdb = await createTestDatabase({ install: false });
  try {
    await tdb.db.none(ERP_ROWS);
    const before = await schemaDump(tdb.url);
    const model = await loadModel(tdb.db, await loadConfigFile(undefined));
    await install(tdb.db, model);
    t.not(await schemaDump(tdb.url), before);
    const script = await uninstall(tdb.db, model.schema, { dryRun: true });
    t.regex(script, /DROP TRIGGER "fieldsync_products_insert" ON "public"\."products";/);
    t.regex(script, /DROP SCHEMA IF EXISTS "fieldsync" CASCADE;/);
    await uninstall(tdb.db, model.schema);
    t.is(await schemaDump(tdb.url), before);
    t.is(await count(tdb, 'products'), 20, 'the ERP data is untouched');
    // and it can come back
    await install(tdb.db, model);
    t.is(await count(tdb, `fieldsync.items WHERE coll = 'products'`), 20);
  } finally {
    await tdb.drop();
  }
});

test('a config change moves only what changed, and resets only the buckets whose definition changed', async (t) => {
  const tdb = await createTestDatabase({ install: false });
  try {
    await tdb.db.none(ERP_ROWS);
    const demo = await loadConfigFile(undefined);
    await install(tdb.db, await loadModel(tdb.db, demo));
    const resets = async () => tdb.db.map(`SELECT name || ':' || reset_seq AS r FROM fieldsync.bucket_defs ORDER BY name`, [], (r: { r: string }) => r.r);
    const before = await resets();

    // the stock bucket now leaves out empty stock rows: one function and one bucket definition change
    const changed: CheckedConfig = checkShape({ ...demo, buckets: { ...demo.buckets, stock: { rows: { stock: 'CASE WHEN r.qty > 0 THEN r.warehouse_id END' }, snapshot: true } } });
    const model = await loadModel(tdb.db, changed);
    const plan = await planInstall(tdb.db, model);
    t.deepEqual(
      plan.steps.map((st) => st.why).filter(Boolean),
      [
        'changed function fieldsync.b_stock',
        'items are written as one indexing batch: under the indexer lock, with a new batch number',
        'bucket definition stock changed: rebuilt, devices download its buckets again',
        'record what is installed',
      ],
    );
    t.deepEqual(plan.resetBuckets, ['stock']);
    await tdb.db.none(`UPDATE stock SET qty = 0 WHERE product_id <= 5 AND warehouse_id = 1`);
    const report = await install(tdb.db, model);
    t.deepEqual(report.resetBuckets, ['stock']);
    const after = await resets();
    t.is(after.filter((r) => !before.includes(r)).length, 1, 'only stock has a new reset position');
    t.true(after.find((r) => r.startsWith('stock:'))! > before.find((r) => r.startsWith('stock:'))!);
    t.is(await count(tdb, `fieldsync.items WHERE bucket = 'stock:1' AND NOT deleted`), 15);
    t.is(await count(tdb, `fieldsync.items WHERE bucket = 'stock:2' AND NOT deleted`), 20);

    // a collection removed from the config: its triggers and functions go, nothing else moves
    const { stock: _stock, ...rest } = changed.collections;
    const apps = Object.fromEntries(Object.entries(changed.apps).map(([n, a]) => [n, { ...a, collections: Object.fromEntries(Object.entries(a.collections).filter(([c]) => c !== 'stock')) }]));
    const { stock: _b, ...buckets } = changed.buckets;
    const roles = Object.fromEntries(Object.entries(changed.roles).map(([n, r]) => [n, { ...r, buckets: Object.fromEntries(Object.entries(r.buckets).filter(([b]) => b !== 'stock')) }]));
    const { 'stock:changed': _e, ...events } = changed.events ?? {};
    const smaller = await loadModel(tdb.db, checkShape({ ...changed, collections: rest, buckets, roles, apps, events }));
    const whys = (await planInstall(tdb.db, smaller)).steps.map((st) => st.why).filter(Boolean);
    t.true(whys.length > 0);
    // the salesman's stock query was the only one reading salesmen: its watch goes too
    t.true(whys.every((w) => /stock|salesmen/.test(w) || w.startsWith('items are written as one indexing batch') || w === 'record what is installed'), whys.join('\n'));
    await install(tdb.db, smaller);
    t.is(await count(tdb, `pg_trigger WHERE tgname LIKE 'fieldsync\\_stock%'`), 0);
    t.is(await count(tdb, `fieldsync.items WHERE coll = 'stock'`), 0);
    t.is(await count(tdb, `fieldsync.bucket_defs WHERE name = 'stock'`), 0);
    t.is(await count(tdb, `pg_trigger WHERE tgname LIKE 'fieldsync\\_prices%'`), 4);
  } finally {
    await tdb.drop();
  }
});

test('installs in parallel (replicas starting at once) install exactly once', async (t) => {
  const tdb = await createTestDatabase({ install: false });
  try {
    const model = await loadModel(tdb.db, await loadConfigFile(undefined));
    const reports = await Promise.all([install(tdb.db, model), install(tdb.db, model), install(tdb.db, model)]);
    t.is(reports.filter((r) => r.migrations.length > 0).length, 1);
    t.is(reports.filter((r) => r.steps > 0).length, 1);
  } finally {
    await tdb.drop();
  }
});

test('the second ERP (schema erp, fieldsync schema fs_sync) installs and uninstalls cleanly too', async (t) => {
  const fixture = await erpFixture('tsh');
  const tdb = await createTestDatabase({ erp: fixture, install: false });
  try {
    const before = await schemaDump(tdb.url);
    const model = await loadModel(tdb.db, await loadConfigFile(fixture.configPath));
    t.is(model.schema, 'fs_sync');
    await install(tdb.db, model);
    t.is(await count(tdb, `pg_namespace WHERE nspname = 'fieldsync'`), 0);
    t.is((await install(tdb.db, model)).steps, 0);
    await uninstall(tdb.db, model.schema);
    t.is(await schemaDump(tdb.url), before);
  } finally {
    await tdb.drop();
  }
});

test('an install that fails half-way leaves nothing behind (one transaction)', async (t) => {
  const tdb = await createTestDatabase({ install: false });
  try {
    const before = await schemaDump(tdb.url);
    // an object in the way: the same function with another return type cannot be replaced
    await tdb.db.none(`CREATE SCHEMA fieldsync; CREATE FUNCTION fieldsync.k_stock(r public.stock) RETURNS integer LANGUAGE sql AS 'SELECT 1'`);
    const model = await loadModel(tdb.db, await loadConfigFile(undefined));
    await t.throwsAsync(install(tdb.db, model), { message: /cannot change return type/ });
    await tdb.db.none('DROP SCHEMA fieldsync CASCADE');
    t.is(await schemaDump(tdb.url), before, 'no table, function or trigger of the failed install remains');
  } finally {
    await tdb.drop();
  }
});

test('a server refuses to start on a database that does not match its config, and says what to run', async (t) => {
  const { loadConfig } = await import('../../src/config.js');
  const { createLogger } = await import('../../src/observability/logger.js');
  const { startServer } = await import('../../src/server.js');
  const tdb = await createTestDatabase({ install: false });
  try {
    const config = loadConfig({ DATABASE_URL: tdb.url, JWT_SECRET: 'x'.repeat(32), PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', SEED_DEMO: '0' });
    await t.throwsAsync(startServer(config, createLogger('silent')), { message: /fieldsync is not installed in this database: review `npm run sync:install -- --dry-run`/ });
    const model = await loadModel(tdb.db, await loadConfigFile(undefined));
    await install(tdb.db, model);
    await tdb.db.none('DROP TRIGGER fieldsync_stock_update ON public.stock');
    await t.throwsAsync(startServer(config, createLogger('silent')), { message: /the database does not match the sync config/ });
  } finally {
    await tdb.drop();
  }
});

test('two installs in one database (two schemas, different tables) leave each other alone', async (t) => {
  const fixture = await erpFixture('tsh');
  const tdb = await createTestDatabase({ erp: fixture, install: false });
  try {
    const { applyDemoSchema } = await import('../../src/install/apply.js');
    await applyDemoSchema(tdb.db);
    const demo = await loadModel(tdb.db, await loadConfigFile(undefined));
    const tsh = await loadModel(tdb.db, await loadConfigFile(fixture.configPath));
    await install(tdb.db, demo);
    await install(tdb.db, tsh);
    t.is((await install(tdb.db, demo)).steps, 0, "the second install does not count the first's triggers as its own");
    const triggers = () => count(tdb, `pg_trigger WHERE tgname LIKE 'fieldsync\\_%'`);
    const both = await triggers();
    await uninstall(tdb.db, tsh.schema);
    t.true((await triggers()) < both);
    t.is((await planInstall(tdb.db, demo)).steps.length, 0, "the demo's install is intact");
    t.is(await count(tdb, `pg_namespace WHERE nspname = 'fs_sync'`), 0);
  } finally {
    await tdb.drop();
  }
});
