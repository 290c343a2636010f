/**
 * Composition root: read the configuration, start, and stop on SIGTERM/SIGINT.
 * Nothing imports this file.
 */
import { ConfigError, loadConfig } from './config.js';
import { createLogger } from './observability/logger.js';
import { startServer } from './server.js';

let config;
try {
  config = loadConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(err.message);
    process.exit(2);
  }
  throw err;
}

const log = createLogger(config.log.level);
const server = await startServer(config, log).catch((err: unknown) => {
  if (err instanceof ConfigError) {
    console.error(err.message);
    process.exit(2);
  }
  throw err;
});

if (server.embedded && (config.seedDemo ?? true)) {
  // Demo mode only: the password is a public demo credential, never a real one.
  console.log(
    `\nfieldsync demo is running at ${server.url}\n` +
      `  logins: admin@demo.test, manager@demo.test, salesman1@demo.test, salesman2@demo.test …,\n` +
      `          client@demo.test, warehouse@demo.test, driver@demo.test\n` +
      `  password: ${config.demo.password}\n` +
      `  try: curl -s ${server.url}/v1/auth/login -H 'content-type: application/json' \\\n` +
      `         -d '{"email":"salesman1@demo.test","password":"${config.demo.password}"}'\n`,
  );
}

// A background task of a library (the Redis adapter while Redis is down) must not take
// the server down with it: log it and keep serving.
process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 30_000);
    force.unref();
    void server.stop().then(() => process.exit(0));
  });
}
