import { randomUUID } from 'node:crypto';
import test from 'ava';
import { createLogger } from '../../src/observability/logger.js';
import { AuditLog } from '../../src/push/audit.js';
import { erpPool } from '../helpers/db.js';
import { FIXTURE_PASSWORD, loadFixture } from '../helpers/fixture.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/**
 * The push's audit trail (`<schema>.audit`, written in the background) and graceful
 * shutdown: every mutation audited, the buffer written at stop, a push in flight
 * finished. What a push does: push.test.ts.
 */
let s: TestServer;
/** salesman 1's client */
const S1_CLIENT = 4;

test.before(async () => {
  s = await startTestServer();
  await loadFixture(s.db);
});
test.after.always(async () => {
  await s?.close();
});

const order = (clientId: number, lines: { productId: number; qty: number }[]) => ({
  type: 'order.create',
  payload: { orderId: randomUUID(), clientId, lines },
});
interface PushAnswer {
  results: { id: string; status: string }[];
}

test.serial('every mutation is audited, and the audit survives a graceful shutdown', async (t) => {
  const other = await startTestServer();
  try {
    await loadFixture(other.db);
    const login = await other.post('/v1/auth/login', { email: 'salesman1@fixture.test', password: FIXTURE_PASSWORD });
    const { token, user } = (await login.json()) as { token: string; user: { id: number } };
    const ids = [randomUUID(), randomUUID()];
    const res = await other.post(
      '/v1/sync/push',
      {
        deviceId: 'audited-phone',
        mutations: [
          { id: ids[0], type: 'order.create', payload: { orderId: randomUUID(), clientId: S1_CLIENT, lines: [{ productId: 1, qty: 1 }] } },
          { id: ids[1], type: 'order.cancel', payload: { orderId: randomUUID() } },
        ],
      },
      { authorization: `Bearer ${token}` },
    );
    t.is(res.status, 200);
    await other.stop(); // before the periodic flush: stop must write the buffer
    const pool = erpPool(other.tdb.url, 1);
    try {
      const rows = await pool.any('SELECT mutation_id::text, status, code, device_id, type, user_id FROM $1:name.audit ORDER BY id', [other.model.schema]);
      t.deepEqual(rows.map((r) => [r.mutation_id, r.status, r.code, r.device_id, r.type, r.user_id]), [
        [ids[0], 'applied', null, 'audited-phone', 'order.create', String(user.id)],
        [ids[1], 'rejected', 'order_not_found', 'audited-phone', 'order.cancel', String(user.id)],
      ]);
    } finally {
      await pool.$pool.end();
    }
  } finally {
    await other.tdb.drop();
  }
});

test.serial('the audit log keeps writing after a flush that found nothing, and its stop returns', async (t) => {
  const audit = new AuditLog(s.db, s.model, createLogger('silent'), 60_000);
  const entry = (code: string) => ({ at: new Date(), userId: '1', deviceId: 'audit-test', mutationId: randomUUID(), type: 'order.create', status: 'rejected' as const, code, durationMs: 1 });
  const count = async () => (await s.db.one<{ n: number }>('SELECT count(*)::int AS n FROM $1:name.audit WHERE device_id = $2', [s.model.schema, 'audit-test'])).n;
  // an empty flush (the timer firing after a flush took everything) must not stick
  await audit.flush();
  audit.record([entry('first')]);
  await audit.flush();
  t.is(await count(), 1);
  await audit.flush();
  audit.record([entry('second')]);
  // stop writes what is left and returns (it used to spin on the stale empty flush)
  await audit.stop();
  t.is(await count(), 2);
  t.is(audit.pending, 0);
});

test.serial('a graceful shutdown lets a push in flight finish: every mutation answered, in the ledger and audited', async (t) => {
  const other = await startTestServer();
  try {
    await loadFixture(other.db);
    await other.db.none('UPDATE stock SET qty = 100000, reserved = 0');
    const login = await other.post('/v1/auth/login', { email: 'salesman1@fixture.test', password: FIXTURE_PASSWORD });
    const token = ((await login.json()) as { token: string }).token;
    const mutations = Array.from({ length: 60 }, () => ({ id: randomUUID(), ...order(S1_CLIENT, [{ productId: 1 + Math.floor(Math.random() * 30), qty: 1 }]) }));
    const pending = other.post('/v1/sync/push', { deviceId: 'late-phone', mutations }, { authorization: `Bearer ${token}` });
    await new Promise((r) => setTimeout(r, 30));
    await other.stop();
    const res = await pending;
    t.is(res.status, 200);
    const body = (await res.json()) as PushAnswer;
    t.is(body.results.length, 60);
    const pool = erpPool(other.tdb.url, 1);
    try {
      const { ledger, audit } = await pool.one<{ ledger: number; audit: number }>(
        `SELECT (SELECT count(*)::int FROM $1:name.mutations) AS ledger, (SELECT count(*)::int FROM $1:name.audit) AS audit`,
        [other.model.schema],
      );
      t.is(ledger, 60);
      t.is(audit, 60);
    } finally {
      await pool.$pool.end();
    }
  } finally {
    await other.tdb.drop();
  }
});
