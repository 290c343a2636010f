import { fileURLToPath } from 'node:url';
import pgPromise from 'pg-promise';

const root = fileURLToPath(new URL('../../sql/', import.meta.url));

/** Path of a file below sql/ (migrations, queries). */
export function sqlPath(relative: string): string {
  return root + relative;
}

/**
 * A named query from sql/queries/<area>/<verb>.sql, loaded once and minified.
 * A broken file throws at load time, not at the first request.
 */
export function sqlFile(relative: string): pgPromise.QueryFile {
  const file = new pgPromise.QueryFile(sqlPath(`queries/${relative}`), { minify: true });
  if (file.error) throw file.error;
  return file;
}
