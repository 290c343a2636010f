import { z } from 'zod';

/**
 * Wire values bounded to what the database columns behind them hold, shared by every
 * schema that takes them: a value PostgreSQL would refuse is refused here first, with the
 * field's path, before anything is written. (The problem middleware also turns any
 * data exception that slips past into a 400: a missed bound is never a 500.)
 */

/** Years a date or timestamp may name: PostgreSQL has no year 0, and nobody delivers in 10000. */
const MIN_YEAR = 1000;
const MAX_YEAR = 9999;
const yearOf = (iso: string) => Number(/^(\d{4})/.exec(iso)?.[1] ?? Number.NaN);

/** A calendar date `YYYY-MM-DD`, years 1000 to 9999 (the format allows four digits only). */
export const isoDate = z.iso.date().refine((d) => yearOf(d) >= MIN_YEAR, `a date between ${MIN_YEAR} and ${MAX_YEAR}`);

/** An ISO 8601 date-time with an offset, years 1000 to 9999. */
export const isoDateTime = z.iso.datetime({ offset: true }).refine((d) => yearOf(d) >= MIN_YEAR, `a date-time between ${MIN_YEAR} and ${MAX_YEAR}`);

/** Milliseconds since 1970 (UTC), up to the end of year 9999. */
export const epochMs = z.number().int().positive().max(Date.UTC(MAX_YEAR, 11, 31, 23, 59, 59, 999), 'a time before the year 10000 (epoch milliseconds)');

/** A row id: a positive integer a JSON number holds exactly (zod's int() is a safe integer), and bigint holds. */
export const rowId = z.number().int().positive();

/**
 * A batch number (or a bigint key) as text: digits without a leading zero, below 2^63.
 * Cursors, the media manifest's cursor and integer ids in URLs are read with it.
 */
export function isSeqText(text: string): boolean {
  return /^(0|[1-9][0-9]{0,18})$/.test(text) && BigInt(text) < 2n ** 63n;
}
