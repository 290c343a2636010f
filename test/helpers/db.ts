import pgPromise from 'pg-promise';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { createDb, type Db } from '../../src/db/pg.js';
import { applyDemoSchema, install } from '../../src/install/apply.js';
import { loadConfigFile, loadModel } from '../../src/model/load.js';
import type { Model } from '../../src/model/model.js';
import { Indexer } from '../../src/sync/indexer.js';
import { pino } from 'pino';

/** The server the tests run against; its `postgres` database is used to create and drop. */
export const TEST_PG = process.env.TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432';

/** Prefix of every test database's name, so runs sharing a server can be told apart and cleaned up. */
const PREFIX = process.env.TEST_DB_PREFIX ?? 'fieldsync_test';

/** An ERP schema other than the demo's: its DDL and its sync config file. */
export interface ErpFixture {
  /** SQL that creates the ERP's tables (run as one script) */
  schemaSql: string;
  /** path of its sync config module (default-exports defineConfig({...})) */
  configPath: string;
}

export interface TestDatabaseOptions {
  /**
   * The ERP the database starts with: 'demo' (default) the demo ERP schema
   * (sql/demo/), 'none' an empty database, or a fixture (erpFixture('tsh')).
   */
  erp?: 'demo' | 'none' | ErpFixture;
  /**
   * Install fieldsync with the ERP's config (the demo's for 'demo'). Default: true, except
   * for erp 'none', which has no config.
   */
  install?: boolean;
}

export interface TestDatabase {
  name: string;
  url: string;
  db: Db;
  /** the compiled sync config fieldsync was installed with; undefined when not installed */
  model: Model | undefined;
  /**
   * What the server's indexer does after a commit: takes the outbox into items (one or more
   * batches). Resolves with the batch number covering everything committed before the call.
   */
  index(): Promise<bigint>;
  drop(): Promise<void>;
}

const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url));

/** A second ERP from test/fixtures/<name>/: schema.sql and fieldsync.config.ts. */
export async function erpFixture(name: string): Promise<ErpFixture> {
  return {
    schemaSql: await readFile(`${FIXTURES}${name}/schema.sql`, 'utf8'),
    configPath: `${FIXTURES}${name}/fieldsync.config.ts`,
  };
}

/**
 * A fresh database for one test file: unique name per run, with the ERP schema asked for
 * and fieldsync installed into it, dropped by drop(). Tests never share state with each
 * other or with an earlier run.
 */
export async function createTestDatabase(opts: TestDatabaseOptions = {}): Promise<TestDatabase> {
  const erp = opts.erp ?? 'demo';
  const installing = opts.install ?? erp !== 'none';
  if (installing && erp === 'none') throw new Error('createTestDatabase: erp "none" has no sync config to install');

  const name = `${PREFIX}_${process.pid}_${randomBytes(4).toString('hex')}`;
  // distinct connection strings (pg-promise tells pools apart by them): the app under test
  // opens its own pool to the same database
  const admin = createDb({ url: `${TEST_PG}/postgres?application_name=fieldsync-test-admin-${name}`, poolMax: 1 });
  await admin.none('CREATE DATABASE $1:name', [name]);
  const url = `${TEST_PG}/${name}`;
  const db = createDb({ url: `${url}?application_name=fieldsync-test`, poolMax: 10 });
  const drop = async () => {
    await db.$pool.end();
    await admin.none('DROP DATABASE IF EXISTS $1:name WITH (FORCE)', [name]);
    await admin.$pool.end();
  };

  let model: Model | undefined;
  try {
    if (erp === 'demo') await applyDemoSchema(db);
    else if (erp !== 'none') await db.tx('test:erp-schema', (t) => t.none(erp.schemaSql));
    if (installing) {
      const config = await loadConfigFile(erp === 'demo' ? undefined : (erp as ErpFixture).configPath);
      model = await loadModel(db, config);
      await install(db, model);
    }
  } catch (err) {
    await drop();
    throw err;
  }
  let indexer: Indexer | undefined;
  const index = () => {
    if (!model) throw new Error('index(): fieldsync is not installed in this test database');
    indexer ??= new Indexer(db, model, pino({ level: 'silent' }));
    return indexer.flush();
  };
  return { name, url, db, model, index, drop };
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
