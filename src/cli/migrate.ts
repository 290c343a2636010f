/** `npm run migrate`: applies pending migrations to DATABASE_URL and exits. */
import { ConfigError, loadConfig } from '../config.js';
import { migrate } from '../db/migrate.js';
import { createDb } from '../db/pg.js';

try {
  const config = loadConfig();
  if (!config.databaseUrl) {
    console.error('npm run migrate needs DATABASE_URL (the embedded database migrates itself at start)');
    process.exit(1);
  }
  const db = createDb({ url: config.databaseUrl, poolMax: 2 });
  try {
    const report = await migrate(db);
    console.log(report.applied.length ? `applied: ${report.applied.join(', ')}` : 'up to date', `(version ${report.to})`);
  } finally {
    await db.$pool.end();
  }
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
}
