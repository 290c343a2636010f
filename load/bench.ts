/**
 * Local benchmark harness (autocannon): `npm run bench [-- --seconds 10 --connections 50]`.
 * Every figure is printed beside a bare Koa route measured in the same run, so the
 * numbers are ratios that mean something on any machine.
 *
 * Scenarios so far: the authenticated edge (JWT verification + routing + problem
 * middleware + compression) on a trivial route, and /health.
 * Runs against the embedded database in a temporary folder unless DATABASE_URL is set.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/observability/logger.js';
import { startServer } from '../src/server.js';
import { bareKoa, measure, report } from './harness.js';

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '10' }, connections: { type: 'string', default: '50' } },
});
const opts = { seconds: Number(values.seconds), connections: Number(values.connections) };

const dataDir = await mkdtemp(join(tmpdir(), 'fieldsync-bench-'));
const config = loadConfig({ ...process.env, DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', DEMO_SCALE: process.env.DEMO_SCALE ?? '0.1' });
const server = await startServer(config, createLogger(config.log.level));
const bare = await bareKoa();
try {
  const login = await fetch(`${server.url}/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'salesman1@demo.test', password: config.demo.password }),
  });
  const { token } = (await login.json()) as { token: string };

  const reference = await measure('bare Koa hello (reference)', bare.url, opts);
  const rows = [
    await measure('GET /health', `${server.url}/health`, opts),
    await measure('GET /v1/auth/me (JWT verified)', `${server.url}/v1/auth/me`, { ...opts, headers: { authorization: `Bearer ${token}` } }),
  ];
  report(reference, rows);
} finally {
  bare.server.close();
  await server.stop();
  await rm(dataDir, { recursive: true, force: true });
}
