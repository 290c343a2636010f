import pgPromise, { type IDatabase, type IMain, type ITask } from 'pg-promise';
import type { Logger } from 'pino';

/**
 * Repositories attached to the database object and to every task and transaction. None
 * today: the ones over fieldsync's own tables need the sync config's schema, which is not
 * known when the pool is made, so they are built with it (`new UsersRepo(db, model.schema)`).
 */
export interface Repos {}

/**
 * Per-pool context (pg-promise's "database context"): counts the queries sent, apart
 * from background work (tasks tagged `bg:...`: heads, doorbell, checksums, audit, prune,
 * snapshot builds), so a test can prove a request path sends none.
 */
export interface DbContext {
  /**
   * The database this pool is for. pg-promise tells pools apart by connection and context,
   * but masks everything after host:port in a connection string, so pools to two databases
   * of one server would look like duplicates (and warn) without it.
   */
  database: string;
  queries: number;
  background: number;
  /** set: queries taking longer than `ms` are logged (see slowQuery) */
  slow?: { ms: number; log: Logger; pool: string };
}

export type Db = IDatabase<Repos> & Repos;
export type Tx = ITask<Repos> & Repos;

/**
 * The one pg-promise instance of the process (pg-promise warns on more than one).
 * A repository that needs no config would be attached in an `extend` hook, so
 * `db.tx('name', t => t.repo...)` reuses the transaction (pg-promise-demo's pattern).
 */
export const pgp: IMain<Repos> = pgPromise<Repos>({
  capSQL: true,
  query(e) {
    const dc = e.dc as DbContext | undefined;
    if (!dc) return;
    const tag = (e.ctx as { tag?: unknown } | undefined)?.tag;
    if (typeof tag === 'string' && tag.startsWith('bg:')) dc.background++;
    else dc.queries++;
  },
  receive(e) {
    const slow = (e.ctx.dc as DbContext | undefined)?.slow;
    // duration: set by pg-promise on single-statement results (multi-statement scripts have none)
    const result = e.result as { duration?: number; rowCount?: number | null } | undefined;
    const ms = result?.duration;
    if (slow === undefined || ms === undefined || ms < slow.ms) return;
    const tag = (e.ctx.ctx as { tag?: unknown } | undefined)?.tag;
    slow.log.warn({ query: queryName(e.ctx.queryFilePath, typeof tag === 'string' ? tag : undefined, e.ctx.query), ms, rows: result?.rowCount ?? undefined, pool: slow.pool }, 'slow query');
  },
});

/** A query's first tokens that are keywords, identifiers or punctuation: up to the first value. */
const SQL_TOKEN = /\s*(?:--[^\n]*\n|\/\*[\s\S]*?\*\/|("(?:[^"]|"")*"|[A-Za-z_][\w$]*(?:\.(?:[A-Za-z_][\w$]*|"(?:[^"]|"")*"))*|\*|::|[(),;=<>]))/y;

/**
 * What a slow-query line calls a query: its SQL file (below sql/), else its task's tag and
 * the SQL's first words. Never values: pg-promise formats them into the text, so the words
 * stop at the first token that is not a keyword, an identifier or punctuation (a number,
 * a string, a parameter).
 */
export function queryName(file: string | undefined, tag: string | undefined, sql: unknown): string {
  if (file) {
    const at = file.lastIndexOf('/sql/');
    return at < 0 ? file : file.slice(at + 1);
  }
  const text = typeof sql === 'string' ? sql : typeof (sql as { text?: unknown } | undefined)?.text === 'string' ? (sql as { text: string }).text : '';
  const words: string[] = [];
  SQL_TOKEN.lastIndex = 0;
  let m: RegExpExecArray | null;
  let end = 0;
  while (words.length < 12 && (m = SQL_TOKEN.exec(text)) !== null) {
    end = SQL_TOKEN.lastIndex;
    if (m[1] !== undefined) words.push(m[1]);
  }
  const rest = text.slice(end).trim() === '' ? '' : ' …';
  // the text up to there, as written (comments out, whitespace collapsed)
  const head = text.slice(0, end).replace(/--[^\n]*\n|\/\*[\s\S]*?\*\//g, ' ').replace(/\s+/g, ' ').trim();
  return `${tag ? `${tag}: ` : ''}${head || '?'}${rest}`;
}

// Ids are bigint in the schema but stay far below 2^53: read them as numbers.
// numeric (money) stays a string so no cent is lost.
pgp.pg.types.setTypeParser(pgp.pg.types.builtins.INT8, (v: string) => Number.parseInt(v, 10));

export interface DbOptions {
  url: string;
  poolMax: number;
  /** name shown in pg_stat_activity */
  applicationName?: string;
  log?: Logger;
  /** with `log`: log queries taking longer than this (ms); 0 or unset: none */
  slowQueryMs?: number;
  /** the pool's name in the slow-query log (default: applicationName) */
  name?: string;
}

/** Queries this pool has sent on request paths (tests prove the no-change pull sends none). */
export function queriesSent(db: Db): number {
  return (db.$dc as DbContext).queries;
}

/** All queries this pool has sent, background work included (metrics). */
export function allQueriesSent(db: Db): number {
  const dc = db.$dc as DbContext;
  return dc.queries + dc.background;
}

/**
 * A background statement sent on the pool directly, below pg-promise: a third of the CPU
 * of one in a task (63 against 205 µs here), for a statement sent every few milliseconds
 * (the doorbell's poll). Counted as background work. Plain text, no parameters.
 */
export async function pollQuery<T extends object>(db: Db, sql: string): Promise<T[]> {
  (db.$dc as DbContext).background++;
  // pg's Pool.query (checkout, query, release); pg-promise's pool type declares only connect()
  const pool = db.$pool as unknown as { query: (text: string) => Promise<{ rows: T[] }> };
  return (await pool.query(sql)).rows;
}

/** A connection pool for one database. Close it with `db.$pool.end()`. */
export function createDb(opts: DbOptions): Db {
  const context: DbContext = { database: new URL(opts.url).pathname + new URL(opts.url).search, queries: 0, background: 0 };
  // not enumerable: pg-promise serializes the context to tell pools apart, and a logger is no part of that
  if (opts.log && opts.slowQueryMs) {
    Object.defineProperty(context, 'slow', { value: { ms: opts.slowQueryMs, log: opts.log, pool: opts.name ?? opts.applicationName ?? 'fieldsync' }, enumerable: false });
  }
  const db = pgp(
    {
      connectionString: opts.url,
      max: opts.poolMax,
      application_name: opts.applicationName ?? 'fieldsync',
      allowExitOnIdle: true,
    },
    context,
  );
  // A dropped idle connection must not crash the process; the pool replaces it.
  db.$pool.on('error', (err: Error) => opts.log?.warn({ err }, 'idle database connection failed'));
  return db;
}
