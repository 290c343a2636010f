import type { ExecutionContext } from 'ava';
import type pgPromise from 'pg-promise';
import type pg from 'pg-promise/typescript/pg-subset.js';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { Rand as Rng } from '../../src/seed/random.js';
import { Device, type PullBody } from './device.js';
import type { TestServer } from './server.js';

/**
 * The convergence property (DESIGN §4.1–4.3) as a seeded run, shared by the ERP fixtures'
 * tests (test/integration/convergence*.test.ts): writers act like the ERP in plain SQL on
 * their own connections (each file brings its operations), devices of several roles and
 * apps pull with tiny page limits in between, concurrently (now and then one is reinstalled
 * and bootstraps again mid-run; one writer keeps transactions open for 1 to 3 seconds,
 * across many pulls), every checksum a device receives must equal its own sum and no row
 * version may come twice, and at the end every device,
 * pulled until hasMore is false, must hold exactly what direct SQL over the ERP tables
 * says (ids, versions, content), only rows of its own buckets, and every checksum must
 * match its own computation.
 *
 * Environment: SEED=n replays a run's choices (the interleaving with the server is not
 * replayed exactly); SOAK=1 runs for SOAK_SECONDS (default 300); OPS sets the number of
 * writer operations of a normal run (default 300).
 */
export const convergenceEnv = {
  seed: Number(process.env.SEED ?? Date.now() % 2 ** 31),
  soak: process.env.SOAK === '1',
  soakMs: Number(process.env.SOAK_SECONDS ?? 300) * 1000,
  ops: Number(process.env.OPS ?? 300),
};

/** One ERP-like operation: SQL run in the writer's current transaction. */
export type Op = (r: Rng) => string;

/** A writer: one connection, maybe an open transaction that outlives many pulls. */
export class Writer {
  open = false;
  constructor(readonly conn: pgPromise.IConnected<unknown, pg.IClient>) {}

  async run(sql: string, keepOpen: boolean): Promise<'ok' | 'failed'> {
    try {
      if (!this.open) await this.conn.none('BEGIN');
      this.open = true;
      await this.conn.multi(sql);
      if (!keepOpen) await this.end('COMMIT');
      return 'ok';
    } catch {
      await this.end('ROLLBACK'); // lock timeout, deadlock, unique or FK violation: the transaction is gone
      return 'failed';
    }
  }

  async end(how: 'COMMIT' | 'ROLLBACK'): Promise<void> {
    if (!this.open) return;
    this.open = false;
    try {
      await this.conn.none(how);
    } catch {
      await this.conn.none('ROLLBACK').catch(() => undefined);
    }
  }
}

/** A device of the run and what it must end up holding. */
export interface DeviceSpec {
  /** in messages */
  name: string;
  app: string;
  /** bearer token (from a login or an ERP-signed one) */
  token: string;
  /**
   * collection -> SQL over the ERP giving the rows the device must hold:
   * `id` (text, as String(wire id)), `v` (text), `check` (a JSON array of the expected
   * values of the `check` wire columns, in that order)
   */
  expect: Record<string, string>;
  /** collection -> wire columns compared with the SQL's `check` */
  check: Record<string, readonly string[]>;
  /** a row (wire columns by name) this device must never receive, described; undefined when fine */
  leak?: (collection: string, row: Record<string, unknown>) => string | undefined;
}

export interface ConvergenceOptions {
  server: TestServer;
  /** the ERP's pool: the writers' connections */
  erp: pgPromise.IDatabase<unknown>;
  ops: Record<string, Op>;
  devices: DeviceSpec[];
  /** writer connections (default 4) */
  writers?: number;
}

/** JSON with object keys sorted: jsonb and JSON.parse may order keys differently. */
export function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'undefined';
}

