-- Product images: the variants of the current image (key, bytes, sha256, size, type),
-- for the offline prefetch manifest; and the image prefixes replaced by a newer upload,
-- deleted from storage after a grace period by the cleanup job.
ALTER TABLE products ADD COLUMN image_variants jsonb;

CREATE TABLE media_garbage (
  prefix       text PRIMARY KEY,
  product_id   bigint NOT NULL,
  replaced_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX media_garbage_replaced ON media_garbage (replaced_at);
