/**
 * What fieldsync costs the ERP's own writes: `npm run bench:erp-writes [-- --scale 1
 * --concurrency 8 --seconds 10 --rounds 3]`.
 *
 * Needs DATABASE_URL of an EMPTY database on this machine (127.0.0.1 / localhost only: the
 * benchmark installs and uninstalls fieldsync in it, and refuses a database that has
 * tables). Create one, and drop it afterwards:
 *
 *   psql -h 127.0.0.1 -U postgres -d postgres -c 'CREATE DATABASE fieldsync_erp_bench'
 *   DATABASE_URL=postgres://postgres@127.0.0.1/fieldsync_erp_bench npm run bench:erp-writes
 *   psql -h 127.0.0.1 -U postgres -d postgres -c 'DROP DATABASE fieldsync_erp_bench'
 *
 * It creates the demo ERP schema (applyDemoSchema), installs fieldsync with the demo's
 * sync config and seeds the demo data set at --scale. Then, per round, it measures the
 * ERP's own write through plain pg-promise (no fieldsync code on the write path, as the
 * ERP would): a transaction that INSERTs one order and its 5 order_lines (uuid made by the
 * client, one multi-row INSERT for the lines; --per-line: one INSERT per line) with a
 * random seeded client and 5 distinct random products, at --concurrency connections for
 * --seconds (after a 1 s warm-up): transactions/s, p50 and p99 latency.
 *
 * Paired and repeated: each of --rounds rounds measures three ways, the order rotating per
 * round: WITHOUT fieldsync (uninstall: its triggers and its schema dropped), with its
 * capture TRIGGERS only (what the ERP's own transactions pay: a key per changed row into
 * the outbox), and with the triggers AND the indexer running beside them in this process,
 * polling every 10 ms as a fieldsync server does (what the database server pays in all, on
 * the same cores; the outbox left behind at the end tells whether it kept up). Printed:
 * each round, min / median / max of both ratios to WITHOUT, the machine's load before and
 * after, and for every run the share of pg_stat_activity samples (every 50 ms) of the
 * benchmark's active backends waiting on the NOTIFY queue (LWLock NotifyQueue/NotifySLRU,
 * or the heavyweight lock of type 'object' that PostgreSQL takes at commit for NOTIFY).
 *
 * No fieldsync server runs (the indexer is fieldsync's own class, run here). The process
 * stops by itself (a watchdog ends it if a step hangs).
 *
 * The measuring core (`loadPicks`, `measureErpWrites`) is exported, so the same
 * transaction mix can be run against another schema version.
 */
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import pgPromise from 'pg-promise';
import { loadLine, median, pct } from './stats.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The seeded rows an ERP order picks from. */
export interface Picks {
  /** active clients with the order's salesman and warehouse */
  clients: { id: number; salesman: number | null; warehouse: number }[];
  /** active products with their price */
  products: { id: number; price: number }[];
}

export interface ErpWriteResult {
  label: string;
  transactions: number;
  perSec: number;
  p50: number;
  p99: number;
  errors: number;
  /** pg_stat_activity samples taken during the run */
  samples: number;
  /** average active benchmark backends per sample */
  active: number;
  /** share of active backend-samples waiting on the NOTIFY queue (LWLock or lock type 'object') */
  notifyShare: number;
  /** share of active backend-samples waiting on any heavyweight lock */
  lockShare: number;
  /** the most frequent wait events of active backends (type:event share) */
  topWaits: string;
  /** WAL written per transaction during the run (bytes; the whole cluster, so other databases' writes count too) */
  walPerTx: number;
  /** full-page images written per transaction during the run (pg_stat_wal, whole cluster) */
  fpiPerTx: number;
}

const erpPgp = pgPromise({ capSQL: true });
// bigint ids as numbers, as the ERP's driver would hand them out
erpPgp.pg.types.setTypeParser(erpPgp.pg.types.builtins.INT8, (v: string) => Number.parseInt(v, 10));

