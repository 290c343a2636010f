/**
 * PostgreSQL advisory lock keys (arbitrary constants, 'fsyn' and on), one place so that
 * no two purposes share a key by accident.
 */

/** Serializes installs and uninstalls across processes. */
export const INSTALL_LOCK = 0x66_73_79_6e;

/** Serializes the demo ERP schema's own migrations. */
export const DEMO_SCHEMA_LOCK = INSTALL_LOCK + 1;

/**
 * Held by whoever writes items with a new batch number (the indexer's batches, install's
 * backfills), until commit: batches commit in number order, which is what lets a reader
 * treat "every batch up to n is visible" as one fact.
 */
export const INDEX_LOCK = INSTALL_LOCK + 2;
