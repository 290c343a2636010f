import test from 'ava';
import { ConfigError, loadConfig } from '../../src/config.js';
import type { RunningServer } from '../../src/server.js';
import type { PullBody } from '../helpers/device.js';
import { FIXTURE_PASSWORD, loadFixture } from '../helpers/fixture.js';
import { startSecondInstance, startTestServer, TEST_SECRET, type TestServer } from '../helpers/server.js';

/**
 * Rotating the JWT key (which, without CURSOR_SECRET, also keys cursors and snapshot page
 * URLs) and the cursor key with an overlap: during it, what the old key signed still
 * verifies on a process that signs with the new one; after it, nothing does.
 */
const NEW = 'a-new-jwt-secret-of-at-least-32-characters!';
const NEW_CURSOR = 'a-new-cursor-secret-of-at-least-32-characters';
const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const hour = () => new Date(Date.now() + 3600_000).toISOString();
const past = () => new Date(Date.now() - 1000).toISOString();

let s: TestServer;
let old: { token: string; cursor: string; page: string };

test.before(async () => {
  // snapshots live in Redis, so a second process serves the first one's pages
  s = await startTestServer({ REDIS_URL });
  await loadFixture(s.db);
  await s.settle();
  const { token } = (await (await s.post('/v1/auth/login', { email: 'salesman1@fixture.test', password: FIXTURE_PASSWORD })).json()) as { token: string };
  const first = (await (await s.post('/v1/sync/pull', { limit: 5 }, { authorization: `Bearer ${token}` })).json()) as PullBody;
  const page = first.snapshots[0]?.pages[0];
  if (!page) throw new Error('the fixture offers no snapshot: the test needs one');
  old = { token, cursor: first.cursor, page };
});

test.after.always(async () => {
  await s?.close();
});

/** What a process with `env` says to the old token, cursor and snapshot page URL. */
async function verdicts(env: Record<string, string>) {
  const p: RunningServer = await startSecondInstance(s, { REDIS_URL, ...env });
  try {
    const auth = { authorization: `Bearer ${old.token}` };
    const me = (await fetch(`${p.url}/v1/auth/me`, { headers: auth })).status;
    // the cursor, under a token the process signs itself (so only the cursor's key is tested)
    const fresh = (await (await fetch(`${p.url}/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'salesman1@fixture.test', password: FIXTURE_PASSWORD }) })).json()) as { token: string };
    const pull = (await fetch(`${p.url}/v1/sync/pull`, { method: 'POST', headers: { authorization: `Bearer ${fresh.token}`, 'content-type': 'application/json' }, body: JSON.stringify({ cursor: old.cursor, limit: 5 }) })).status;
    const page = (await fetch(`${p.url}${old.page}`)).status;
    const freshMe = (await fetch(`${p.url}/v1/auth/me`, { headers: { authorization: `Bearer ${fresh.token}` } })).status;
    return { me, pull, page, freshMe };
  } finally {
    await p.stop();
  }
}

test.serial('a new JWT_SECRET with the old one as JWT_SECRET_PREVIOUS: old tokens, cursors and page URLs verify during the overlap', async (t) => {
  t.deepEqual(await verdicts({ JWT_SECRET: NEW, JWT_SECRET_PREVIOUS: TEST_SECRET, JWT_SECRET_PREVIOUS_UNTIL: hour() }), { me: 200, pull: 200, page: 200, freshMe: 200 });
});

test.serial('after the overlap, or without the previous key, what the old key signed is refused', async (t) => {
  const refused = { me: 401, pull: 400, page: 403, freshMe: 200 };
  t.deepEqual(await verdicts({ JWT_SECRET: NEW, JWT_SECRET_PREVIOUS: TEST_SECRET, JWT_SECRET_PREVIOUS_UNTIL: past() }), refused);
  t.deepEqual(await verdicts({ JWT_SECRET: NEW }), refused);
});

test.serial('CURSOR_SECRET rotation: the old cursor key keeps cursors and page URLs good during its overlap, tokens are not affected', async (t) => {
  // the old cursor key is the one derived from TEST_SECRET (no CURSOR_SECRET before)
  t.deepEqual(
    await verdicts({ CURSOR_SECRET: NEW_CURSOR, CURSOR_SECRET_PREVIOUS: TEST_SECRET, CURSOR_SECRET_PREVIOUS_UNTIL: hour() }),
    { me: 200, pull: 200, page: 200, freshMe: 200 },
  );
  t.deepEqual(await verdicts({ CURSOR_SECRET: NEW_CURSOR }), { me: 200, pull: 400, page: 403, freshMe: 200 });
});

test('a previous key needs its end, and the end a key', (t) => {
  const base = { DATABASE_URL: 'postgres://x/y', JWT_SECRET: NEW };
  t.throws(() => loadConfig({ ...base, JWT_SECRET_PREVIOUS: TEST_SECRET }), { instanceOf: ConfigError, message: /JWT_SECRET_PREVIOUS and JWT_SECRET_PREVIOUS_UNTIL: set both/ });
  t.throws(() => loadConfig({ ...base, CURSOR_SECRET_PREVIOUS_UNTIL: hour() }), { instanceOf: ConfigError, message: /CURSOR_SECRET_PREVIOUS and CURSOR_SECRET_PREVIOUS_UNTIL/ });
  t.throws(() => loadConfig({ ...base, JWT_SECRET_PREVIOUS: TEST_SECRET, JWT_SECRET_PREVIOUS_UNTIL: 'tomorrow' }), { instanceOf: ConfigError, message: /JWT_SECRET_PREVIOUS_UNTIL/ });
  t.is(loadConfig({ ...base, JWT_SECRET_PREVIOUS: TEST_SECRET, JWT_SECRET_PREVIOUS_UNTIL: '2027-01-01T00:00:00Z' }).auth.jwtSecretPrevious?.until, Date.UTC(2027, 0, 1));
});
