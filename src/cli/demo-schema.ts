/** `npm run demo:schema`: creates the demo ERP's tables (sql/demo/) in DATABASE_URL, as the ERP would. */
import { ConfigError, loadConfig } from '../config.js';
import { createDb } from '../db/pg.js';
import { applyDemoSchema } from '../install/apply.js';

try {
  const config = loadConfig();
  if (!config.databaseUrl) throw new ConfigError(['DATABASE_URL: required']);
  const db = createDb({ url: config.databaseUrl, poolMax: 1, applicationName: 'fieldsync-demo-schema' });
  try {
    const applied = await applyDemoSchema(db);
    console.log(applied.length ? `demo ERP schema: applied ${applied.length} files` : 'demo ERP schema: up to date');
  } finally {
    await db.$pool.end();
  }
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(2);
}
