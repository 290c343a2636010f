/**
 * Does an unrelated long write transaction slow down delivery? `npm run bench:open-tx
 * [-- --seconds 60 --interval 300 --rounds 1 --port 3918]`.
 *
 * The claim measured: a committed change reaches a poked device's replica as fast WITH an
 * unrelated write transaction open as without one. Goal: with a 60-second write
 * transaction open the whole time, commit -> changed row in the replica median < 20 ms and
 * p99 < 100 ms, printed beside the same figures without it.
 *
 * Needs DATABASE_URL (and JWT_SECRET) of a seeded database, as bench:realtime does; its
 * server's `postgres` database is used too (the second open transaction). Create one,
 * seed it (the seed creates the demo ERP schema and installs fieldsync first), and drop
 * it afterwards:
 *
 *   psql -h 127.0.0.1 -U postgres -d postgres -c 'CREATE DATABASE fieldsync_open_tx_bench'
 *   DATABASE_URL=postgres://postgres@127.0.0.1/fieldsync_open_tx_bench npm run seed -- --scale 1
 *   DATABASE_URL=postgres://postgres@127.0.0.1/fieldsync_open_tx_bench JWT_SECRET=$(openssl rand -base64 32) npm run bench:open-tx
 *   psql -h 127.0.0.1 -U postgres -d postgres -c 'DROP DATABASE fieldsync_open_tx_bench WITH (FORCE)'
 *
 * The server runs as a child process (`node --import tsx src/main.ts`, DATA_DIR in a
 * temporary folder); salesman1@demo.test is one device (test/helpers/device.ts) with a
 * socket.io-client socket. Each of --rounds rounds has two phases of --seconds, their
 * order alternating per round:
 *   without  no open transaction of ours;
 *   with     two write transactions held open the whole phase, each on its own
 *            connection, rolled back at its end: in DATABASE_URL's database
 *            `BEGIN; CREATE TEMP TABLE IF NOT EXISTS bench_scratch (i int); INSERT INTO
 *            bench_scratch VALUES (1);`, and in the `postgres` database of the same server
 *            `BEGIN; SELECT pg_current_xact_id();`. GET /ready is read once mid-phase and
 *            its `changes` printed (what an operator sees).
 * In both, every --interval ms (after the previous change arrived) one stock row of the
 * salesman's warehouse gets a new qty by a plain UPDATE through pg-promise (no fieldsync
 * code on the write path), and is timed from the UPDATE's promise resolving to
 *   commit -> poke     the socket's first `sync:poke` for the stock bucket;
 *   commit -> replica  the device, pulling on the poke (at once: a room of one socket has
 *                      a pullWithinMs of a few ms), holding the new qty in its stock table
 *                      (pulling again on each later poke until it does).
 * Each wait gives up after 10 s: a failure, counted and printed, never a hang.
 *
 * Printed: each phase (count, failures, median / p99 / max of both latencies), each round
 * with its phases side by side, min / median / max across rounds of the phases' medians
 * and p99s, the machine's load before and after, and the goal. Exit code: 0 when every
 * change arrived (whether or not the goal was met: it is printed), 3 when some did not
 * within 10 s, 1 on an error, 2 when a watchdog ends a run that takes far too long.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pgPromise from 'pg-promise';
import { io as connect, type Socket } from 'socket.io-client';
import { within } from '../src/lib/within.js';
import { Device } from '../test/helpers/device.js';
import { loadLine, median, pct } from './stats.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    interval: { type: 'string', default: '300' },
    rounds: { type: 'string', default: '1' },
    port: { type: 'string', default: '3918' },
  },
  strict: true,
});
const seconds = Number(values.seconds);
const interval = Number(values.interval);
const rounds = Number(values.rounds);
const port = Number(values.port);
if (![seconds, interval, rounds].every((n) => Number.isFinite(n) && n > 0) || !Number.isInteger(rounds)) {
  throw new Error('--seconds and --interval must be positive numbers, --rounds a positive integer');
}
if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error('--port must be a TCP port');
const databaseUrl = process.env.DATABASE_URL;
if (!databaseUrl || !process.env.JWT_SECRET) throw new Error('set DATABASE_URL (and JWT_SECRET) to a seeded database (see the header of load/open-tx-bench.ts)');
/** the same server's `postgres` database: the unrelated transaction in another database */
const otherUrl = (() => {
  const u = new URL(databaseUrl);
  if (decodeURIComponent(u.pathname.slice(1)) === 'postgres') throw new Error('DATABASE_URL must not be the postgres database: the benchmark holds a transaction there');
  u.pathname = '/postgres';
  return u.toString();
})();

