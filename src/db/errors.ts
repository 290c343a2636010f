import { AppError } from '../errors.js';

/**
 * What a PostgreSQL (or pg driver) error means for the caller, decided once: the problem
 * middleware, the route executor's retry and the push loop all ask here.
 */
function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** Driver messages of a connection that died under a query (no SQLSTATE: the socket went away). */
const LOST = /Connection terminated|connection error and is not queryable|Client was closed/i;

/**
 * The connection was lost or the server is going away: a failover, a DBA's
 * pg_terminate_backend, PgBouncer restarting. Nothing about the request was wrong; the
 * same request on a fresh connection can succeed.
 */
export function isConnectionLoss(err: unknown): boolean {
  const state = sqlState(err);
  // 08: connection exception; 57P01-03: admin shutdown, crash shutdown, cannot connect now
  if (state) return state.startsWith('08') || state === '57P01' || state === '57P02' || state === '57P03';
  const code = (err as { code?: unknown } | null)?.code;
  return (typeof code === 'string' && /^(ECONNRESET|ECONNREFUSED|EPIPE)$/.test(code)) || (err instanceof Error && LOST.test(err.message));
}

/** A value PostgreSQL refused (class 22: a date out of range, a number too large, NUL in text). */
export function isDataException(err: unknown): boolean {
  return sqlState(err)?.startsWith('22') ?? false;
}

/** A serialization failure or a deadlock: the same transaction run again can succeed. */
export function isRetryable(err: unknown): boolean {
  const state = sqlState(err);
  return state === '40001' || state === '40P01';
}

/** A write colliding with existing data: a unique or exclusion violation. */
export function isUniqueConflict(err: unknown): boolean {
  const state = sqlState(err);
  return state === '23505' || state === '23P01';
}

const RETRY_AFTER = { 'Retry-After': '1' };

/**
 * A PostgreSQL error as the HTTP problem it is, or undefined for one that is a defect of
 * ours (a syntax error, an undefined column: answered 500 and logged):
 *   - 22xxx data exception: 400, the value does not fit the column (a bound the edge missed;
 *     the edge should catch it first, this keeps it from ever being a 500);
 *   - 23505/23P01 unique or exclusion violation: 409; 23503/23502/23514 foreign key, not
 *     null, check: 422 (the request names data that does not fit);
 *   - serialization failure, deadlock, lost connection, too many connections, a cancelled
 *     statement (statement_timeout), the server shutting down: 503 with Retry-After.
 */
export function fromDatabase(err: unknown): AppError | undefined {
  if (isConnectionLoss(err)) return new AppError('unavailable', 'the database connection was lost; retry', { headers: RETRY_AFTER });
  const state = sqlState(err);
  if (!state) return undefined;
  const message = (err as Error).message;
  if (state.startsWith('22')) return new AppError('validation-failed', `a value does not fit the database: ${message}`);
  if (isUniqueConflict(err)) return new AppError('conflict', message);
  if (state === '23503' || state === '23502' || state === '23514') return new AppError('unprocessable', message);
  if (isRetryable(err) || state.startsWith('53') || state === '57014') {
    return new AppError('unavailable', 'the database is busy; retry', { headers: RETRY_AFTER });
  }
  return undefined;
}
