import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { parse } from 'yaml';
import { assertServable, loadConfig, options, type Config } from '../../src/config.js';
import { NGINX_CONF, NGINX_CONF_PATH, isSticky, parseNginx, upstreams, type Directive } from '../helpers/nginx.js';

/**
 * docker-compose.yml and deploy/nginx.conf agree with each other and with the app: what
 * the replicas need in production is set (the same for both), nginx is the file the nginx
 * test runs and points at the replicas' names and port, and the commands the header gives
 * exist in the production image. (test/integration/nginx.test.ts runs that nginx config.)
 */

const root = fileURLToPath(new URL('../../', import.meta.url));
const composeText = readFileSync(`${root}docker-compose.yml`, 'utf8');
const header = composeText.split('\n').filter((l, i, all) => l.startsWith('#') && all.slice(0, i).every((x) => x.startsWith('#')));

/** `${NAME:?message}`: required on the command line; the header's `docker compose up` line must set each. */
const required = [...new Set([...composeText.matchAll(/\$\{(\w+):\?[^}]*\}/g)].map((m) => m[1]!))];
const upLine = header.find((l) => /docker compose up/.test(l)) ?? '';
const givenOnUp = new Set([...upLine.matchAll(/(\w+)=/g)].map((m) => m[1]!));

/** What compose would run with, the required variables given the shortest valid values. */
const sample: Record<string, string> = { JWT_SECRET: 's'.repeat(32), MINIO_PASSWORD: 'p'.repeat(8) };
function interpolate(text: string): string {
  return text.replace(/\$\$|\$\{(\w+)(?:(:?[?-])([^}]*))?\}/g, (all, name: string | undefined, op: string | undefined, arg: string | undefined) => {
    if (all === '$$') return '$';
    const value = sample[name!];
    if (value !== undefined && value !== '') return value;
    if (op?.endsWith('-')) return arg ?? '';
    if (op?.endsWith('?')) throw new Error(`the test has no value for the required variable ${name}`);
    return '';
  });
}

interface Service {
  image?: string;
  build?: unknown;
  command?: string[] | string;
  environment?: Record<string, string | number | boolean | null>;
  depends_on?: string[] | Record<string, { condition: string }>;
  healthcheck?: { test?: string[]; disable?: boolean };
  ports?: (string | number)[];
  volumes?: string[];
}
const compose = parse(interpolate(composeText), { merge: true }) as { services: Record<string, Service> };
const services = compose.services;
const apps = ['app1', 'app2'] as const;
const envOf = (s: Service): Record<string, string> => Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, v === null ? '' : String(v)]));
const dependsOn = (s: Service) => (Array.isArray(s.depends_on) ? Object.fromEntries(s.depends_on.map((d) => [d, { condition: 'service_started' }])) : (s.depends_on ?? {}));
const configOf = (name: string): Config => loadConfig(envOf(services[name]!));

test('the header’s docker compose up sets every variable the file requires', (t) => {
  t.true(required.length > 0);
  for (const name of required) t.true(givenOnUp.has(name), `${name} is required (\${${name}:?}) but the header’s up command does not set it: ${upLine}`);
});

test('both replicas run the same image, command and environment', (t) => {
  for (const a of apps) t.truthy(services[a], `service ${a}`);
  const [one, two] = apps.map((a) => services[a]!);
  t.deepEqual(envOf(one!), envOf(two!), 'the same environment');
  t.deepEqual(one!.build, two!.build);
  t.deepEqual(one!.image, two!.image);
  t.deepEqual(one!.command, two!.command);
  t.deepEqual(one!.healthcheck, two!.healthcheck);
});

