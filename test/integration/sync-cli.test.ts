import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

/**
 * The commands an operator runs (README "Adopting your ERP database"), as a process with
 * their exit codes: sync:check, sync:install (--dry-run), sync:uninstall.
 */
const run = promisify(execFile);
let tdb: TestDatabase;
let dir: string;

test.before(async () => {
  tdb = await createTestDatabase({ install: false });
  dir = await mkdtemp(join(tmpdir(), 'fieldsync-cli-'));
});
test.after.always(async () => {
  await tdb?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function sync(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'src/cli/sync.ts', ...args], {
      env: { PATH: process.env.PATH, DATABASE_URL: tdb.url, LOG_LEVEL: 'silent', AWS_SDK_JS_SUPPRESS_NODE_VERSION_WARNING: '1', ...env },
      maxBuffer: 16 * 1024 * 1024,
    });
    return { code: 0, out: stdout, err: stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, out: e.stdout, err: e.stderr };
  }
}

test.serial('check says "not installed" (exit 1); install; check says up to date (exit 0); a second install changes nothing', async (t) => {
  const before = await sync(['check']);
  t.is(before.code, 1);
  t.regex(before.out, /sync config OK: 8 collections, 6 bucket definitions, 6 roles, 8 apps/);
  t.regex(before.out, /not installed in this database: npm run sync:install/);

  const dry = await sync(['install', '--dry-run']);
  t.is(dry.code, 0);
  t.regex(dry.out, /^BEGIN;\n-- fieldsync's own schema\nCREATE SCHEMA "fieldsync";/);
  t.is((await tdb.db.one<{ n: number }>(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'fieldsync'`)).n, 0, 'the dry run changed nothing');

  const first = await sync(['install']);
  t.is(first.code, 0, first.err);
  t.regex(first.out, /^installed: 2 fieldsync migrations, \d+ statements for the config/);
  t.regex((await sync(['install'])).out, /already installed: nothing changed/);
  const after = await sync(['check']);
  t.is(after.code, 0);
  t.regex(after.out, /installed and up to date/);
});

test.serial('a config that does not fit the database: one line per problem, exit 2, nothing installed', async (t) => {
  const file = join(dir, 'broken.config.mjs');
  await writeFile(
    file,
    `export default {
      collections: { things: { table: 'thingz', key: 'id', columns: { name: 'text' } } },
      buckets: { all_things: { rows: { things: true } } },
      roles: { viewer: { buckets: { all_things: true } } },
      apps: { viewer: { roles: ['viewer'], defaultFor: ['viewer'], collections: { things: '*' } } },
    };`,
  );
  const res = await sync(['check'], { SYNC_CONFIG: file });
  t.is(res.code, 2);
  t.regex(res.err, /Invalid sync config:\n {2}collections\.things\.table: no table public\.thingz/);
  const missing = await sync(['check'], { SYNC_CONFIG: join(dir, 'nope.config.ts') });
  t.is(missing.code, 2);
  t.regex(missing.err, /nope\.config\.ts: cannot load/);
});

test.serial('uninstall removes everything fieldsync added', async (t) => {
  const dry = await sync(['uninstall', '--dry-run']);
  t.regex(dry.out, /DROP SCHEMA IF EXISTS "fieldsync" CASCADE;/);
  const res = await sync(['uninstall']);
  t.is(res.code, 0, res.err);
  t.regex(res.out, /fieldsync removed/);
  t.is((await tdb.db.one<{ n: number }>(`SELECT count(*)::int AS n FROM pg_trigger WHERE tgname LIKE 'fieldsync%'`)).n, 0);
  t.is((await sync(['check'])).code, 1);
});
