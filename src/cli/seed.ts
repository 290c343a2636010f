/**
 * `npm run seed -- [--scale 1] [--seed 42] [--reset]`: writes the demo data set into
 * DATABASE_URL (defaults from DEMO_SCALE / DEMO_SEED; logins use DEMO_PASSWORD). On the
 * way it brings the database to what the demo needs: the demo ERP schema (sql/demo/)
 * when it is missing, then fieldsync installed with the sync config (SYNC_CONFIG, or
 * the demo's). Both steps are idempotent, so running it on a ready database only seeds.
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config.js';
import { createDb, type Db } from '../db/pg.js';
import { applyDemoSchema, install } from '../install/apply.js';
import { SyncConfigError } from '../model/config.js';
import { loadConfigFile, loadModel } from '../model/load.js';
import { validateOptions } from '../seed/generate.js';
import { seedDemo } from '../seed/load.js';

const USAGE = `usage: npm run seed -- [--scale <number>] [--seed <integer>] [--reset]
  --scale  1 = today's business (2,218 products), 10 = growth target (20,000 products);
           fractions such as 0.1 make a small set (default: DEMO_SCALE or 1)
  --seed   random seed; the same seed and scale give the same data (default: DEMO_SEED or 42)
  --reset  TRUNCATE the demo tables and fieldsync's users first (otherwise a non-empty
           database is refused); devices start over`;

function numberArg(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${name} must be a number (got "${value}")`);
  return n;
}

class UsageError extends Error {}

/**
 * The demo ERP schema, unless its tables are there already without the demo's version
 * table (created by hand or by an older fieldsync): applying it again would fail on
 * "relation already exists", and those tables are the ERP's to change.
 */
async function ensureDemoSchema(db: Db): Promise<string> {
  const found = await db.one<{ tracked: boolean; present: boolean }>(
    `SELECT to_regclass('public.demo_schema_version') IS NOT NULL AS tracked, to_regclass('public.products') IS NOT NULL AS present`,
  );
  if (found.present && !found.tracked) return 'demo ERP schema: tables present (not created by the demo schema), left as they are';
  const applied = await applyDemoSchema(db);
  return applied.length > 0 ? `demo ERP schema: applied ${applied.join(', ')}` : 'demo ERP schema: up to date';
}

try {
  const { values } = parseArgs({
    options: {
      scale: { type: 'string' },
      seed: { type: 'string' },
      reset: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
  } else {
    const config = loadConfig();
    if (!config.databaseUrl) {
      console.error('npm run seed needs DATABASE_URL (the embedded database seeds itself at first start)');
      process.exit(1);
    }
    const scale = numberArg('scale', values.scale, config.demo.scale);
    const seed = numberArg('seed', values.seed, config.demo.seed);
    try {
      validateOptions({ scale, seed });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    // SYNC_CONFIG: the sync config file; unset, the demo ERP's (src/demo/config.ts)
    const syncConfig = await loadConfigFile(config.syncConfig);
    const db = createDb({ url: config.databaseUrl, poolMax: config.db.poolMax, applicationName: 'fieldsync-seed' });
    try {
      console.log(await ensureDemoSchema(db));
      const model = await loadModel(db, syncConfig);
      const installed = await install(db, model);
      if (installed.migrations.length > 0) console.log(`fieldsync schema "${model.schema}": applied ${installed.migrations.join(', ')}`);
      console.log(
        installed.steps > 0
          ? `fieldsync install: ${installed.steps} capture objects created or changed (plan ${installed.hash})`
          : `fieldsync install: up to date (plan ${installed.hash})`,
      );
      if (installed.resetBuckets.length > 0) console.log(`  buckets reset for devices: ${installed.resetBuckets.join(', ')}`);
      const report = await seedDemo(db, {
        scale,
        seed,
        password: config.demo.password,
        schema: model.schema,
        reset: values.reset,
        log: (msg) => console.log(msg),
      });
      console.log(`\nseeded scale ${report.scale}, seed ${report.seed} in ${(report.elapsedMs / 1000).toFixed(1)} s:`);
      for (const [table, n] of Object.entries(report.counts)) {
        console.log(`  ${(table === 'users' ? `${model.schema}.users` : table).padEnd(16)} ${n.toLocaleString('en')}`);
      }
      console.log('logins: admin@demo.test, manager@demo.test, salesman1@demo.test …, client@demo.test, ' +
        'warehouse@demo.test, driver@demo.test (password: DEMO_PASSWORD)');
    } finally {
      await db.$pool.end();
    }
  }
} catch (err) {
  if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
  } else {
    console.error(err instanceof ConfigError || err instanceof SyncConfigError || err instanceof Error ? err.message : err);
  }
  process.exit(1);
}