/** Clients (with salesman and warehouse) and products of the seeded data set. */
export async function loadPicks(url: string): Promise<Picks> {
  const db = erpPgp({ connectionString: url, max: 1, application_name: 'erp-write-bench-setup' });
  try {
    const clients = await db.map(
      `SELECT c.id, c.salesman_id AS salesman, coalesce(s.warehouse_id, (SELECT min(id) FROM warehouses WHERE is_active)) AS warehouse
         FROM clients c LEFT JOIN salesmen s ON s.id = c.salesman_id WHERE c.is_active ORDER BY c.id`,
      [],
      (r: { id: number; salesman: number | null; warehouse: number }) => r,
    );
    const products = await db.map('SELECT id, base_price FROM products WHERE is_active ORDER BY id', [], (r: { id: number; base_price: string }) => ({
      id: r.id,
      price: Number(r.base_price),
    }));
    if (clients.length === 0 || products.length < 5) throw new Error('the database holds no seeded clients and products');
    return { clients, products };
  } finally {
    await db.$pool.end();
  }
}


const orderColumns = new erpPgp.helpers.ColumnSet(['id', 'client_id', 'salesman_id', 'warehouse_id', 'total'], { table: 'orders' });
const lineColumns = new erpPgp.helpers.ColumnSet(['order_id', 'line_no', 'product_id', 'qty', 'unit_price', 'line_total'], { table: 'order_lines' });

/**
 * Runs the ERP transaction (INSERT an order, INSERT its 5 lines, COMMIT) on `concurrency`
 * connections for `seconds` after a warm-up, sampling pg_stat_activity every 50 ms.
 */
