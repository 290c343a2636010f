/**
 * `npm run seed -- [--scale 1] [--seed 42] [--reset]`: migrates DATABASE_URL and writes the
 * demo data set (defaults from DEMO_SCALE / DEMO_SEED; logins use DEMO_PASSWORD).
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config.js';
import { migrate } from '../db/migrate.js';
import { createDb } from '../db/pg.js';
import { validateOptions } from '../seed/generate.js';
import { seedDemo } from '../seed/load.js';

const USAGE = `usage: npm run seed -- [--scale <number>] [--seed <integer>] [--reset]
  --scale  1 = today's business (2,218 products), 10 = growth target (20,000 products);
           fractions such as 0.1 make a small set (default: DEMO_SCALE or 1)
  --seed   random seed; the same seed and scale give the same data (default: DEMO_SEED or 42)
  --reset  TRUNCATE the demo tables first (otherwise a non-empty database is refused)`;

function numberArg(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${name} must be a number (got "${value}")`);
  return n;
}

class UsageError extends Error {}

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
    const db = createDb({ url: config.databaseUrl, poolMax: config.db.poolMax, applicationName: 'fieldsync-seed' });
    try {
      const migrated = await migrate(db);
      if (migrated.applied.length > 0) console.log(`migrated: ${migrated.applied.join(', ')}`);
      const report = await seedDemo(db, {
        scale,
        seed,
        password: config.demo.password,
        reset: values.reset,
        log: (msg) => console.log(msg),
      });
      console.log(`\nseeded scale ${report.scale}, seed ${report.seed} in ${(report.elapsedMs / 1000).toFixed(1)} s:`);
      for (const [table, n] of Object.entries(report.counts)) console.log(`  ${table.padEnd(12)} ${n.toLocaleString('en')}`);
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
    console.error(err instanceof ConfigError || err instanceof Error ? err.message : err);
  }
  process.exit(1);
}
