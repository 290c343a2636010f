import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { TEST_SECRET } from '../helpers/server.js';
import { alive, childrenOf, descendantsOf, freePort, portOpen, requestInFlight, start, waitForOutput, waitForStatus, type Started } from '../helpers/process.js';

/**
 * `npm start` stops gracefully on a signal: npm runs `exec node --import tsx src/main.ts`,
 * so the process npm spawns is the server itself (no shell, no tsx CLI in between) and the
 * signals npm forwards reach it. A request in flight when the signal arrives is answered,
 * the port closes, and npm exits 0. (The production process, `node dist/main.js`, is
 * stopped the same way in image-build.test.ts.)
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
let tdb: TestDatabase;

test.before(async () => {
  tdb = await createTestDatabase(); // the demo ERP with fieldsync installed; no logins
});

test.after.always(async () => {
  await tdb?.drop();
});

async function npmStart(t: { teardown(fn: () => Promise<void>): void }): Promise<{ server: Started; port: number }> {
  const port = await freePort();
  const dataDir = await mkdtemp(join(tmpdir(), 'fieldsync-signals-')); // the embedded S3's files
  const server = start('npm', ['start'], {
    cwd: ROOT,
    env: {
      ...process.env,
      DATABASE_URL: tdb.url,
      JWT_SECRET: TEST_SECRET,
      SEED_DEMO: '0',
      HOST: '127.0.0.1',
      PORT: String(port),
      DATA_DIR: dataDir,
      LOG_LEVEL: 'info',
      LOG_FORMAT: 'json',
    },
  });
  t.teardown(async () => {
    // a failed test may leave the server (or a shell between npm and it) running: the whole tree
    for (const pid of server.child.pid ? descendantsOf(server.child.pid).reverse() : []) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    server.kill();
    await server.exited;
    await rm(dataDir, { recursive: true, force: true });
  });
  await waitForStatus(server, `http://127.0.0.1:${port}/ready`, 200, 60_000);
  return { server, port };
}

/** Holds a login in flight, sends the signal, checks the server drains it, answers, exits 0 and closes the port. */
async function stopsGracefully(t: import('ava').ExecutionContext, server: Started, port: number, signal: NodeJS.Signals, pid: number, nodePid: number) {
  const inFlight = await requestInFlight(port, { email: 'nobody@demo.test', password: 'not-the-password' });
  t.teardown(() => inFlight.destroy());
  process.kill(pid, signal);
  await waitForOutput(server, `"signal":"${signal}"`);
  await new Promise((r) => setTimeout(r, 300));
  t.true(alive(nodePid), 'the server waits for the request in flight');
  t.false(await portOpen(port), 'no new connections once stopping');
  const answer = await inFlight.finish();
  t.is(answer.status, 401, answer.body); // the login's own answer: no such user
  t.regex(answer.body, /invalid-credentials/);
  const exit = await server.exited;
  t.deepEqual(exit, { code: 0, signal: null }, server.output().slice(-3000));
  t.false(alive(nodePid), 'the server process is gone');
  t.notRegex(server.output(), /npm error|ELIFECYCLE/);
}

test.serial('npm start: SIGTERM to npm reaches the server, which answers the request in flight and exits 0', async (t) => {
  t.timeout(120_000);
  const { server, port } = await npmStart(t);
  const [node, ...more] = childrenOf(server.child.pid!);
  t.is(more.length, 0);
  t.deepEqual(node!.cmdline.slice(1), ['--import', 'tsx', 'src/main.ts'], 'npm spawned node itself: no shell, no tsx CLI');
  await stopsGracefully(t, server, port, 'SIGTERM', server.child.pid!, node!.pid);
});

test.serial('npm start: SIGINT to the process npm spawned stops the server gracefully, npm exits 0', async (t) => {
  t.timeout(120_000);
  const { server, port } = await npmStart(t);
  const [node] = childrenOf(server.child.pid!);
  t.regex(node!.cmdline[0]!, /node$/);
  await stopsGracefully(t, server, port, 'SIGINT', node!.pid, node!.pid);
});
