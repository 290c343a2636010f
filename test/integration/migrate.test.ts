import test from 'ava';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { migrate } from '../../src/db/migrate.js';

let tdb: TestDatabase;
test.before(async () => {
  tdb = await createTestDatabase({ migrate: false });
});
test.after.always(async () => {
  await tdb?.drop();
});

test.serial('migrations apply to an empty database, then a re-run applies nothing', async (t) => {
  const first = await migrate(tdb.db);
  t.is(first.from, 0);
  t.true(first.applied.length >= 2);
  const tables = await tdb.db.map(
    `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`,
    [],
    (r: { table_name: string }) => r.table_name,
  );
  for (const name of ['users', 'categories', 'products', 'warehouses', 'stock', 'pricelists', 'prices',
    'clients', 'salesmen', 'orders', 'order_lines', 'sync_tombstones', 'sync_mutations']) {
    t.true(tables.includes(name), `table ${name} exists`);
  }
  const second = await migrate(tdb.db);
  t.deepEqual(second.applied, []);
  t.is(second.from, first.to);
});

test('concurrent migrators on an empty database apply each migration exactly once', async (t) => {
  const fresh = await createTestDatabase({ migrate: false });
  try {
    const results = await Promise.all([migrate(fresh.db), migrate(fresh.db), migrate(fresh.db)]);
    const applied = results.flatMap((r) => r.applied);
    t.is(new Set(applied).size, applied.length, 'no migration applied twice');
    t.true(applied.length >= 2);
    const rows = await fresh.db.one('SELECT count(*) AS n, count(DISTINCT version) AS d FROM schema_migrations WHERE version > 0');
    t.is(rows.n, applied.length);
    t.is(rows.d, rows.n);
  } finally {
    await fresh.drop();
  }
});
