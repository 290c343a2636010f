import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';
import S3rver from 's3rver';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { lintDockerfile, parseDockerfile, parseDockerignore, isIgnored, replayDockerfile } from '../helpers/dockerfile.js';
import { freePort, portOpen, requestInFlight, start, waitForOutput, waitForStatus, type Started } from '../helpers/process.js';

/**
 * The production image, built without Docker: the Dockerfile's stages replayed in a
 * temporary folder (its COPY lines from this repository minus .dockerignore, its RUN lines
 * with each stage's ENV: the build stage's `npm ci` with the devDependencies, the runtime
 * stage's under NODE_ENV=production without them), then the runtime stage's CMD started on
 * a fresh database and an S3 (s3rver) of this test: it refuses to start without
 * DATABASE_URL and S3_ENDPOINT (no embedded packages in production), serves, passes its
 * HEALTHCHECK, and stops on SIGTERM after finishing the request in flight, exit code 0.
 * The host's node and npm stand in for the base image (lintDockerfile checks its tag);
 * npm installs from the warm cache (--prefer-offline).
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SECRET = 'image-test-secret-that-is-long-enough-for-hs256';
const run = promisify(execFile);

/** What a container starts from: no NODE_ENV, no npm_config_* of the npm running the tests. */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', HOME: process.env.HOME ?? '/root' };
  for (const k of ['TMPDIR', 'LANG', 'AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED']) if (process.env[k] !== undefined) env[k] = process.env[k]!;
  // the cache mounts' npm cache is this machine's warm one: install from it
  return { ...env, npm_config_prefer_offline: 'true', npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };
}

test('the Dockerfile is understood and meets the image rules; a broken one is caught', async (t) => {
  const stages = parseDockerfile(await readFile(join(ROOT, 'Dockerfile'), 'utf8'));
  t.deepEqual(lintDockerfile(stages), []);
  t.deepEqual(
    stages.map((s) => s.name),
    ['build', 'runtime'],
  );
  for (const s of stages) t.regex(s.image, /^node:(22|24)-/, 'a current Node LTS');

  // NODE_ENV=production before the build stage's npm ci: typescript would be left out
  const broken = (await readFile(join(ROOT, 'Dockerfile'), 'utf8')).replace(/(FROM node:\S+ AS build\nWORKDIR \/app\n)/, '$1ENV NODE_ENV=production\n');
  t.not(broken, await readFile(join(ROOT, 'Dockerfile'), 'utf8'), 'the broken variant differs');
  const problems = lintDockerfile(parseDockerfile(broken));
  t.is(problems.length, 1, problems.join('\n'));
  t.regex(problems[0]!, /stage build builds, but its npm install on line \d+ leaves out the devDependencies \(NODE_ENV=production is set\)/);
  t.regex(lintDockerfile(parseDockerfile(broken.replace('FROM node:22-bookworm-slim AS runtime', 'FROM node:20-bookworm-slim AS runtime'))).join('\n'), /Node 20 is not a current LTS/);
  t.regex(lintDockerfile(parseDockerfile(broken.replace('USER node\n', ''))).join('\n'), /runs as root/);
  t.throws(() => parseDockerfile('FROM node:22\nADD x /x\n'), { message: /ADD is not understood/ });

  // the context: dependencies, builds, local data and secrets stay out; what the image needs stays in
  const rules = parseDockerignore(await readFile(join(ROOT, '.dockerignore'), 'utf8'));
  for (const p of ['node_modules', 'node_modules/tsx/package.json', 'dist/main.js', '.git/HEAD', '.fieldsync/pgdata', '.env', '.env.local', 'npm-debug.log', 'src/x.log', 'test/integration/x.test.ts', '.brief/x.md']) t.true(isIgnored(rules, p), p);
  for (const p of ['package.json', 'package-lock.json', 'tsconfig.json', 'src/main.ts', 'sql/queries', 'media/demo/01-water.jpg', 'docs/examples.json']) t.false(isIgnored(rules, p), p);
});

