-- Change capture through an outbox (issue 10: what the ERP pays per write; issue 11: no
-- delivery waits for someone else's transaction).
--
-- Before: the capture triggers wrote one items row per (row, bucket) in the ERP's own
-- transaction, stamped with its transaction id, and pull read below the cluster-wide
-- watermark pg_snapshot_xmin: three index entries per bucket on every ERP write, and one
-- long transaction anywhere held back every device.
--
-- Now: a trigger appends the changed row's key to `changes` (one heap row, no index), and
-- fieldsync's indexer (src/sync/indexer.ts) turns what has committed into items, in
-- batches numbered by `state.seq`. Batches run one at a time and commit in number order,
-- so a reader that sees batch n sees every batch below it: the position of every item is
-- its batch number, and no open transaction holds back anything but its own rows (they
-- are in `changes` once it commits, and never if it rolls back).

-- The outbox: a key per changed row (NULL: every row of the collection), written by the
-- capture triggers in the ERP's transaction, deleted by the indexer in its batch. Drained
-- every few milliseconds, so it stays small; vacuumed eagerly for the same reason.
CREATE TABLE changes (
  coll     text COLLATE "C" NOT NULL,
  row_key  text COLLATE "C"
) WITH (autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_scale_factor = 0,
        autovacuum_vacuum_insert_threshold = 1000, autovacuum_vacuum_insert_scale_factor = 0);
COMMENT ON TABLE changes IS
  'fieldsync outbox: keys of changed rows, appended by the capture triggers, drained by the indexer into items';

-- The number of the last indexing batch. It starts at this transaction's id, so every
-- position a cursor issued before this migration (transaction ids below it) still means
-- the same items: those keep their transaction id as their batch number, and everything
-- written from now on comes after them. Cursors from before the upgrade continue.
ALTER TABLE state ADD COLUMN seq bigint NOT NULL DEFAULT 0;
UPDATE state SET seq = pg_current_xact_id()::text::bigint;

ALTER TABLE items RENAME COLUMN tx TO seq;
ALTER TABLE items ALTER COLUMN seq TYPE bigint USING seq::text::bigint;
ALTER INDEX items_tx RENAME TO items_seq;
COMMENT ON TABLE items IS
  'fieldsync change log: one row per (collection, row, bucket), stamped with the indexing batch that last wrote it. Deleted items are pruned after the retention; older cursors get 410.';

ALTER TABLE prune_horizon RENAME COLUMN pruned_tx TO pruned_seq;
ALTER TABLE prune_horizon ALTER COLUMN pruned_seq TYPE bigint USING pruned_seq::text::bigint;
ALTER TABLE bucket_defs RENAME COLUMN reset_tx TO reset_seq;
ALTER TABLE bucket_defs ALTER COLUMN reset_seq TYPE bigint USING reset_seq::text::bigint;

-- Images: numbered by the batch that takes their row from the outbox (NULL until then), like items.
ALTER TABLE images RENAME COLUMN tx TO seq;
ALTER TABLE images ALTER COLUMN seq DROP DEFAULT;
ALTER TABLE images ALTER COLUMN seq DROP NOT NULL;
ALTER TABLE images ALTER COLUMN seq TYPE bigint USING seq::text::bigint;
ALTER INDEX images_tx RENAME TO images_seq;

-- A push answers with the batch that made its writes visible, known after its commit.
ALTER TABLE mutations DROP COLUMN tx;

DROP FUNCTION watermark();

-- A TRUNCATE of a synced table (no per-row deletes can be written): a marker in the
-- outbox, the collection as its key. The indexer, under its lock, bumps the sync epoch
-- and clears the collection's items and images when the TRUNCATE has committed. The ERP's
-- transaction touches no row fieldsync's batches write: it used to update `state` and
-- delete items itself, which stopped every batch until it committed.
CREATE OR REPLACE FUNCTION truncated() RETURNS trigger
  LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  INSERT INTO changes (coll, row_key) VALUES ('#truncate', TG_ARGV[0]);
  RETURN NULL;
END $$;
