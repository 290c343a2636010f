/**
 * `npm run sync:check | sync:install [-- --dry-run] | sync:uninstall [-- --dry-run]`:
 * fieldsync in a database it did not create (README "Adopting your ERP database").
 *
 *   check      validates the sync config (SYNC_CONFIG) against DATABASE_URL and says
 *              whether the database matches it
 *   install    fieldsync's schema and the config's triggers, in one transaction;
 *              --dry-run prints every statement instead (for the DBA), changing nothing
 *   uninstall  removes every fieldsync trigger and fieldsync's schema
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config.js';
import { createDb } from '../db/pg.js';
import { dryRun, install, installedHash, uninstall } from '../install/apply.js';
import { planInstall } from '../install/plan.js';
import { SyncConfigError } from '../model/config.js';
import { loadConfigFile, loadModel } from '../model/load.js';

const USAGE = `usage: npm run sync:<command> [-- --dry-run]
  sync:check       validate the sync config against the database
  sync:install     install (or update) fieldsync in the database; --dry-run prints the SQL
  sync:uninstall   remove every fieldsync object; --dry-run prints the SQL
environment: DATABASE_URL (required), SYNC_CONFIG (default: the demo's config)`;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { 'dry-run': { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } },
});
const command = positionals[0];
if (values.help || !['check', 'install', 'uninstall'].includes(command ?? '')) {
  console.log(USAGE);
  process.exit(values.help ? 0 : 2);
}

let code = 0;
try {
  const config = loadConfig();
  if (!config.databaseUrl) throw new ConfigError(['DATABASE_URL: required (the embedded database installs itself at start)']);
  const db = createDb({ url: config.databaseUrl, poolMax: 2, applicationName: `fieldsync-${command}` });
  try {
    const checked = await loadConfigFile(config.syncConfig);
    if (command === 'uninstall') {
      const text = await uninstall(db, checked.schema, { dryRun: values['dry-run'] });
      console.log(values['dry-run'] ? text : `fieldsync removed (schema "${checked.schema}" and its triggers)`);
    } else {
      const model = await loadModel(db, checked);
      if (command === 'check') {
        const [have, plan] = await Promise.all([installedHash(db, model.schema), planInstall(db, model)]);
        console.log(`sync config OK: ${model.collections.size} collections, ${model.buckets.size} bucket definitions, ${model.roles.size} roles, ${model.apps.size} apps`);
        if (have === undefined) console.log('not installed in this database: npm run sync:install');
        else if (plan.steps.length > 0) console.log(`the database differs from the config (${plan.steps.length} statements): npm run sync:install -- --dry-run`);
        else console.log('installed and up to date');
        for (const a of plan.advice) console.log(a);
        if (have === undefined || plan.steps.length > 0) code = 1;
      } else if (values['dry-run']) {
        console.log((await dryRun(db, model)).text);
      } else {
        const report = await install(db, model);
        if (report.migrations.length === 0 && report.steps === 0) console.log('already installed: nothing changed');
        else {
          console.log(`installed: ${report.migrations.length} fieldsync migrations, ${report.steps} statements for the config`);
          if (report.resetBuckets.length) console.log(`devices start these bucket definitions over: ${report.resetBuckets.join(', ')}`);
        }
      }
    }
  } finally {
    await db.$pool.end();
  }
} catch (err) {
  console.error(err instanceof ConfigError || err instanceof SyncConfigError ? err.message : err);
  code = 2;
}
process.exit(code);
