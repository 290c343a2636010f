import Postgrator from 'postgrator';
import type { Db } from './pg.js';
import { sqlPath } from './sql.js';

/** Arbitrary constant: the advisory lock that serializes migrations across processes. */
const MIGRATION_LOCK = 0x66_73_79_6e; // 'fsyn'

export interface MigrationReport {
  from: number;
  to: number;
  applied: string[];
}

/**
 * Applies sql/migrations/NNN.do.*.sql with postgrator, on one connection holding an
 * advisory lock, so several app replicas starting at once migrate exactly once.
 * Each file runs as one multi-statement query, which PostgreSQL runs in one implicit
 * transaction: a failing migration leaves nothing half-applied.
 */
export async function migrate(db: Db): Promise<MigrationReport> {
  return db.task('migrate', async (t) => {
    await t.one('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      const postgrator = new Postgrator({
        migrationPattern: sqlPath('migrations/*'),
        driver: 'pg',
        schemaTable: 'schema_migrations',
        validateChecksums: true,
        execQuery: async (query: string) => ({ rows: await t.any(query) }),
      });
      const from = await postgrator.getDatabaseVersion();
      const applied = await postgrator.migrate();
      const to = await postgrator.getDatabaseVersion();
      return { from, to, applied: applied.map((m) => m.filename) };
    } finally {
      await t.one('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
    }
  });
}
