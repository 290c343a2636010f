/**
 * `npm run admin:create -- --email <e-mail> --role <role> [--name <display name>]
 * [--claim <name>=<value> ...]`: a standalone login in DATABASE_URL, the first admin of a
 * fresh production database above all (the admin-users endpoint needs an admin token).
 * The password is read from stdin when it is not a terminal (`... < password.txt`, or
 * piped from a secret store), else generated and printed once. The role and its claims
 * are checked against the sync config exactly as POST /v1/admin/users checks them.
 * In the production image: `node dist/cli/admin.js --email ... --role admin`.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { hashPassword } from '../auth/passwords.js';
import { ConfigError, loadConfig } from '../config.js';
import { isUniqueConflict } from '../db/errors.js';
import { createDb } from '../db/pg.js';
import { UsersRepo } from '../db/repos/users.js';
import { violations } from '../errors.js';
import { installedHash } from '../install/apply.js';
import { SyncConfigError } from '../model/config.js';
import { loadConfigFile, loadModel } from '../model/load.js';
import { newUser } from '../protocol/admin.js';

const USAGE = `usage: npm run admin:create -- --email <e-mail> --role <role> [--name <display name>] [--claim <name>=<value> ...]
  the password: from stdin when it is not a terminal (at least 8 characters, one line),
  else generated and printed once
  --claim  each claim the role declares in the sync config (the demo's salesman: --claim salesmanId=7)
environment: DATABASE_URL (required), SYNC_CONFIG (default: the demo's config)
exit: 0 created, 1 refused (e-mail in use, role or claims do not fit), 2 usage or configuration`;

class UsageError extends Error {}

/** `name=value`: numbers as numbers (an int claim), anything else as text. */
function parseClaims(given: readonly string[]): Record<string, string | number> {
  const claims: Record<string, string | number> = {};
  for (const c of given) {
    const eq = c.indexOf('=');
    if (eq <= 0) throw new UsageError(`--claim ${c}: write it as <name>=<value>`);
    const value = c.slice(eq + 1);
    claims[c.slice(0, eq)] = /^[0-9]{1,15}$/.test(value) ? Number(value) : value;
  }
  return claims;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      email: { type: 'string' },
      role: { type: 'string' },
      name: { type: 'string' },
      claim: { type: 'string', multiple: true, default: [] },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.email || !values.role) throw new UsageError('--email and --role are required');
  const config = loadConfig();
  if (!config.databaseUrl) throw new ConfigError(['DATABASE_URL: required (in embedded mode the demo logins exist already)']);
  const generated = process.stdin.isTTY ? randomBytes(15).toString('base64url') : undefined;
  const password = generated ?? (await readStdin());
  const db = createDb({ url: config.databaseUrl, poolMax: 1, applicationName: 'fieldsync-admin' });
  try {
    const model = await loadModel(db, await loadConfigFile(config.syncConfig));
    if ((await installedHash(db, model.schema)) === undefined) throw new ConfigError(['fieldsync is not installed in this database: run npm run sync:install first']);
    const parsed = newUser(model).safeParse({
      email: values.email,
      password,
      role: values.role,
      displayName: values.name ?? values.email,
      claims: parseClaims(values.claim),
    });
    if (!parsed.success) {
      for (const v of violations(parsed.error)) console.error(`${v.path === '' ? 'input' : v.path === 'password' ? 'password (stdin)' : v.path}: ${v.message}`);
      return 1;
    }
    const u = parsed.data;
    try {
      const user = await new UsersRepo(db, model.schema).insert({ email: u.email, passwordHash: await hashPassword(u.password), role: u.role, displayName: u.displayName, claims: u.claims });
      console.log(`created user ${user.id}: ${user.email} (${user.role})`);
      if (generated) console.log(`password (shown once, store it now): ${generated}`);
      return 0;
    } catch (err) {
      if (!isUniqueConflict(err)) throw err;
      console.error(`a user with e-mail ${u.email} exists`);
      return 1;
    }
  } finally {
    await db.$pool.end();
  }
}

let code: number;
try {
  code = await main();
} catch (err) {
  if (err instanceof UsageError) {
    console.error(`${err.message}\n${USAGE}`);
  } else {
    console.error(err instanceof ConfigError || err instanceof SyncConfigError ? err.message : err);
  }
  code = 2;
}
process.exit(code);