export async function measureErpWrites(
  url: string,
  picks: Picks,
  opts: { label: string; concurrency: number; seconds: number; warmupSeconds?: number; perLine?: boolean },
): Promise<ErpWriteResult> {
  const app = 'erp-write-bench';
  const db = erpPgp({ connectionString: url, max: opts.concurrency, application_name: app });
  const monitor = erpPgp({ connectionString: url, max: 1, application_name: 'erp-write-bench-monitor' });
  const one = async () => {
    const c = picks.clients[Math.floor(Math.random() * picks.clients.length)]!;
    const chosen = new Set<number>();
    while (chosen.size < 5) chosen.add(Math.floor(Math.random() * picks.products.length));
    const id = randomUUID();
    const lines = [...chosen].map((i, n) => {
      const p = picks.products[i]!;
      const qty = 1 + Math.floor(Math.random() * 5);
      return { order_id: id, line_no: n + 1, product_id: p.id, qty, unit_price: p.price.toFixed(2), line_total: (p.price * qty).toFixed(2) };
    });
    const total = lines.reduce((s, l) => s + Number(l.line_total), 0).toFixed(2);
    await db.tx(async (t) => {
      await t.none(erpPgp.helpers.insert({ id, client_id: c.id, salesman_id: c.salesman, warehouse_id: c.warehouse, total }, orderColumns));
      if (opts.perLine) for (const l of lines) await t.none(erpPgp.helpers.insert(l, lineColumns));
      else await t.none(erpPgp.helpers.insert(lines, lineColumns));
    });
  };
  const run = async (seconds: number, latencies: number[] | undefined) => {
    const deadline = performance.now() + seconds * 1000;
    let done = 0;
    let errors = 0;
    await Promise.all(
      Array.from({ length: opts.concurrency }, async () => {
        while (performance.now() < deadline) {
          const t0 = performance.now();
          try {
            await one();
            const t1 = performance.now();
            if (t1 <= deadline) {
              done++;
              latencies?.push(t1 - t0);
            }
          } catch (err) {
            if (errors++ === 0) console.error(`${opts.label}: ${(err as Error).message}`);
          }
        }
      }),
    );
    return { done, errors };
  };
  try {
    await run(opts.warmupSeconds ?? 1, undefined);
    let sampling = true;
    let samples = 0;
    let active = 0;
    let notify = 0;
    let lock = 0;
    const waits = new Map<string, number>();
    const sampler = (async () => {
      while (sampling) {
        const rows = await monitor.any<{ state: string | null; wait_event_type: string | null; wait_event: string | null }>(
          'SELECT state, wait_event_type, wait_event FROM pg_stat_activity WHERE application_name = $1',
          [app],
        );
        samples++;
        for (const r of rows) {
          if (r.state !== 'active') continue;
          active++;
          if (r.wait_event_type === 'Lock') lock++;
          if (
            (r.wait_event_type === 'LWLock' && ['NotifyQueue', 'NotifySLRU', 'NotifyQueueTail'].includes(r.wait_event ?? '')) ||
            (r.wait_event_type === 'Lock' && r.wait_event === 'object')
          ) {
            notify++;
          }
          const key = r.wait_event_type ? `${r.wait_event_type}:${r.wait_event}` : 'CPU';
          waits.set(key, (waits.get(key) ?? 0) + 1);
        }
        await sleep(50);
      }
    })();
    const walNow = () => monitor.one<{ lsn: string; fpi: number }>('SELECT pg_current_wal_lsn()::text AS lsn, (SELECT wal_fpi FROM pg_stat_wal) AS fpi');
    const latencies: number[] = [];
    const wal0 = await walNow();
    const { done, errors } = await run(opts.seconds, latencies);
    sampling = false;
    await sampler;
    const wal1 = await walNow();
    const { bytes } = await monitor.one<{ bytes: number }>('SELECT pg_wal_lsn_diff($1, $2)::float8 AS bytes', [wal1.lsn, wal0.lsn]);
    latencies.sort((a, b) => a - b);
    const share = (n: number) => (active ? n / active : 0);
    const topWaits = [...waits.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 3)
      .map(([k, n]) => `${k} ${(share(n) * 100).toFixed(0)}%`)
      .join(', ');
    return {
      label: opts.label,
      transactions: done,
      perSec: done / opts.seconds,
      p50: pct(latencies, 50),
      p99: pct(latencies, 99),
      errors,
      samples,
      active: samples ? active / samples : 0,
      notifyShare: share(notify),
      lockShare: share(lock),
      topWaits,
      walPerTx: done ? bytes / done : 0,
      fpiPerTx: done ? (wal1.fpi - wal0.fpi) / done : 0,
    };
  } finally {
    await db.$pool.end();
    await monitor.$pool.end();
  }
}


