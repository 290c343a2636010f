import { ConfigError, type Config } from '../config.js';

/**
 * The embedded mode's packages (PGlite, its socket server, s3rver) are development
 * dependencies: a production install (`npm ci --omit=dev`, the Docker image) does not have
 * them. They are loaded here and only here, on the path that needs them (DATABASE_URL or
 * S3_ENDPOINT unset), so nothing else in src/ imports them. Absent, the server refuses
 * with a ConfigError naming the variable to set, not a module-resolution stack trace.
 */
const PROBLEMS = {
  postgres:
    'DATABASE_URL: required in this installation: the embedded PostgreSQL (PGlite) is a development dependency, not installed here (a production install: npm ci --omit=dev, the Docker image). Set DATABASE_URL to your PostgreSQL (and JWT_SECRET), or install the development dependencies (npm ci) for the embedded demo',
  s3: 'S3_ENDPOINT: required in this installation: the embedded S3 (s3rver) is a development dependency, not installed here (a production install: npm ci --omit=dev, the Docker image). Set S3_ENDPOINT, S3_BUCKET, S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY to your S3 or MinIO, or install the development dependencies (npm ci)',
} as const;

type Part = keyof typeof PROBLEMS;

/** The import failed because the package itself is not installed (not a broken file inside it). */
function missingPackage(err: unknown, pkg: string): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  return (e?.code === 'ERR_MODULE_NOT_FOUND' || e?.code === 'MODULE_NOT_FOUND') && typeof e.message === 'string' && e.message.includes(`'${pkg}'`);
}

async function load<T>(part: Part, pkg: string, importer: () => Promise<T>): Promise<T> {
  try {
    return await importer();
  } catch (err) {
    if (missingPackage(err, pkg)) throw new ConfigError([PROBLEMS[part]]);
    throw err;
  }
}

/** PGlite, its pg_trgm extension and its socket server (the embedded PostgreSQL). */
export async function loadPglite() {
  const [{ PGlite }, { pg_trgm }, { PGLiteSocketServer }] = await Promise.all([
    load('postgres', '@electric-sql/pglite', () => import('@electric-sql/pglite')),
    load('postgres', '@electric-sql/pglite', () => import('@electric-sql/pglite/contrib/pg_trgm')),
    load('postgres', '@electric-sql/pglite-socket', () => import('@electric-sql/pglite-socket')),
  ]);
  return { PGlite, pg_trgm, PGLiteSocketServer };
}

/** s3rver (the embedded S3). */
export async function loadS3rver() {
  return (await load('s3', 's3rver', () => import('s3rver'))).default;
}

/**
 * At start, before anything is opened: every embedded part this configuration needs is
 * installed. One ConfigError names every missing part.
 */
export async function assertEmbeddedInstalled(config: Pick<Config, 'databaseUrl' | 's3'>): Promise<void> {
  const problems: string[] = [];
  const check = (loader: () => Promise<unknown>) =>
    loader().catch((err: unknown) => {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(...err.problems);
    });
  if (config.databaseUrl === undefined) await check(loadPglite);
  if (config.s3.endpoint === undefined) await check(loadS3rver);
  if (problems.length > 0) throw new ConfigError(problems);
}
