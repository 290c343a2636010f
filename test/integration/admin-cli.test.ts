import { spawn } from 'node:child_process';
import test from 'ava';
import { verifyPassword } from '../../src/auth/passwords.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { startTestServer } from '../helpers/server.js';

/**
 * `npm run admin:create`: the first admin of a fresh production database (README
 * "Runbook"), as the process an operator runs, with its exit codes.
 */
let tdb: TestDatabase;

test.before(async () => {
  tdb = await createTestDatabase();
});
test.after.always(async () => {
  await tdb?.drop();
});

interface Run {
  code: number | null;
  out: string;
  err: string;
}

/** The CLI with `stdin` piped in (not a terminal), or under `script` (a terminal) when `tty`. */
function admin(args: string[], opts: { stdin?: string; tty?: boolean; env?: Record<string, string> } = {}): Promise<Run> {
  const env = { PATH: process.env.PATH, DATABASE_URL: tdb.url, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...opts.env };
  const argv = [process.execPath, '--import', 'tsx', 'src/cli/admin.ts', ...args];
  const child = opts.tty
    ? spawn('script', ['-qec', argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' '), '/dev/null'], { env })
    : spawn(argv[0]!, argv.slice(1), { env });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  if (!opts.tty) child.stdin.end(opts.stdin ?? '');
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, out, err })));
}

const row = (email: string) =>
  tdb.db.oneOrNone<{ id: number; role: string; display_name: string; claims: Record<string, unknown>; password_hash: string }>(
    'SELECT id, role, display_name, claims, password_hash FROM fieldsync.users WHERE email = $1',
    [email],
  );

test.serial('the password from stdin: the user is created, and logs in with it', async (t) => {
  const r = await admin(['--email', 'Boss@Example.com', '--role', 'admin', '--name', 'The Boss'], { stdin: 'a long enough secret\n' });
  t.is(r.code, 0, r.err);
  t.regex(r.out, /created user \d+: boss@example\.com \(admin\)/);
  t.notRegex(r.out, /password/, 'a password given is never printed');
  const u = await row('boss@example.com');
  t.like(u, { role: 'admin', display_name: 'The Boss', claims: {} });
  t.true(await verifyPassword('a long enough secret', u!.password_hash));

  // and the server takes it: the first admin can create the others
  const s = await startTestServer({}, {});
  try {
    // the server has a database of its own: copy the row over, as the operator would have run the CLI there
    await s.db.none('INSERT INTO fieldsync.users (email, password_hash, role, display_name, claims) VALUES ($1, $2, $3, $4, $5)', ['boss@example.com', u!.password_hash, 'admin', 'The Boss', {}]);
    const login = await s.post('/v1/auth/login', { email: 'boss@example.com', password: 'a long enough secret' });
    t.is(login.status, 200);
    const { token } = (await login.json()) as { token: string };
    const created = await s.post('/v1/admin/users', { email: 'second@example.com', password: 'another secret', role: 'manager', displayName: 'Second' }, { authorization: `Bearer ${token}` });
    t.is(created.status, 201);
  } finally {
    await s.close();
  }
});

test.serial('at a terminal, a password is generated and printed once', async (t) => {
  const r = await admin(['--email', 'rep@example.com', '--role', 'salesman', '--claim', 'salesmanId=7'], { tty: true });
  t.is(r.code, 0, r.out + r.err);
  const password = /password \(shown once, store it now\): (\S+)/.exec(r.out)?.[1];
  t.truthy(password, r.out);
  const u = await row('rep@example.com');
  t.deepEqual(u?.claims, { salesmanId: 7 });
  t.true(await verifyPassword(password!, u!.password_hash));
});

test.serial('refusals: e-mail in use, a role or claims the config does not allow, a short password (exit 1, nothing written)', async (t) => {
  const count = async () => (await tdb.db.one<{ n: number }>('SELECT count(*)::int AS n FROM fieldsync.users')).n;
  const before = await count();
  const taken = await admin(['--email', 'BOSS@example.com', '--role', 'admin'], { stdin: 'a long enough secret' });
  t.is(taken.code, 1);
  t.regex(taken.err, /exists/);
  const role = await admin(['--email', 'x@example.com', '--role', 'emperor'], { stdin: 'a long enough secret' });
  t.is(role.code, 1);
  t.regex(role.err, /role: one of/);
  const claim = await admin(['--email', 'y@example.com', '--role', 'salesman'], { stdin: 'a long enough secret' });
  t.is(claim.code, 1);
  t.regex(claim.err, /claims\.salesmanId: required for role salesman/);
  const foreign = await admin(['--email', 'z@example.com', '--role', 'admin', '--claim', 'clientId=3'], { stdin: 'a long enough secret' });
  t.is(foreign.code, 1);
  t.regex(foreign.err, /claims\.clientId: not a claim of role admin/);
  const short = await admin(['--email', 'w@example.com', '--role', 'admin'], { stdin: 'short' });
  t.is(short.code, 1);
  t.regex(short.err, /password \(stdin\)/);
  t.is(await count(), before);
});

test.serial('usage and configuration errors: exit 2 with the usage', async (t) => {
  const missing = await admin(['--role', 'admin']);
  t.is(missing.code, 2);
  t.regex(missing.err, /--email and --role are required[\s\S]*usage:/);
  const claim = await admin(['--email', 'v@example.com', '--role', 'admin', '--claim', 'oops'], { stdin: 'a long enough secret' });
  t.is(claim.code, 2);
  const noDb = await admin(['--email', 'v@example.com', '--role', 'admin'], { stdin: 'a long enough secret', env: { DATABASE_URL: '' } });
  t.is(noDb.code, 2);
  t.regex(noDb.err, /DATABASE_URL/);
  const help = await admin(['--help']);
  t.is(help.code, 0);
  t.regex(help.out, /usage: npm run admin:create/);
});