test('the image builds from the Dockerfile, has no development packages, refuses the embedded mode, serves and stops on SIGTERM with code 0', async (t) => {
  t.timeout(300_000);
  const into = await mkdtemp(join(tmpdir(), 'fieldsync-image-'));
  const s3dir = await mkdtemp(join(tmpdir(), 'fieldsync-image-s3-'));
  let tdb: TestDatabase | undefined;
  let s3: S3rver | undefined;
  let server: Started | undefined;
  t.teardown(async () => {
    server?.kill();
    await server?.exited;
    await s3?.close();
    await tdb?.drop();
    await rm(into, { recursive: true, force: true });
    await rm(s3dir, { recursive: true, force: true });
  });

  const began = Date.now();
  const stages = await replayDockerfile(parseDockerfile(await readFile(join(ROOT, 'Dockerfile'), 'utf8')), {
    context: ROOT,
    into,
    baseEnv: baseEnv(),
    log: (line) => t.log(line),
  });
  t.log(`replayed in ${Date.now() - began} ms`);
  const runtime = stages[stages.length - 1]!;
  const app = (p: string) => runtime.path(join(runtime.state.workdir, p));

  // small: production dependencies only, no sources, no tests
  t.is(runtime.state.env.NODE_ENV, 'production');
  for (const dev of ['tsx', 's3rver', '@electric-sql/pglite', '@electric-sql/pglite-socket', 'typescript', 'ava', 'esbuild']) t.false(existsSync(app(`node_modules/${dev}`)), `${dev} is not in the image`);
  for (const prod of ['sharp', 'pg-promise', 'koa', 'swagger-ui-dist', 'pure-rand']) t.true(existsSync(app(`node_modules/${prod}`)), `${prod} is in the image`);
  for (const absent of ['src', 'test', 'load', 'tsconfig.json', '.git', '.fieldsync']) t.false(existsSync(app(absent)), `${absent} is not in the image`);
  for (const present of ['dist/main.js', 'dist/demo/config.js', 'dist/seed/vocabulary.js', 'dist/cli/sync.js', 'sql/migrations', 'media/demo', 'docs/examples.json', 'package.json']) t.true(existsSync(app(present)), `${present} is in the image`);
  // no compiled module imports a devDependency at load time (only src/lib/embedded-packages.ts loads them, lazily)
  const devDeps = Object.keys((JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }).devDependencies);
  const staticDev: string[] = [];
  for (const f of (await readdir(app('dist'), { recursive: true })).filter((f) => f.endsWith('.js'))) {
    for (const m of (await readFile(app(`dist/${f}`), 'utf8')).matchAll(/^\s*(?:import|export)\b[^'"]*?from\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]/gm)) {
      const spec = m[1] ?? m[2]!;
      if (devDeps.some((d) => spec === d || spec.startsWith(`${d}/`))) staticDev.push(`dist/${f}: ${spec}`);
    }
  }
  t.deepEqual(staticDev, [], 'static imports of devDependencies in dist/');
  t.deepEqual(runtime.state.cmd, ['node', 'dist/main.js']);
  t.deepEqual(runtime.state.expose, ['3000']);
  t.is(runtime.state.user, 'node');

  const inImage = (env: Record<string, string>) => ({ ...baseEnv(), ...runtime.state.env, ...env });
  const cmd = runtime.state.cmd as string[];
  const cwd = app('.');

  // no DATABASE_URL, no S3_ENDPOINT: a clear refusal naming both, no module-resolution trace
  const refused = start(cmd[0]!, cmd.slice(1), { cwd, env: inImage({ DATA_DIR: join(into, 'data'), LOG_LEVEL: 'silent' }) });
  const r = await refused.exited;
  t.is(r.code, 2, refused.output());
  t.regex(refused.output(), /Invalid configuration:\n {2}DATABASE_URL: required in this installation: the embedded PostgreSQL \(PGlite\) is a development dependency/);
  t.regex(refused.output(), /\n {2}S3_ENDPOINT: required in this installation: the embedded S3 \(s3rver\)/);
  t.notRegex(refused.output(), /ERR_MODULE_NOT_FOUND|\n\s+at /);
  t.false(existsSync(join(into, 'data')), 'nothing opened before refusing');

  // the database as docker-compose's install step leaves it: the demo ERP's tables, then sync:install
  tdb = await createTestDatabase({ erp: 'none' });
  const db = { DATABASE_URL: tdb.url, LOG_LEVEL: 'silent' };
  await run(cmd[0]!, ['dist/cli/demo-schema.js'], { cwd, env: inImage(db) });
  const installed = await run(cmd[0]!, ['dist/cli/sync.js', 'install'], { cwd, env: inImage(db) });
  t.log(installed.stdout.trim().split('\n').at(-1));

  // S3_ENDPOINT unset with a database: refused naming S3_ENDPOINT only
  const noS3 = start(cmd[0]!, cmd.slice(1), { cwd, env: inImage({ ...db, JWT_SECRET: SECRET }) });
  t.is((await noS3.exited).code, 2, noS3.output());
  t.regex(noS3.output(), /S3_ENDPOINT: required/);
  t.notRegex(noS3.output(), /DATABASE_URL/);

  s3 = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: s3dir, configureBuckets: [{ name: 'media', configs: [] }] });
  const s3port = (await s3.run()).port;
  const port = await freePort();
  server = start(cmd[0]!, cmd.slice(1), {
    cwd,
    env: inImage({
      ...db,
      JWT_SECRET: SECRET,
      S3_ENDPOINT: `http://127.0.0.1:${s3port}`,
      S3_BUCKET: 'media',
      S3_ACCESS_KEY_ID: 'S3RVER',
      S3_SECRET_ACCESS_KEY: 'S3RVER',
      HOST: '127.0.0.1',
      PORT: String(port),
      // the demo, seeded small: the vocabulary, the demo images (media/, sharp) to S3
      SEED_DEMO: '1',
      DEMO_SCALE: '0.05',
      LOG_LEVEL: 'info',
      LOG_FORMAT: 'json',
    }),
  });
  const base = `http://127.0.0.1:${port}`;
  await waitForStatus(server, `${base}/ready`, 200, 120_000);
  t.log(`serving ${Date.now() - began} ms after the replay began`);

  // the image's own HEALTHCHECK (port 3000 in the image: this one's PORT here)
  const health = runtime.state.healthcheck as string[];
  t.is(health[0], 'node');
  const probe = await run(health[0]!, health.slice(1).map((a) => a.replace('127.0.0.1:3000', `127.0.0.1:${port}`)), { cwd, env: inImage({}) }).then(() => 0, (err: { code?: number }) => err.code ?? 1);
  t.is(probe, 0, 'HEALTHCHECK passes');

  const login = await fetch(`${base}/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'salesman1@demo.test', password: 'demo1234' }) });
  t.is(login.status, 200, 'the demo seeded from dist/ logs in');
  const images = await tdb.db.one<{ n: number }>(`SELECT count(*)::int AS n FROM fieldsync.images`);
  t.true(images.n > 0, 'demo images made from media/demo');
  const openapi = (await (await fetch(`${base}/openapi.json`)).json()) as { info: { version: string } };
  t.is(openapi.info.version, (JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
  t.is((await fetch(`${base}/docs/swagger-ui.css`)).status, 200, 'the docs assets are in the image');

  // SIGTERM (docker stop) while a request is in flight: it is answered, then exit 0
  const inFlight = await requestInFlight(port, { email: 'salesman1@demo.test', password: 'demo1234' });
  t.teardown(() => inFlight.destroy());
  server.child.kill('SIGTERM');
  await waitForOutput(server, 'shutting down');
  await new Promise((res) => setTimeout(res, 300));
  t.is(server.child.exitCode, null, 'still draining while the request is in flight');
  const answer = await inFlight.finish();
  t.is(answer.status, 200, answer.body);
  const exit = await server.exited;
  t.deepEqual(exit, { code: 0, signal: null }, server.output().slice(-2000));
  t.false(await portOpen(port), 'the port is closed');
});
