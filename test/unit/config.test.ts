import { readFileSync } from 'node:fs';
import test from 'ava';
import { ConfigError, assertServable, loadConfig, options } from '../../src/config.js';

const secret = 'x'.repeat(32);

test('defaults give the embedded demo configuration', (t) => {
  const c = loadConfig({});
  t.is(c.databaseUrl, undefined);
  t.is(c.http.port, 3000);
  t.is(c.demo.password, 'demo1234');
  t.is(c.demo.scale, 1);
  t.is(c.seedDemo, undefined);
  t.is(c.auth.ttlSeconds, 43200);
});

test('values are parsed and typed', (t) => {
  const c = loadConfig({ PORT: '8080', SEED_DEMO: 'yes', DEMO_SCALE: '10', DATABASE_URL: 'postgres://u@h/db', JWT_SECRET: secret, TRUST_PROXY: '1' });
  t.is(c.http.port, 8080);
  t.true(c.seedDemo);
  t.is(c.demo.scale, 10);
  t.is(c.http.proxyHops, 1, 'TRUST_PROXY=1: one proxy');
  t.is(c.auth.jwtSecret, secret);
});

test('TRUST_PROXY is a number of proxies; true and false mean 1 and 0 as before', (t) => {
  t.is(loadConfig({}).http.proxyHops, 0);
  t.is(loadConfig({ TRUST_PROXY: 'true' }).http.proxyHops, 1);
  t.is(loadConfig({ TRUST_PROXY: 'false' }).http.proxyHops, 0);
  t.is(loadConfig({ TRUST_PROXY: '2' }).http.proxyHops, 2);
  t.regex(t.throws(() => loadConfig({ TRUST_PROXY: 'maybe' }))!.message, /TRUST_PROXY: must be true, false or the number of trusted proxies/);
  t.regex(t.throws(() => loadConfig({ TRUST_PROXY: '11' }))!.message, /TRUST_PROXY/);
});

test('tokens live at most JWT_MAX_LIFETIME_SECONDS, and the ones we issue fit', (t) => {
  t.is(loadConfig({}).auth.maxLifetimeSeconds, 30 * 24 * 3600);
  t.is(loadConfig({ JWT_MAX_LIFETIME_SECONDS: '86400' }).auth.maxLifetimeSeconds, 86400);
  const err = t.throws(() => loadConfig({ JWT_TTL_SECONDS: '7200', JWT_MAX_LIFETIME_SECONDS: '3600' }), { instanceOf: ConfigError });
  t.regex(err.message, /JWT_TTL_SECONDS: must not exceed JWT_MAX_LIFETIME_SECONDS/);
});

test('a bad variable is rejected with a message naming it and the value', (t) => {
  const err = t.throws(() => loadConfig({ PORT: 'eighty', LOG_LEVEL: 'loud' }), { instanceOf: ConfigError });
  t.regex(err.message, /PORT: .*"eighty"/);
  t.regex(err.message, /LOG_LEVEL: .*"loud"/);
  t.is(err.problems.length, 2, 'every bad variable is named at once');
});

test('DATABASE_URL must be a postgres URL, and needs a JWT key', (t) => {
  t.regex(t.throws(() => loadConfig({ DATABASE_URL: 'mysql://x/y', JWT_SECRET: secret }))!.message, /DATABASE_URL/);
  const noKey = loadConfig({ DATABASE_URL: 'postgres://u@h/db' }); // enough for npm run seed / migrate
  t.regex(t.throws(() => assertServable(noKey))!.message, /JWT_SECRET: required/);
  t.notThrows(() => assertServable(loadConfig({})), 'embedded mode generates its key');
  t.regex(t.throws(() => loadConfig({ JWT_SECRET: 'short' }))!.message, /JWT_SECRET: must be at least 32/);
  const erpOnly = { DATABASE_URL: 'postgres://u@h/db', JWT_JWKS_URL: 'https://erp.example/jwks.json' };
  t.regex(t.throws(() => assertServable(loadConfig(erpOnly)))!.message, /CURSOR_SECRET: required/, 'cursors need a key of ours');
  t.notThrows(() => assertServable(loadConfig({ ...erpOnly, CURSOR_SECRET: secret })));
});

test('the README documents every variable with its default', (t) => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  for (const [name, opt] of Object.entries(options)) {
    const row = readme.split('\n').find((l) => l.startsWith(`| \`${name}\``));
    t.truthy(row, `${name} is in the README's configuration table`);
    if (row && 'default' in opt) t.true(row.includes(`\`${opt.default}\``), `${name}'s default ${opt.default} is in the README`);
  }
});

test('CORS_ORIGINS: exact origins or *, unset means none', (t) => {
  t.deepEqual(loadConfig({}).http.corsOrigins, [], 'the default: no CORS at all');
  t.deepEqual(loadConfig({ CORS_ORIGINS: '' }).http.corsOrigins, []);
  t.deepEqual(loadConfig({ CORS_ORIGINS: 'http://localhost:5000, https://admin.example.com,' }).http.corsOrigins, ['http://localhost:5000', 'https://admin.example.com']);
  t.deepEqual(loadConfig({ CORS_ORIGINS: '*' }).http.corsOrigins, ['*']);
  t.deepEqual(loadConfig({ CORS_ORIGINS: 'http://[::1]:5000' }).http.corsOrigins, ['http://[::1]:5000']);
});

test('a malformed CORS_ORIGINS entry is a ConfigError naming the variable', (t) => {
  for (const [value, why] of [
    ['localhost:5000', /http or https origin/], // no scheme
    ['http://localhost:5000/', /did you mean "http:\/\/localhost:5000"/], // trailing slash
    ['https://admin.example.com/app', /did you mean "https:\/\/admin.example.com"/], // a path
    ['HTTP://LOCALHOST:5000', /did you mean "http:\/\/localhost:5000"/], // browsers send lower case
    ['http://localhost:80', /did you mean "http:\/\/localhost"/], // browsers leave out the default port
    ['ftp://files.example.com', /http or https origin/],
    ['not an origin', /not an origin/],
  ] as const) {
    const err = t.throws(() => loadConfig({ CORS_ORIGINS: `http://localhost:5000,${value}` }), { instanceOf: ConfigError }, value);
    t.regex(err.message, /CORS_ORIGINS: /, value);
    t.regex(err.message, why, value);
    t.is(err.problems.length, 1, value);
  }
});

test('.env.example names only real variables, and its values load and serve', (t) => {
  const text = readFileSync(new URL('../../.env.example', import.meta.url), 'utf8');
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^(#\s*)?([A-Z][A-Z0-9_]+)=(.*)$/.exec(line);
    if (!m) continue;
    t.true(Object.hasOwn(options, m[2]!), `${m[2]} is a configuration variable`);
    if (!m[1]) env[m[2]!] = m[3]!;
  }
  t.true(Object.keys(env).length >= 10);
  const config = loadConfig(env);
  t.notThrows(() => assertServable(config));
  t.is(config.http.proxyHops, 1);
});