test('every replica has what the app needs in production, for several processes behind one proxy', (t) => {
  for (const a of apps) {
    const env = envOf(services[a]!);
    for (const name of Object.keys(env)) t.true(Object.hasOwn(options, name), `${a}: ${name} is not a variable of src/config.ts`);
    const config = configOf(a); // throws naming a bad value
    t.notThrows(() => assertServable(config), `${a}: the server would refuse to start`);
    t.truthy(config.databaseUrl, `${a}: DATABASE_URL (else each replica runs its own embedded database)`);
    t.truthy(config.redisUrl, `${a}: REDIS_URL (rooms, limits and snapshots shared by the replicas)`);
    t.truthy(config.s3.endpoint, `${a}: S3_ENDPOINT (else each replica keeps images in its own embedded s3rver)`);
    t.is(config.http.proxyHops, 1, `${a}: TRUST_PROXY=1: nginx is the one proxy in front`);
    t.not(config.seedDemo, true, `${a}: SEED_DEMO is opt-in (a comment), never set by default`);
    t.false('SEED_DEMO' in env, `${a}: SEED_DEMO is only an opt-in comment`);
    for (const [name, value] of [['DATABASE_URL', config.databaseUrl], ['REDIS_URL', config.redisUrl], ['S3_ENDPOINT', config.s3.endpoint]] as const) {
      const host = new URL(value!).hostname;
      t.truthy(services[host], `${a}: ${name} names ${host}, not a service of docker-compose.yml`);
    }
    const probe = services[a]!.healthcheck?.test?.join(' ') ?? '';
    t.regex(probe, new RegExp(`127\\.0\\.0\\.1:${config.http.port}/ready`), `${a}: the healthcheck asks the app’s PORT`);
  }
});

test('fieldsync is installed before the replicas start, with their database', (t) => {
  const install = services.install;
  t.truthy(install, 'an install service');
  t.is(envOf(install!).DATABASE_URL, envOf(services.app1!).DATABASE_URL);
  t.regex([install!.command ?? []].flat().join(' '), /dist\/cli\/sync\.js install/);
  // each replica waits for it, directly or through the other replica
  const waits = (name: string, seen = new Set<string>()): boolean => {
    if (seen.has(name)) return false;
    seen.add(name);
    const deps = dependsOn(services[name]!);
    if (deps.install?.condition === 'service_completed_successfully') return true;
    return Object.keys(deps).some((d) => apps.includes(d as (typeof apps)[number]) && waits(d, seen));
  };
  for (const a of apps) t.true(waits(a), `${a} starts only after install completed`);
});