export function printRuns(rows: ErpWriteResult[]): void {
  console.log('| run | tx/s | p50 ms | p99 ms | errors | active backends | waiting on NOTIFY queue | waiting on any lock | top waits (share of active samples) | WAL bytes / tx | full-page images / tx |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|');
  for (const r of rows) {
    console.log(
      `| ${r.label} | ${r.perSec.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.errors} | ${r.active.toFixed(1)} | ` +
        `${(r.notifyShare * 100).toFixed(1)}% | ${(r.lockShare * 100).toFixed(1)}% | ${r.topWaits} | ${r.walPerTx.toFixed(0)} | ${r.fpiPerTx.toFixed(2)} |`,
    );
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      scale: { type: 'string', default: '1' },
      concurrency: { type: 'string', default: '8' },
      seconds: { type: 'string', default: '10' },
      rounds: { type: 'string', default: '3' },
      'per-line': { type: 'boolean', default: false },
    },
    strict: true,
  });
  const scale = Number(values.scale);
  const concurrency = Number(values.concurrency);
  const seconds = Number(values.seconds);
  const rounds = Number(values.rounds);
  if (![scale, concurrency, seconds, rounds].every((n) => Number.isFinite(n) && n > 0)) throw new Error('--scale, --concurrency, --seconds and --rounds must be positive numbers');
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('set DATABASE_URL to an empty database on 127.0.0.1 (see the header of load/erp-write-bench.ts)');
  const host = new URL(url).hostname;
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(host)) throw new Error(`DATABASE_URL must point at 127.0.0.1 (got ${host}): this benchmark installs and uninstalls fieldsync`);

  // bounded in time: setup (seed, installs) plus every run, generously
  const budgetS = 900 + rounds * 3 * (seconds + 1 + 180);
  setTimeout(() => {
    console.error(`erp-write-bench: still running after ${budgetS} s, giving up`);
    process.exit(2);
  }, budgetS * 1000).unref();

  // fieldsync's code only for setting up and for (un)installing, never on the measured path
  const { createDb } = await import('../src/db/pg.js');
  const { applyDemoSchema, install, uninstall } = await import('../src/install/apply.js');
  const { loadConfigFile, loadModel } = await import('../src/model/load.js');
  const { seedDemo } = await import('../src/seed/load.js');

  const db = createDb({ url, poolMax: 2, applicationName: 'erp-write-bench-admin' });
  const closers: (() => Promise<void>)[] = [];
  try {
    const { tables } = await db.one<{ tables: number }>(
      `SELECT count(*)::int AS tables FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'`,
    );
    if (tables > 0) throw new Error(`refusing: the database is not empty (${tables} tables). Use a fresh database (see the header of this file).`);

    const loadBefore = loadLine();
    console.log(`ERP write benchmark: scale ${scale}, ${concurrency} connections, ${rounds} rounds of ${seconds} s without and with fieldsync, ${values['per-line'] ? 'one INSERT per line' : 'one INSERT for the 5 lines'}`);
    console.log(`before: ${loadBefore}`);

    await applyDemoSchema(db);
    const model = await loadModel(db, await loadConfigFile(undefined));
    await install(db, model);
    const seeded = await seedDemo(db, { scale, seed: 42, password: 'demo1234', schema: model.schema });
    console.log(`seeded scale ${scale} in ${(seeded.elapsedMs / 1000).toFixed(1)} s (${seeded.counts.products} products, ${seeded.counts.clients} clients)`);
    const picks = await loadPicks(url);

    const checkpoint = () => db.none('CHECKPOINT').catch(() => undefined); // superuser only; a checkpoint mid-run is noise
    const { Indexer } = await import('../src/sync/indexer.js');
    const { pino } = await import('pino');
    const indexerDb = createDb({ url, poolMax: 2, applicationName: 'erp-write-bench-indexer' });
    closers.push(() => indexerDb.$pool.end());
    const indexer = new Indexer(indexerDb, model, pino({ level: 'silent' }));
    const measure = async (label: string) => {
      await db.none('VACUUM ANALYZE orders, order_lines');
      await checkpoint();
      return measureErpWrites(url, picks, { label, concurrency, seconds, perLine: values['per-line'] });
    };
    type Mode = 'without' | 'triggers' | 'indexing';
    const modes: Mode[] = ['without', 'triggers', 'indexing'];
    const runs: ErpWriteResult[] = [];
    const table: { round: number; order: string; r: Record<Mode, ErpWriteResult>; backlog: number }[] = [];
    let installed = true;
    for (let round = 1; round <= rounds; round++) {
      // the order rotates per round, so no mode always runs first or on a warmer cache
      const order = modes.map((_, i) => modes[(i + round - 1) % modes.length]!);
      const r = {} as Record<Mode, ErpWriteResult>;
      let backlog = 0;
      for (const mode of order) {
        if (mode === 'without' && installed) {
          await uninstall(db, model.schema);
          const { n } = await db.one<{ n: number }>(`SELECT count(*)::int AS n FROM pg_trigger WHERE NOT tgisinternal AND tgname LIKE 'fieldsync\\_%'`);
          if (n > 0) throw new Error(`uninstall left ${n} fieldsync triggers`);
          installed = false;
        } else if (mode !== 'without' && !installed) {
          await install(db, model);
          installed = true;
        }
        if (mode === 'without') r.without = await measure(`round ${round}, without fieldsync`);
        if (mode === 'triggers') {
          await indexer.flush();
          r.triggers = await measure(`round ${round}, with fieldsync's triggers`);
        }
        if (mode === 'indexing') {
          // what a fieldsync server beside the ERP does: poll, and index what committed
          await indexer.flush();
          let polling = true;
          const poller = (async () => {
            while (polling) {
              await indexer.flush();
              await sleep(10);
            }
          })();
          r.indexing = await measure(`round ${round}, with triggers and the indexer`);
          polling = false;
          await poller;
          backlog = (await db.one<{ n: number }>(`SELECT count(*)::int AS n FROM ${model.schema}.changes`)).n;
          await indexer.flush();
        }
        runs.push(r[mode]);
      }
      table.push({ round, order: order.join(', '), r, backlog });
      console.log(
        `round ${round}: without ${r.without.perSec.toFixed(0)} tx/s, triggers ${r.triggers.perSec.toFixed(0)} (${(r.triggers.perSec / r.without.perSec).toFixed(3)}), ` +
          `triggers + indexer ${r.indexing.perSec.toFixed(0)} (${(r.indexing.perSec / r.without.perSec).toFixed(3)})`,
      );
    }
    if (!installed) await install(db, model);
    const { orders } = await db.one<{ orders: number }>('SELECT count(*)::int AS orders FROM orders');
    const loadAfter = loadLine();

    console.log(`\nEach run: ${concurrency} connections, ${seconds} s (after 1 s warm-up); INSERT orders + 5 order_lines per transaction.`);
    printRuns(runs);
    console.log('\n| round | order | without: tx/s | with triggers: tx/s | ratio | with triggers + indexer: tx/s | ratio | outbox left after the indexer run |');
    console.log('|---:|---|---:|---:|---:|---:|---:|---:|');
    for (const x of table) {
      console.log(
        `| ${x.round} | ${x.order} | ${x.r.without.perSec.toFixed(0)} | ${x.r.triggers.perSec.toFixed(0)} | ${(x.r.triggers.perSec / x.r.without.perSec).toFixed(3)} | ` +
          `${x.r.indexing.perSec.toFixed(0)} | ${(x.r.indexing.perSec / x.r.without.perSec).toFixed(3)} | ${x.backlog} |`,
      );
    }
    const stats = (xs: number[]) => `min ${Math.min(...xs).toFixed(3)}, median ${median(xs).toFixed(3)}, max ${Math.max(...xs).toFixed(3)}`;
    console.log(`\nwhat the ERP's transactions pay (triggers / without): ${stats(table.map((x) => x.r.triggers.perSec / x.r.without.perSec))} (goal >= 0.9)`);
    console.log(`with the indexer running beside them on the same machine (triggers + indexer / without): ${stats(table.map((x) => x.r.indexing.perSec / x.r.without.perSec))}`);
    console.log(`${orders} orders in the database at the end`);
    const withRuns = runs.filter((r) => !r.label.includes('without'));
    console.log(
      `with fieldsync: ${(median(withRuns.map((r) => r.notifyShare)) * 100).toFixed(1)}% (median of runs) of active backends' samples waiting on the NOTIFY queue ` +
        `(LWLock NotifyQueue/NotifySLRU or lock type 'object'); any heavyweight lock: ${(median(withRuns.map((r) => r.lockShare)) * 100).toFixed(1)}%`,
    );
    console.log(`before: ${loadBefore}\nafter:  ${loadAfter}`);
  } finally {
    for (const close of closers) await close();
    await db.$pool.end();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    await main();
    process.exit(0);
  } catch (err) {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  }
}
