/**
 * Push channel benchmark: `npm run bench:realtime [-- --sockets 1000,5000,10000]`.
 * The server runs as a child process (`node --import tsx src/main.ts`) so its memory is
 * its own (read from its /metrics); sockets are socket.io-client connections from here.
 * Needs DATABASE_URL (and JWT_SECRET) of a seeded database (`npm run seed -- --scale 10`).
 *
 *  1. commit -> poke, and commit -> changed row in the device's replica (poke, then the
 *     pull it triggers), one device, 20 updates: median and p99;
 *  2. per room size: connect N sockets (one warehouse user, so one shared stock room),
 *     server memory per socket, fan-out latency from commit to 50/99/100% of the room;
 *  3. a reconnect storm: all N sockets dropped and reconnecting at once.
 */
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import pgPromise from 'pg-promise';
import { io as connect, type Socket } from 'socket.io-client';
import { Device } from '../test/helpers/device.js';
import { pct } from './stats.js';

const { values } = parseArgs({ options: { sockets: { type: 'string', default: '1000,5000,10000' }, port: { type: 'string', default: '3917' } } });
const url = `http://127.0.0.1:${values.port}`;
const env: NodeJS.ProcessEnv = { ...process.env, PORT: values.port, HOST: '127.0.0.1', LOG_LEVEL: 'warn', SOCKET_CONNECTS_PER_IP_PER_MINUTE: '1000000', POKE_WINDOW_MS: '250' };
if (!env.DATABASE_URL) throw new Error('set DATABASE_URL (and JWT_SECRET) to a seeded database');
const server = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
const pgp = pgPromise();
const erp = pgp(env.DATABASE_URL);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const rss = async () => Number(/process_resident_memory_bytes (\d+)/.exec(await (await fetch(`${url}/metrics`)).text())?.[1] ?? 0);

try {
  for (let i = 0; ; i++) {
    if (await fetch(`${url}/ready`).then((r) => r.ok).catch(() => false)) break;
    if (i > 600) throw new Error('server did not start');
    await sleep(100);
  }
  const login = async (email: string) =>
    ((await (await fetch(`${url}/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password: process.env.DEMO_PASSWORD ?? 'demo1234' }) })).json()) as { token: string }).token;

  // 1. latency, one device
  const token = await login('salesman1@demo.test');
  const { w } = await erp.one<{ w: number }>('SELECT coalesce(warehouse_id, 1) AS w FROM salesmen WHERE id = 1');
  const device = new Device('salesman1', (cursor, limit) =>
    fetch(`${url}/v1/sync/pull`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ ...(cursor && { cursor }), limit }) }),
    url, // snapshot pages are fetched from the server too
  );
  await device.catchUp(5000);
  const s: Socket = connect(url, { path: '/socket.io', transports: ['websocket'], auth: { token } });
  await new Promise<void>((r) => s.once('connect', () => r()));
  const toPoke: number[] = [];
  const toReplica: number[] = [];
  for (let i = 0; i < 20; i++) {
    await sleep(300); // past the coalescing window: every update takes the leading edge
    const qty = 100_000 + i;
    const poked = new Promise<number>((r) => s.once('sync:poke', () => r(performance.now())));
    const t0 = performance.now();
    await erp.none('UPDATE stock SET qty = $1 WHERE id = (SELECT id FROM stock WHERE warehouse_id = $2 ORDER BY id LIMIT 1)', [qty, w]);
    const committed = performance.now();
    const at = await poked;
    await device.catchUp(1000);
    const done = performance.now();
    const row = [...device.table('stock').values()].find((r) => r.row.qty === qty);
    if (!row) throw new Error('the change did not arrive');
    toPoke.push(at - committed);
    toReplica.push(done - committed);
    void t0;
  }
  s.disconnect();
  console.log('\n| one device, 20 updates | median ms | p99 ms |\n|---|---:|---:|');
  console.log(`| commit -> sync:poke | ${pct(toPoke, 50).toFixed(1)} | ${pct(toPoke, 99).toFixed(1)} |`);
  console.log(`| commit -> row in the replica (poke + pull) | ${pct(toReplica, 50).toFixed(1)} | ${pct(toReplica, 99).toFixed(1)} |`);

  // 2 + 3. rooms of N sockets
  const wh = await login('warehouse@demo.test');
  const idle = await rss();
  console.log(`\nserver RSS before any socket: ${(idle / 2 ** 20).toFixed(0)} MiB`);
  console.log('\n| sockets | server RSS | (RSS - idle) / socket | connect all (s) | fan-out 50% / 99% / 100% (ms) | reconnect storm: s, errors |\n|---:|---:|---:|---:|---|---|');
  for (const n of values.sockets.split(',').map(Number)) {
    const socks: Socket[] = [];
    const t0 = performance.now();
    let errors = 0;
    await Promise.all(
      Array.from({ length: n }, async () => {
        const c = connect(url, { path: '/socket.io', transports: ['websocket'], auth: { token: wh }, reconnection: false, forceNew: true });
        socks.push(c);
        await new Promise<void>((r) => {
          c.once('connect', () => r());
          c.once('connect_error', () => (errors++, r()));
        });
      }),
    );
    const connectS = (performance.now() - t0) / 1000;
    await sleep(1000);
    const mem = await rss();
    const arrivals: number[] = [];
    for (const c of socks) c.once('sync:poke', () => arrivals.push(performance.now()));
    await sleep(300);
    await erp.none('UPDATE stock SET qty = qty + 1 WHERE id = (SELECT id FROM stock WHERE warehouse_id = $1 ORDER BY id LIMIT 1)', [w]);
    const committed = performance.now();
    for (let i = 0; i < 300 && arrivals.length < n; i++) await sleep(20);
    const lat = arrivals.map((a) => a - committed);
    const fan = lat.length ? `${pct(lat, 50).toFixed(0)} / ${pct(lat, 99).toFixed(0)} / ${Math.max(...lat).toFixed(0)} (${lat.length} got it)` : 'none arrived';
    // storm: drop everyone, then all reconnect at once
    for (const c of socks) c.disconnect();
    await sleep(500);
    const t1 = performance.now();
    let stormErrors = 0;
    await Promise.all(
      socks.map(
        (c) =>
          new Promise<void>((r) => {
            c.once('connect', () => r());
            c.once('connect_error', () => (stormErrors++, r()));
            c.connect();
          }),
      ),
    );
    const stormS = (performance.now() - t1) / 1000;
    for (const c of socks) c.disconnect();
    console.log(`| ${n} | ${(mem / 2 ** 20).toFixed(0)} MiB | ${(((mem - idle) / n) / 1024).toFixed(1)} KiB | ${connectS.toFixed(1)} (${errors} errors) | ${fan} | ${stormS.toFixed(1)}, ${stormErrors} |`);
    await sleep(1500);
  }
} finally {
  server.kill('SIGTERM');
  await erp.$pool.end();
}
