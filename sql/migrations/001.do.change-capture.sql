-- Change capture shared by every synced table (DESIGN §4.2, §5).
--
-- Each synced row carries `_tx xid8`: the id of the transaction that last wrote it, set
-- by a BEFORE trigger so writes made by plain SQL from outside fieldsync (the ERP) are
-- captured too. A reader gated at the watermark pg_snapshot_xmin(pg_current_snapshot())
-- sees every transaction below it as finished, so paging by (_tx, id) below the watermark
-- never skips a transaction that commits later (sequence numbers and timestamps would).
--
-- Rows that leave a bucket (DELETE, or an UPDATE that changes the bucket key) get a row
-- in sync_tombstones for the bucket they left. A NOTIFY on channel 'fieldsync' names the
-- touched buckets: a doorbell for the push channel, never the source of truth.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE sync_tombstones (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  bucket      text   NOT NULL,
  collection  text   NOT NULL,
  row_id      text   NOT NULL,
  _tx         xid8   NOT NULL DEFAULT pg_current_xact_id(),
  deleted_at  timestamptz NOT NULL DEFAULT now()
);
-- pull reads tombstones of one bucket after a position: (bucket, _tx, id)
CREATE INDEX sync_tombstones_bucket_tx ON sync_tombstones (bucket, _tx, id);
-- the prune job removes tombstones older than the retention
CREATE INDEX sync_tombstones_deleted_at ON sync_tombstones (deleted_at);
-- heads: which buckets changed between two watermarks
CREATE INDEX sync_tombstones_tx ON sync_tombstones (_tx);