test('the commands the file gives run in the production image (compiled dist/, no tsx, no src/)', (t) => {
  const commands = [
    ...header.filter((l) => /docker compose (exec|run)/.test(l)),
    ...Object.values(services).map((s) => [s.command ?? []].flat().join(' ')),
  ].filter((c) => c !== '');
  t.true(header.some((l) => /docker compose exec app1 node dist\/cli\/admin\.js .*--role admin/.test(l)), 'the header shows how to create the first admin');
  for (const c of commands) {
    t.notRegex(c, /\btsx\b|\bsrc\//, `the production image has no tsx and no src/: ${c}`);
    for (const m of c.matchAll(/\bdist\/([\w/.-]+)\.js\b/g)) t.true(existsSync(`${root}src/${m[1]}.ts`), `${c}: dist/${m[1]}.js is built from src/${m[1]}.ts, which does not exist`);
  }
});

// --- nginx ---

const nginx = parseNginx(readFileSync(NGINX_CONF, 'utf8'));
const server = nginx.find((d) => d.name === 'server')!.block!;
const locations = new Map(server.filter((d) => d.name === 'location').map((d) => [d.args.at(-1)!, d.block!]));
const one = (block: Directive[], name: string) => block.find((d) => d.name === name)?.args;
/** proxy_set_header of a location: its own when it sets any (nginx does not merge them), else the server’s */
const headersOf = (loc: Directive[]) => {
  const own = loc.filter((d) => d.name === 'proxy_set_header');
  return new Map((own.length > 0 ? own : server.filter((d) => d.name === 'proxy_set_header')).map((d) => [d.args[0]!.toLowerCase(), d.args[1]!]));
};
const upstreamOf = (loc: Directive[]) => upstreams(nginx).get(/^http:\/\/([\w.-]+)/.exec(one(loc, 'proxy_pass')?.[0] ?? '')?.[1] ?? '');
const seconds = (v: string | undefined) => {
  const m = /^(\d+)(ms|s|m)?$/.exec(v ?? '60s')!;
  return Number(m[1]) * ({ ms: 0.001, s: 1, m: 60 }[m[2] ?? 's'] ?? 1);
};
const bytes = (v: string) => {
  const m = /^(\d+)([kKmMgG])?$/.exec(v)!;
  return Number(m[1]) * 1024 ** ({ k: 1, m: 2, g: 3 }[(m[2] ?? '').toLowerCase()] ?? 0);
};

test(`the lb service runs ${NGINX_CONF_PATH} (the file the nginx test runs) and publishes its port`, (t) => {
  const lb = services.lb!;
  t.truthy(lb, 'an lb service');
  t.true((lb.volumes ?? []).some((v) => v.split(':')[0] === `./${NGINX_CONF_PATH}` && v.split(':')[1] === '/etc/nginx/conf.d/default.conf'), JSON.stringify(lb.volumes));
  const listen = Number(one(server, 'listen')?.[0]);
  const published = (lb.ports ?? []).map(String).map((p) => p.split(':'));
  t.true(published.length > 0, 'publishes a port');
  t.true(published.some((p) => Number(p.at(-1)) === listen && p.length >= 2), `a host port mapped to nginx’s listen ${listen}: ${JSON.stringify(lb.ports)}`);
});

test('nginx’s upstreams are exactly the replicas, by service name and the app’s PORT', (t) => {
  const groups = [...upstreams(nginx).values()];
  t.true(groups.length >= 1);
  for (const u of groups) {
    t.deepEqual(u.servers.map((s) => s.host).sort(), [...apps].sort(), `upstream ${u.name}: every replica, nothing else`);
    for (const s of u.servers) t.is(s.port, configOf(s.host).http.port, `upstream ${u.name}: ${s.address} is the app’s PORT`);
  }
});

test('nginx: the push channel sticky by client address with WebSocket upgrades, unbuffered, with timeouts above the ping; the API to every replica', (t) => {
  const sio = locations.get('/socket.io/');
  t.truthy(sio, 'a location /socket.io/');
  const group = upstreamOf(sio!);
  t.truthy(group, 'proxied to an upstream of this file');
  t.true(isSticky(group!), `upstream ${group!.name}: ip_hash or hash $remote_addr, else a polling client’s requests reach replicas that do not hold its session`);
  const h = headersOf(sio!);
  t.is(h.get('upgrade'), '$http_upgrade');
  t.truthy(h.get('connection'), 'Connection passed for the upgrade');
  t.deepEqual(one(sio!, 'proxy_buffering'), ['off']);
  const channel = readFileSync(`${root}src/realtime/channel.ts`, 'utf8');
  const ms = (name: string) => Number(new RegExp(`${name}:\\s*([\\d_]+)`).exec(channel)?.[1]?.replaceAll('_', '') ?? NaN);
  const ping = ms('pingInterval') + ms('pingTimeout');
  t.false(Number.isNaN(ping), 'pingInterval and pingTimeout found in src/realtime/channel.ts');
  t.true(seconds(one(sio!, 'proxy_read_timeout')?.[0] ?? one(server, 'proxy_read_timeout')?.[0]) * 1000 > ping, `proxy_read_timeout above pingInterval + pingTimeout (${ping} ms)`);
  const api = locations.get('/');
  t.truthy(api && upstreamOf(api), 'location / proxied to an upstream');
  for (const [path, loc] of locations) {
    t.is(headersOf(loc).get('x-forwarded-for'), '$proxy_add_x_forwarded_for', `${path}: the client appended to X-Forwarded-For (TRUST_PROXY=1)`);
    t.is((one(loc, 'proxy_http_version') ?? one(server, 'proxy_http_version'))?.[0], '1.1', `${path}: HTTP/1.1 upstream (upgrades, keepalive)`);
  }
});

test('nginx admits an image upload of MEDIA_MAX_BYTES (and its multipart framing), not much more', (t) => {
  const limit = bytes(one(server, 'client_max_body_size')?.[0] ?? '1m');
  for (const a of apps) {
    const media = configOf(a).media.maxBytes;
    t.true(limit >= media + 64 * 1024, `client_max_body_size ${limit} must admit MEDIA_MAX_BYTES ${media} plus the multipart framing`);
    t.true(limit <= media + 1024 * 1024, `client_max_body_size ${limit}: at most 1 MiB over MEDIA_MAX_BYTES ${media}`);
  }
  for (const [path, loc] of locations) t.is(one(loc, 'client_max_body_size'), undefined, `${path}: one limit, in the server block`);
});