/** The seeded run and the final comparison (see the module comment). */
export async function runConvergence(t: ExecutionContext, opts: ConvergenceOptions): Promise<void> {
  const { seed, soak, soakMs, ops } = convergenceEnv;
  t.timeout(soak ? soakMs + 600_000 : Math.max(300_000, ops * 1_000));
  t.log(`seed=${seed} (replay with SEED=${seed})`);
  try {
    await run(t, opts);
  } catch (err) {
    // a device that cannot even apply its answers (a row in two buckets, a pull error)
    throw new Error(`seed=${seed}: ${(err as Error).message}`, { cause: err });
  }
}

async function run(t: ExecutionContext, opts: ConvergenceOptions): Promise<void> {
  const { seed, soak, soakMs, ops: opCount } = convergenceEnv;
  const s = opts.server;
  const r = new Rng(xoroshiro128plus(seed));
  const opNames = Object.keys(opts.ops);
  const specs = opts.devices;
  const devices = specs.map((spec) => {
    const d = new Device(spec.name, (cursor, limit) =>
      s.post('/v1/sync/pull', { ...(cursor && { cursor }), app: spec.app, limit }, { authorization: `Bearer ${spec.token}` }), s.url,
    );
    d.audit = true; // every checksum received must match the device's own sum; no row version twice
    return d;
  });
  const writers: Writer[] = [];
  for (let i = 0; i < (opts.writers ?? 4); i++) {
    const conn = await opts.erp.connect();
    await conn.none(`SET lock_timeout = '150ms'; SET statement_timeout = '5s'`);
    writers.push(new Writer(conn));
  }

  // one more writer for transactions open for seconds, spanning many pulls and commits
  // of the others (an ERP import, a report inside a write transaction)
  const long = new Writer(await opts.erp.connect());
  await long.conn.none(`SET lock_timeout = '150ms'; SET statement_timeout = '5s'`);
  let longUntil = 0;

  const stats = { ops: 0, failed: 0, commits: 0, rollbacks: 0, pulls: 0, longTx: 0, secondsLongTx: 0, resets: 0 };
  const started = Date.now();
  const done = () => (soak ? Date.now() - started > soakMs : stats.ops >= opCount);
  const leaks: string[] = [];
  try {
    while (!done()) {
      const batch: Promise<unknown>[] = [];
      const busy = new Set<Writer>();
      if (!long.open && r.chance(0.03)) {
        stats.secondsLongTx++;
        stats.ops++;
        longUntil = Date.now() + r.int(1000, 3000);
        batch.push(long.run(opts.ops[r.pick(opNames)]!(r), true).then((x) => x === 'failed' && stats.failed++));
        busy.add(long);
      } else if (long.open && Date.now() > longUntil) {
        const how = r.chance(0.8) ? 'COMMIT' : 'ROLLBACK';
        how === 'COMMIT' ? stats.commits++ : stats.rollbacks++;
        batch.push(long.end(how));
        busy.add(long);
      } else if (long.open && r.chance(0.1)) {
        stats.ops++;
        batch.push(long.run(opts.ops[r.pick(opNames)]!(r), true).then((x) => x === 'failed' && stats.failed++));
        busy.add(long);
      }
      const pulling = new Set<Device>();
      for (let k = r.int(1, 4); k > 0; k--) {
        if (r.chance(0.55)) {
          const w = r.pick(writers);
          if (busy.has(w)) continue; // one statement at a time per connection
          busy.add(w);
          if (w.open && r.chance(0.35)) {
            const how = r.chance(0.75) ? 'COMMIT' : 'ROLLBACK';
            how === 'COMMIT' ? stats.commits++ : stats.rollbacks++;
            batch.push(w.end(how));
          } else {
            const keepOpen = w.open ? r.chance(0.5) : r.chance(0.25);
            if (keepOpen && !w.open) stats.longTx++;
            stats.ops++;
            batch.push(w.run(opts.ops[r.pick(opNames)]!(r), keepOpen).then((x) => x === 'failed' && stats.failed++));
          }
        } else {
          const i = r.int(0, devices.length - 1);
          const d = devices[i]!;
          const spec = specs[i]!;
          if (batch.length > 0 && r.chance(0.3)) await Promise.all(batch.splice(0)); // vary the overlap
          // now and then the app is reinstalled: it starts over (bootstrap snapshots mid-run);
          // never under a pull of its own still in flight, whose answer belongs to the old state
          if (!pulling.has(d) && r.chance(0.02)) {
            d.tables.clear();
            d.cursor = undefined;
            stats.resets++;
          }
          pulling.add(d);
          stats.pulls++;
          batch.push(
            d.pullOnce(r.int(1, 8)).then(({ status, body }) => {
              if (status !== 200 && status !== 410) leaks.push(`${d.name}: ${status} ${JSON.stringify(body)}`);
              if (status !== 200 || !spec.leak) return;
              for (const [name, sec] of Object.entries((body as PullBody).changes)) {
                for (const values of sec.rows) {
                  const row = Object.fromEntries(sec.cols.map((c, j) => [c, values[j]]));
                  const leak = spec.leak(name, row);
                  if (leak !== undefined) leaks.push(`${d.name} got ${name} ${String(row.id)}: ${leak}`);
                }
              }
            }),
          );
        }
      }
      await Promise.all(batch);
    }
  } finally {
    for (const w of [...writers, long]) {
      await w.end(r.chance(0.7) ? 'COMMIT' : 'ROLLBACK');
      w.conn.done();
    }
  }
  t.log({ ...stats, seconds: Math.round((Date.now() - started) / 1000) });
  t.deepEqual(leaks, [], `seed=${seed}: no errors, no rows outside the device's scope`);

  // quiet: the heads catch up with the last commit, then every device catches up
  await s.settle();
  const sorted = (pairs: [string, string][]) => Object.fromEntries(pairs.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  for (const [i, d] of devices.entries()) {
    await d.catchUp(r.int(1, 50));
    const spec = specs[i]!;
    for (const [name, sql] of Object.entries(spec.expect)) {
      const cols = spec.check[name] ?? [];
      const want = sorted((await s.db.any<{ id: string; v: string | null; check: unknown }>(sql)).map((x) => [x.id, `${x.v}|${canonical(x.check)}`]));
      const got = sorted([...d.table(name)].map(([id, x]) => [id, `${x.v}|${canonical(cols.map((c) => x.row[c]))}`]));
      t.deepEqual(got, want, `seed=${seed}: ${d.name} (${spec.app}) ${name}`);
    }
    const synced = new Set(Object.keys(spec.expect));
    for (const name of d.tables.keys()) t.true(synced.has(name), `seed=${seed}: ${d.name} holds no ${name}`);
    // no row of a bucket outside the device's set (Device drops removed buckets)
    const current = new Set(d.last!.buckets.current);
    const outside = [...d.tables].flatMap(([name, rows]) => [...rows.values()].filter((x) => !current.has(x.bucket)).map((x) => `${name} ${String(x.row.id)} in ${x.bucket}`));
    t.deepEqual(outside, [], `seed=${seed}: ${d.name} holds rows of its own buckets only`);
  }

  t.log(Object.fromEntries(devices.map((d) => [d.name, Object.fromEntries([...d.tables].map(([name, rows]) => [name, rows.size]))])));

  // every bucket's checksum is given once quiet, and matches the device's own computation
  for (const d of devices) {
    let sums: Record<string, number> = {};
    for (let attempt = 0; attempt < 20; attempt++) {
      await d.pullOnce(100);
      sums = d.last!.checksums;
      if (Object.keys(sums).length === d.last!.buckets.current.length) break;
      await new Promise((res) => setTimeout(res, 25));
    }
    t.deepEqual(Object.keys(sums).sort(), [...d.last!.buckets.current].sort(), `seed=${seed}: ${d.name} has every checksum`);
    for (const [b, sum] of Object.entries(sums)) t.is(d.checksum(b), sum, `seed=${seed}: ${d.name} checksum of ${b}`);
  }
  // and along the way, under concurrent writers: every checksum received matched the
  // device's sum at the position it came with, and no row version came twice
  for (const d of devices) t.deepEqual(d.problems, [], `seed=${seed}: ${d.name}'s answers during the run`);
}