-- The prune job deletes tombstones older than the retention and records, per bucket,
-- the newest transaction it pruned: a cursor position below it may have missed a
-- delete, so that bucket answers 410 and restarts from zero.
CREATE TABLE sync_prune_horizon (
  bucket     text PRIMARY KEY,
  pruned_tx  xid8 NOT NULL,
  pruned_at  timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE sync_tombstones IS
  'One row per (row, bucket) a row left: deleted, or moved to another bucket. Pruned after the retention; older cursors get 410.';

-- The position below which every transaction is finished (committed or aborted).
CREATE FUNCTION sync_watermark() RETURNS xid8
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT pg_snapshot_xmin(pg_current_snapshot()) $$;

-- BEFORE INSERT OR UPDATE, FOR EACH ROW: stamp the writing transaction.
-- An UPDATE that changes nothing keeps the old stamp, so an ERP job that rewrites
-- identical rows every night does not make every device download them again.
CREATE FUNCTION sync_stamp() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' THEN
    IF NEW IS NOT DISTINCT FROM OLD THEN
      RETURN NEW;
    END IF;
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
      NEW.updated_at := clock_timestamp();
    END IF;
  END IF;
  NEW._tx := pg_current_xact_id();
  RETURN NEW;
END $$;

-- Rings the doorbell for the buckets a statement touched. NOTIFY payloads are limited to
-- 8000 bytes: the buckets go out in chunks. Identical notifications in one transaction
-- are folded into one by PostgreSQL.
CREATE FUNCTION sync_ring(collection text, touched text[]) RETURNS void
  LANGUAGE plpgsql AS $$
DECLARE
  i int := 1;
BEGIN
  WHILE touched IS NOT NULL AND i <= cardinality(touched) LOOP
    PERFORM pg_notify('fieldsync', json_build_object('c', collection, 'b', touched[i:i + 99])::text);
    i := i + 100;
  END LOOP;
END $$;

-- One row: the epoch every pull cursor carries. A cursor from another epoch answers 410
-- and the device re-bootstraps. Bumped by a migration that changes what synced rows
-- mean, and by TRUNCATE of a synced table: TRUNCATE fires no row or DELETE triggers, so
-- it writes no tombstones, and the only safe answer for devices holding those rows is
-- to start over.
CREATE TABLE sync_state (
  singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  epoch      integer NOT NULL DEFAULT 1,
  changed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO sync_state DEFAULT VALUES;

-- AFTER TRUNCATE, FOR EACH STATEMENT. Doorbell bucket '*' means every bucket.
CREATE FUNCTION sync_bump_epoch() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  UPDATE sync_state SET epoch = epoch + 1, changed_at = now();
  PERFORM pg_notify('fieldsync', json_build_object('c', TG_TABLE_NAME, 'b', ARRAY['*'])::text);
  RETURN NULL;
END $$;

-- Registers a table for change capture: the stamp trigger, three AFTER statement
-- triggers (with transition tables old_rows / new_rows, so a bulk ERP import costs one
-- tombstone INSERT and a few NOTIFYs per statement, not per row) and the TRUNCATE
-- trigger. `buckets` is an SQL expression over the row alias r giving its buckets as
-- text[] (NULL elements ignored); `row_id` gives its id as text.
--
-- The capture functions are generated per table with the expressions inlined as static
-- SQL, so PL/pgSQL caches their plans per session: a dynamic EXECUTE would be planned
-- again for every statement, which cost milliseconds per write.
-- Also usable by an operator to sync a table the ERP adds later.
CREATE FUNCTION sync_track(tbl regclass, collection text, buckets text, row_id text DEFAULT 'r.id::text')
  RETURNS void LANGUAGE plpgsql AS $track$
DECLARE
  name text := (SELECT relname FROM pg_class WHERE oid = tbl);
  pairs_old text := format('SELECT %s AS id, b AS bucket FROM old_rows r, unnest(%s) b WHERE b IS NOT NULL', row_id, buckets);
  pairs_new text := format('SELECT %s AS id, b AS bucket FROM new_rows r, unnest(%s) b WHERE b IS NOT NULL', row_id, buckets);
  -- (id, bucket) pairs present before and absent after: the rows that left those buckets
  left_pairs text := format('SELECT o.id, o.bucket FROM (%s) o WHERE NOT EXISTS (SELECT 1 FROM (%s) n WHERE n.id = o.id AND n.bucket = o.bucket)', pairs_old, pairs_new);
BEGIN
  EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION sync_stamp()',
                 name || '_sync_stamp', tbl);

  EXECUTE format($f$CREATE FUNCTION %I() RETURNS trigger LANGUAGE plpgsql AS $body$
    BEGIN
      PERFORM sync_ring(%L, (SELECT array_agg(DISTINCT bucket ORDER BY bucket) FROM (%s) n));
      RETURN NULL;
    END $body$$f$, name || '_sync_ins', collection, pairs_new);
  EXECUTE format($f$CREATE FUNCTION %I() RETURNS trigger LANGUAGE plpgsql AS $body$
    BEGIN
      INSERT INTO sync_tombstones (bucket, collection, row_id) SELECT DISTINCT l.bucket, %L, l.id FROM (%s) l;
      -- buckets whose content changed: rows re-stamped by this transaction, plus buckets rows left
      PERFORM sync_ring(%L, (SELECT array_agg(DISTINCT bucket ORDER BY bucket) FROM (
        SELECT b AS bucket FROM new_rows r, unnest(%s) b WHERE b IS NOT NULL AND r._tx = pg_current_xact_id()
        UNION SELECT l.bucket FROM (%s) l) t));
      RETURN NULL;
    END $body$$f$, name || '_sync_upd', collection, left_pairs, collection, buckets, left_pairs);
  EXECUTE format($f$CREATE FUNCTION %I() RETURNS trigger LANGUAGE plpgsql AS $body$
    BEGIN
      INSERT INTO sync_tombstones (bucket, collection, row_id) SELECT DISTINCT o.bucket, %L, o.id FROM (%s) o;
      PERFORM sync_ring(%L, (SELECT array_agg(DISTINCT bucket ORDER BY bucket) FROM (%s) o));
      RETURN NULL;
    END $body$$f$, name || '_sync_del', collection, pairs_old, collection, pairs_old);

  EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION %I()',
                 name || '_sync_ins', tbl, name || '_sync_ins');
  EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION %I()',
                 name || '_sync_upd', tbl, name || '_sync_upd');
  EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION %I()',
                 name || '_sync_del', tbl, name || '_sync_del');
  EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION sync_bump_epoch()',
                 name || '_sync_truncate', tbl);
  -- what was registered, for tools and tests (the generated functions inline it)
  EXECUTE format('COMMENT ON TRIGGER %I ON %s IS %L', name || '_sync_ins', tbl, json_build_object('collection', collection, 'buckets', buckets, 'row_id', row_id)::text);
END $track$;