const TIMEOUT_MS = 10_000;
const WARMUP_UPDATES = 5;
const url = `http://127.0.0.1:${port}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ms = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '-');

type Phase = 'without' | 'with';
const phaseName: Record<Phase, string> = { without: 'without an open transaction', with: 'with the open transactions' };
interface PhaseResult {
  round: number;
  phase: Phase;
  updates: number;
  /** no poke within 10 s */
  pokeFailures: number;
  /** the new qty not in the replica within 10 s (includes updates without a poke) */
  replicaFailures: number;
  poke: number[];
  replica: number[];
  pulls: number;
  /** write transactions of others open in the cluster when the phase started */
  others: number;
}
const stats = (xs: number[]) => ({ median: xs.length ? median(xs) : NaN, p99: pct(xs, 99), max: xs.length ? Math.max(...xs) : NaN });

// the whole run, generously: start-up and warm-up, then per phase its seconds plus a few timeouts
const budgetS = 240 + rounds * 2 * (seconds + 90);
let stopServer = () => {};
const watchdog = setTimeout(() => {
  console.error(`open-tx-bench: still running after ${budgetS} s, giving up`);
  stopServer();
  process.exit(2);
}, budgetS * 1000);
watchdog.unref();
process.once('SIGINT', () => {
  stopServer();
  process.exit(130);
});

const pgp = pgPromise();
const erp = pgp({ connectionString: databaseUrl, max: 2, application_name: 'open-tx-bench' });
/** one connection each, for the transactions held open */
const holdHere = pgp({ connectionString: databaseUrl, max: 1, application_name: 'open-tx-bench-holder' });
const holdOther = pgp({ connectionString: otherUrl, max: 1, application_name: 'open-tx-bench-holder' });
type Held = Awaited<ReturnType<typeof holdHere.connect>>;
const held: Held[] = [];

/** Opens both write transactions and keeps their connections; returns what they are. */
async function openTransactions(): Promise<string> {
  const here = await holdHere.connect();
  held.push(here);
  await here.none('SET idle_in_transaction_session_timeout = 0');
  await here.multi('BEGIN; CREATE TEMP TABLE IF NOT EXISTS bench_scratch (i int); INSERT INTO bench_scratch VALUES (1);');
  const a = await here.one<{ pid: number; xid: string; db: string }>('SELECT pg_backend_pid() AS pid, pg_current_xact_id_if_assigned()::text AS xid, current_database() AS db');
  const other = await holdOther.connect();
  held.push(other);
  await other.none('SET idle_in_transaction_session_timeout = 0');
  const [, rows] = await other.multi<{ xid: string }>('BEGIN; SELECT pg_current_xact_id()::text AS xid;');
  const { pid: bPid } = await other.one<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  return `pid ${a.pid} in ${a.db} (xid ${a.xid}), pid ${bPid} in postgres (xid ${rows?.[0]?.xid})`;
}

/** Checks both are still open (write transactions, since the phase began), then rolls them back. */
async function closeTransactions(phaseS: number): Promise<string> {
  const pids: number[] = [];
  for (const c of held) pids.push((await c.one<{ pid: number }>('SELECT pg_backend_pid() AS pid')).pid);
  const rows = await erp.any<{ pid: number; datname: string; xid: string | null; age: number }>(
    `SELECT pid, datname, backend_xid::text AS xid, extract(epoch FROM now() - xact_start)::float8 AS age
       FROM pg_stat_activity WHERE pid = ANY($1::int[]) ORDER BY xact_start`,
    [pids],
  );
  const open = rows.filter((r) => r.xid !== null && r.age >= phaseS - 1);
  for (const c of held.splice(0)) {
    await c.none('ROLLBACK');
    await c.done(true);
  }
  if (open.length !== pids.length) throw new Error(`the open transactions did not stay open the whole phase: ${JSON.stringify(rows)}`);
  return open.map((r) => `pid ${r.pid} in ${r.datname} open ${r.age.toFixed(1)} s`).join(', ');
}

const dataDir = await mkdtemp(join(tmpdir(), 'open-tx-bench-'));
let socket: Socket | undefined;
let exitCode = 1;
try {
  if (await fetch(`${url}/health`).then(() => true, () => false)) throw new Error(`something already answers on port ${port} (--port)`);
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', POKE_WINDOW_MS: '250', DATA_DIR: dataDir };
  const server = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  let exited: string | undefined;
  server.once('exit', (code, signal) => (exited = `server exited (${signal ?? code})`));
  stopServer = () => {
    if (exited === undefined) server.kill('SIGKILL');
  };
  const stop = async () => {
    if (exited !== undefined) return;
    const gone = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await Promise.race([gone, sleep(5000)]);
    stopServer();
  };

  try {
    const loadBefore = loadLine();
    console.log(`open transaction benchmark: ${rounds} round(s) of two ${seconds} s phases, an UPDATE every ${interval} ms, port ${port}`);
    console.log(`before: ${loadBefore}`);
    for (let i = 0; ; i++) {
      if (exited) throw new Error(exited);
      if (await fetch(`${url}/ready`).then((r) => r.ok, () => false)) break;
      if (i > 1200) throw new Error('server did not become ready in 120 s');
      await sleep(100);
    }

    // the device: salesman1, his replica caught up, his socket
    const res = await fetch(`${url}/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'salesman1@demo.test', password: process.env.DEMO_PASSWORD ?? 'demo1234' }),
    });
    if (res.status !== 200) throw new Error(`login answered ${res.status}: is the database seeded?`);
    const { token, user } = (await res.json()) as { token: string; user: { claims: { salesmanId?: number } } };
    const salesman = user.claims.salesmanId;
    if (typeof salesman !== 'number') throw new Error('salesman1 has no salesmanId claim');
    let pullDeadline = Infinity;
    const device = new Device(
      'salesman1',
      (cursor, limit) =>
        fetch(`${url}/v1/sync/pull`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ ...(cursor && { cursor }), limit }),
          signal: AbortSignal.timeout(Math.max(1, Math.ceil(Math.min(TIMEOUT_MS, pullDeadline - performance.now())))),
        }),
      url,
    );
    await device.catchUp(5000);
    // his warehouse (every warehouse when he has none: then the first)
    const { w } = await erp.one<{ w: string }>(
      'SELECT coalesce((SELECT warehouse_id FROM salesmen WHERE id = $1), (SELECT min(id) FROM warehouses))::text AS w',
      [salesman],
    );
    const bucket = `stock:${w}`;
    if (!device.last?.buckets.current.includes(bucket)) throw new Error(`${bucket} is not among the device's buckets: ${device.last?.buckets.current.join(', ')}`);
    const { id: rowId, qty: startQty } = await erp.one<{ id: string; qty: number }>('SELECT id::text AS id, qty FROM stock WHERE warehouse_id = $1 ORDER BY id LIMIT 1', [w]);
    if (!device.table('stock').has(rowId)) throw new Error(`stock ${rowId} is not in the device's replica`);

    socket = connect(url, { path: '/socket.io', transports: ['websocket'], auth: { token } });
    const s = socket;
    await within(TIMEOUT_MS, new Promise<void>((r, reject) => {
      s.once('connect', () => r());
      s.once('connect_error', (err) => reject(err));
    }), 'socket connect');
    /** arrival times of the pokes naming the stock bucket (or everything) */
    const pokes: number[] = [];
    let wake: (() => void) | undefined;
    s.on('sync:poke', (e: { buckets: string[] }) => {
      if (!e.buckets.includes(bucket) && !e.buckets.includes('*')) return;
      pokes.push(performance.now());
      wake?.();
    });
    /** the time of pokes[index], waiting for it until deadline (undefined: it did not come) */
    const pokeAt = async (index: number, deadline: number): Promise<number | undefined> => {
      while (pokes.length <= index) {
        const left = deadline - performance.now();
        if (left <= 0) return undefined;
        await new Promise<void>((r) => {
          const t = setTimeout(r, left);
          wake = () => (clearTimeout(t), r());
        });
        wake = undefined;
      }
      return pokes[index];
    };

    let qty = startQty;
    let firstPullError: string | undefined;
    /** One UPDATE, timed to the poke and to the new qty in the replica (undefined: not within 10 s). */
    const measureOne = async (): Promise<{ poke?: number; replica?: number }> => {
      qty = qty >= 1_000_000_000 ? 1 : qty + 1;
      const index = pokes.length;
      await within(TIMEOUT_MS, erp.none('UPDATE stock SET qty = $1, updated_at = now() WHERE id = $2', [qty, rowId]), 'the UPDATE');
      const committed = performance.now();
      const deadline = committed + TIMEOUT_MS;
      pullDeadline = deadline;
      // the first poke after the UPDATE was sent (it cannot be an earlier change's: that one
      // was in the replica before this UPDATE, after a quiet spell longer than the window)
      const at = await pokeAt(index, deadline);
      if (at === undefined) return {};
      const poke = Math.max(0, at - committed);
      for (;;) {
        const seen = pokes.length;
        try {
          await device.catchUp(1000);
        } catch (err) {
          firstPullError ??= (err as Error).message;
          return { poke };
        }
        if (device.table('stock').get(rowId)?.row.qty === qty) return { poke, replica: performance.now() - committed };
        // not in yet: pull again on the next poke
        if ((await pokeAt(seen, deadline)) === undefined) return { poke };
      }
    };

    // warm-up (not counted): the path works, the code is hot
    let warm = 0;
    for (let i = 0; i < WARMUP_UPDATES; i++) {
      await sleep(interval);
      if ((await measureOne()).replica !== undefined) warm++;
    }
    if (warm === 0) throw new Error(`no warm-up change reached the replica${firstPullError ? ` (${firstPullError})` : ''}`);

    const runPhase = async (round: number, phase: Phase): Promise<PhaseResult> => {
      const { others } = await erp.one<{ others: number }>(
        `SELECT count(*)::int AS others FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()`,
      );
      let what = '';
      if (phase === 'with') what = await openTransactions();
      const r: PhaseResult = { round, phase, updates: 0, pokeFailures: 0, replicaFailures: 0, poke: [], replica: [], pulls: 0, others };
      const pulls0 = device.pulls;
      const start = performance.now();
      const end = start + seconds * 1000;
      let readyRead = phase !== 'with';
      let last = start - interval;
      while (performance.now() < end) {
        await sleep(Math.max(0, last + interval - performance.now()));
        if (performance.now() >= end) break;
        last = performance.now();
        const m = await measureOne();
        r.updates++;
        if (m.poke === undefined) r.pokeFailures++;
        else r.poke.push(m.poke);
        if (m.replica === undefined) r.replicaFailures++;
        else r.replica.push(m.replica);
        if (!readyRead && performance.now() - start >= (seconds * 1000) / 2) {
          readyRead = true;
          const ready = await within(5000, fetch(`${url}/ready`).then((x) => x.json() as Promise<{ changes?: unknown }>), 'GET /ready');
          console.log(`  round ${round}, mid-phase, our open transactions: ${what}`);
          console.log(`  GET /ready changes: ${JSON.stringify(ready.changes)}`);
        }
      }
      const phaseS = (performance.now() - start) / 1000;
      if (phase === 'with') console.log(`  held to the end, then rolled back: ${await closeTransactions(phaseS)}`);
      r.pulls = device.pulls - pulls0;
      const p = stats(r.poke);
      const x = stats(r.replica);
      console.log(
        `round ${round}, ${phaseName[phase]}: ${r.updates} updates, ${r.replicaFailures} failures (${r.pokeFailures} without a poke), ${r.pulls} pulls; ` +
          `commit -> poke median ${ms(p.median)} / p99 ${ms(p.p99)} / max ${ms(p.max)} ms; commit -> replica median ${ms(x.median)} / p99 ${ms(x.p99)} / max ${ms(x.max)} ms` +
          (others ? ` (${others} other write transaction(s) open in the cluster at its start)` : ''),
      );
      return r;
    };

    const results: PhaseResult[] = [];
    const order: Phase[][] = [];
    for (let round = 1; round <= rounds; round++) {
      const o: Phase[] = round % 2 === 1 ? ['without', 'with'] : ['with', 'without'];
      order.push(o);
      for (const phase of o) results.push(await runPhase(round, phase));
    }
    if (firstPullError) console.log(`first pull error: ${firstPullError}`);
    const loadAfter = loadLine();

    const of = (round: number, phase: Phase) => results.find((r) => r.round === round && r.phase === phase)!;
    console.log(`\nEach phase: ${seconds} s, one UPDATE every ${interval} ms (after the previous change arrived); latencies in ms from the UPDATE's commit.`);
    console.log('\n| round | phase | updates | failures (no poke) | pulls | commit -> poke median / p99 / max | commit -> replica median / p99 / max |');
    console.log('|---:|---|---:|---:|---:|---|---|');
    for (const r of results) {
      const p = stats(r.poke);
      const x = stats(r.replica);
      console.log(`| ${r.round} | ${r.phase} | ${r.updates} | ${r.replicaFailures} (${r.pokeFailures}) | ${r.pulls} | ${ms(p.median)} / ${ms(p.p99)} / ${ms(p.max)} | ${ms(x.median)} / ${ms(x.p99)} / ${ms(x.max)} |`);
    }
    console.log('\n| round | order | commit -> replica without: median / p99 / max | with: median / p99 / max | commit -> poke without: median / p99 | with: median / p99 | failures without / with |');
    console.log('|---:|---|---|---|---|---|---|');
    for (let round = 1; round <= rounds; round++) {
      const a = of(round, 'without');
      const b = of(round, 'with');
      const [ax, bx, ap, bp] = [stats(a.replica), stats(b.replica), stats(a.poke), stats(b.poke)];
      console.log(
        `| ${round} | ${order[round - 1]!.join(', ')} | ${ms(ax.median)} / ${ms(ax.p99)} / ${ms(ax.max)} | ${ms(bx.median)} / ${ms(bx.p99)} / ${ms(bx.max)} | ` +
          `${ms(ap.median)} / ${ms(ap.p99)} | ${ms(bp.median)} / ${ms(bp.p99)} | ${a.replicaFailures} / ${b.replicaFailures} |`,
      );
    }
    const across = (xs: number[]) => `min ${ms(Math.min(...xs))}, median ${ms(median(xs))}, max ${ms(Math.max(...xs))}`;
    console.log(`\nacross ${rounds} round(s) (ms):`);
    for (const phase of ['without', 'with'] as Phase[]) {
      const rs = results.filter((r) => r.phase === phase);
      console.log(`${phase.padEnd(7)}: commit -> replica median ${across(rs.map((r) => stats(r.replica).median))}; p99 ${across(rs.map((r) => stats(r.replica).p99))}`);
      console.log(`${phase.padEnd(7)}: commit -> poke    median ${across(rs.map((r) => stats(r.poke).median))}; p99 ${across(rs.map((r) => stats(r.poke).p99))}`);
    }
    console.log(`before: ${loadBefore}\nafter:  ${loadAfter}`);
    const withs = results.filter((r) => r.phase === 'with');
    const worstMedian = Math.max(...withs.map((r) => stats(r.replica).median));
    const worstP99 = Math.max(...withs.map((r) => stats(r.replica).p99));
    const failures = results.reduce((n, r) => n + r.replicaFailures, 0);
    const met = failures === 0 && worstMedian < 20 && worstP99 < 100;
    console.log('goal: with the open transaction, commit -> replica median < 20 ms, p99 < 100 ms');
    console.log(`this run (worst round with it): median ${ms(worstMedian)} ms, p99 ${ms(worstP99)} ms, ${failures} failures in all phases: ${met ? 'met' : 'NOT met'}`);
    exitCode = failures > 0 ? 3 : 0;
  } finally {
    await stop();
  }
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  exitCode = 1;
} finally {
  socket?.disconnect();
  for (const c of held.splice(0)) {
    await c.none('ROLLBACK').catch(() => undefined);
    await c.done(true);
  }
  await pgp.end();
  await rm(dataDir, { recursive: true, force: true });
}
process.exit(exitCode);
