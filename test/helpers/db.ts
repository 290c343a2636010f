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
  const admin = createDb({ url: `${TEST_PG}/postgres`, poolMax: 1, applicationName: `fieldsync-test-admin-${name}` });
  await admin.none('CREATE DATABASE $1:name', [name]);
  const url = `${TEST_PG}/${name}`;
  // its own application_name: the app under test opens its own pool to the same database
  const db = createDb({ url, poolMax: 10, applicationName: 'fieldsync-test' });
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
