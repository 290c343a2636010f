/**
 * Composition root: read the configuration, start, and stop on SIGTERM/SIGINT.
 * Nothing imports this file.
 */
import { networkInterfaces } from 'node:os';
import { ConfigError, loadConfig } from './config.js';
import { emulatorHint, listenUrls } from './lib/listen-urls.js';
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

const log = createLogger(config.log.level, config.log.format);
const server = await startServer(config, log).catch((err: unknown) => {
  if (err instanceof ConfigError) {
    console.error(err.message);
    process.exit(2);
  }
  throw err;
});

// Where phones, emulators and browsers find the server (the `fieldsync listening` log
// line carries the same URLs): printed for people, in demo mode or at a terminal; JSON
// logs stay JSON.
const demo = server.embedded && (config.seedDemo ?? true);
const hint = emulatorHint(server.bound.address, server.bound.port);
const listening =
  `\nfieldsync${demo ? ' demo' : ''} is listening on\n` +
  listenUrls(server.bound.address, server.bound.port, networkInterfaces())
    .map((u) => `  ${u}\n`)
    .join('') +
  (hint ? `  ${hint}\n` : '');
if (demo) {
  // Demo mode only: the password is a public demo credential, never a real one.
  console.log(
    listening +
      `  logins: admin@demo.test, manager@demo.test, salesman1@demo.test, salesman2@demo.test …,\n` +
      `          client@demo.test, warehouse@demo.test, driver@demo.test\n` +
      `  password: ${config.demo.password}\n` +
      `  try: curl -s ${server.url}/v1/auth/login -H 'content-type: application/json' \\\n` +
      `         -d '{"email":"salesman1@demo.test","password":"${config.demo.password}"}'\n`,
  );
} else if (process.stdout.isTTY) {
  console.log(listening);
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
