import pgPromise from 'pg-promise';
import { randomBytes } from 'node:crypto';
import { createDb, type Db } from '../../src/db/pg.js';
import { migrate } from '../../src/db/migrate.js';

/** The server the tests run against; its `postgres` database is used to create and drop. */
export const TEST_PG = process.env.TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432';

export interface TestDatabase {
  name: string;
  url: string;
  db: Db;
  drop(): Promise<void>;
}

/**
 * A fresh database for one test file: unique name per run, migrated, dropped by drop().
 * Tests never share state with each other or with an earlier run.
 */
export async function createTestDatabase(opts: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const name = `fieldsync_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  // distinct connection strings (pg-promise tells pools apart by them): the app under test
  // opens its own pool to the same database
  const admin = createDb({ url: `${TEST_PG}/postgres?application_name=fieldsync-test-admin-${name}`, poolMax: 1 });
  await admin.none('CREATE DATABASE $1:name', [name]);
  const url = `${TEST_PG}/${name}`;
  const db = createDb({ url: `${url}?application_name=fieldsync-test`, poolMax: 10 });
  if (opts.migrate !== false) await migrate(db);
  return {
    name,
    url,
    db,
    async drop() {
      await db.$pool.end();
      await admin.none('DROP DATABASE IF EXISTS $1:name WITH (FORCE)', [name]);
      await admin.$pool.end();
    },
  };
}

const erpPgp = pgPromise();

/**
 * A plain pg-promise pool acting as the ERP: no fieldsync code in the way. Its idle
 * connections may be cut when the test database is force-dropped at teardown; that is
 * expected and must not crash the test process.
 */
export function erpPool(url: string, max = 8): pgPromise.IDatabase<unknown> {
  const pool = erpPgp({ connectionString: url, max, application_name: `erp-${randomBytes(3).toString('hex')}` });
  pool.$pool.on('error', () => undefined);
  return pool;
}
