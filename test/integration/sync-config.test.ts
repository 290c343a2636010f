import test from 'ava';
import { checkShape, SyncConfigError, type CheckedConfig } from '../../src/model/config.js';
import { loadConfigFile, loadModel } from '../../src/model/load.js';
import { computeBucketSet } from '../../src/sync/bucket-set.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

/**
 * The sync config is checked at start (and by `npm run sync:check`) against the live
 * database: every mistake is one line naming its path in the config, and nothing starts
 * half-configured.
 */
let tdb: TestDatabase;
let demo: CheckedConfig;

test.before(async () => {
  tdb = await createTestDatabase({ install: false });
  demo = await loadConfigFile(undefined);
});
test.after.always(async () => {
  await tdb?.drop();
});

/** The problems loadModel reports for a variant of the demo config. */
async function problems(change: (c: CheckedConfig) => unknown): Promise<string[]> {
  try {
    await loadModel(tdb.db, checkShape(change(demo)));
    return [];
  } catch (err) {
    if (err instanceof SyncConfigError) return err.problems;
    throw err;
  }
}

const withProducts = (c: CheckedConfig, products: object) => ({ ...c, collections: { ...c.collections, products: { ...c.collections.products!, ...products } } });
const productColumns = (c: CheckedConfig, columns: object) => withProducts(c, { columns: { ...c.collections.products!.columns, ...columns } });

test('the demo config is valid against the demo ERP', async (t) => {
  t.deepEqual(await problems((c) => c), []);
});

test('an unknown table names the collection', async (t) => {
  t.deepEqual(await problems((c) => withProducts(c, { table: 'productz' })), ['collections.products.table: no table public.productz']);
});

test('an unknown column names the column', async (t) => {
  t.deepEqual(await problems((c) => productColumns(c, { skew: 'text' })), ['collections.products.columns.skew: no column skew in public.products']);
  t.deepEqual(await problems((c) => productColumns(c, { sku: { column: 'sku_code', type: 'text' } })), ['collections.products.columns.sku: no column sku_code in public.products']);
  t.deepEqual(await problems((c) => withProducts(c, { key: 'product_id' })), ['collections.products.key: no column product_id in public.products']);
});

test('a wrong wire type says what the column is and what the type needs', async (t) => {
  t.deepEqual(await problems((c) => productColumns(c, { price: { column: 'name', type: 'money' } })), ['collections.products.columns.price: text cannot be sent as money (expected a number type)']);
  t.deepEqual(await problems((c) => productColumns(c, { updated: { column: 'sku', type: 'ms' } })), ['collections.products.columns.updated: text cannot be sent as ms (expected timestamptz, timestamp or date)']);
  t.deepEqual(await problems((c) => withProducts(c, { key: 'updated_at' })), ['collections.products.key: updated_at is timestamptz; keys must be integer, text or uuid']);
});

test('an SQL expression that does not parse or run names its path', async (t) => {
  const [computed] = await problems((c) => productColumns(c, { label: { sql: "r.sku ||| ' '", type: 'text' } }));
  t.regex(computed!, /^collections\.products\.columns\.label: operator does not exist/);
  const [bucket] = await problems((c) => ({ ...c, buckets: { ...c.buckets, prices: { rows: { prices: 'r.pricelist_id +' }, snapshot: true } } }));
  t.regex(bucket!, /^buckets\.prices\.rows\.prices: syntax error/);
  const [soft] = await problems((c) => withProducts(c, { softDelete: 'r.sku' }));
  t.is(soft, 'collections.products.softDelete: must be a condition (boolean), not text');
  const [param] = await problems((c) => ({ ...c, roles: { ...c.roles, salesman: { ...c.roles.salesman!, buckets: { ...c.roles.salesman!.buckets, prices: 'SELECT nope FROM clients' } } } }));
  t.regex(param!, /^roles\.salesman\.buckets\.prices: column "nope" does not exist/);
});

test('references between sections are checked before the database is asked', (t) => {
  const shape = (change: (c: CheckedConfig) => unknown) => {
    try {
      checkShape(change(demo));
      return [];
    } catch (err) {
      return (err as SyncConfigError).problems;
    }
  };
  t.deepEqual(shape((c) => ({ ...c, buckets: { ...c.buckets, extra: { rows: { invoices: true } } } })), ['buckets.extra.rows.invoices: no collection "invoices"']);
  t.true(shape((c) => ({ ...c, roles: { ...c.roles, driver: { buckets: { routes: true } } } })).includes('roles.driver.buckets.routes: no bucket "routes"'));
  t.true(shape((c) => ({ ...c, roles: { ...c.roles, driver: { buckets: { clients: 'SELECT ${salesmanId}' } } } })).includes('roles.driver.buckets.clients: ${salesmanId} is not a claim of the role'));
  t.true(shape((c) => ({ ...c, roles: { ...c.roles, driver: { buckets: { prices: true } } } })).includes('roles.driver.buckets.prices: the bucket has keys: give a parameter query'));
  t.true(shape((c) => ({ ...c, apps: { ...c.apps, delivery: { ...c.apps.delivery!, collections: { products: ['sku', 'colour'] } } } })).includes('apps.delivery.collections.products: no column "colour" in products'));
  t.true(shape((c) => ({ ...c, apps: { ...c.apps, delivery: { ...c.apps.delivery!, roles: ['driver', 'courier'] } } })).includes('apps.delivery.roles: no role "courier"'));
  t.deepEqual(shape((c) => ({ ...c, collections: { ...c.collections, products: { ...c.collections.products!, columns: { ...c.collections.products!.columns, id: 'int' } } } })), [
    'collections.products.columns.id: "id" is reserved (b, id and v always go out)',
  ]);
  t.deepEqual(shape((c) => ({ ...c, collections: { ...c.collections, products: { ...c.collections.products!, columns: { sku: 'varchar' } } } })).length, 1);
  t.deepEqual(shape((c) => ({ ...c, events: { ...c.events, disconnect: { collection: 'stock', mode: 'row', fields: { qty: 'r.qty' } } } })), [
    'events.disconnect: the name is taken by the push channel; choose another',
  ]);
  t.deepEqual(shape((c) => ({ ...c, events: { 'sync:poke': { collection: 'stock', mode: 'batch', fields: { qty: 'r.qty' } } } })), [
    'events.sync:poke: the name is taken by the push channel; choose another',
  ]);
  t.deepEqual(shape((c) => ({ ...c, collections: { ...c.collections, products: { ...c.collections.products!, key: ['id', 'sku'] } } })), [
    'media.collection: products has a composite key; images need a collection with a single-column key',
  ]);
  t.deepEqual(shape((c) => ({ ...c, token: { roleMap: { driver: 'warehouse' } } })), [
    'token.roleMap: role "driver" cannot be written in a token (its own name maps to "warehouse" and no name maps to it)',
  ]);
});

test('a parameter query that finds nothing gives no bucket, not an error', async (t) => {
  const installed = await createTestDatabase();
  try {
    const model = installed.model!;
    // salesman 99 has no clients, no warehouse row: catalog, stock everywhere (none exist), his own clients and orders buckets
    const set = await computeBucketSet(installed.db, model, { userId: '1', role: 'salesman', claims: { salesmanId: 99 } });
    t.deepEqual(set, ['catalog', 'clients:99', 'orders:99']);
    const client = await computeBucketSet(installed.db, model, { userId: '2', role: 'client_app', claims: { clientId: 5 } });
    t.deepEqual(client, ['catalog', 'client_orders:5']);
  } finally {
    await installed.drop();
  }
});
