-- Offline writes (the push endpoint).

-- An order accepted while stock was short (clients.allow_backorder), and what each line
-- actually holds in stock, so a cancel releases exactly that.
ALTER TABLE orders ADD COLUMN backorder boolean NOT NULL DEFAULT false;
ALTER TABLE orders ADD COLUMN device_id text;
ALTER TABLE order_lines ADD COLUMN reserved_qty integer NOT NULL DEFAULT 0 CHECK (reserved_qty >= 0);
ALTER TABLE order_lines ADD CONSTRAINT order_lines_reserved_le_qty CHECK (reserved_qty <= qty);

-- One row per applied or rejected mutation: who, which device, what, the outcome, how
-- long it took. Written in batches, after the answer (never in the request's path).
CREATE TABLE sync_audit (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at           timestamptz NOT NULL,
  user_id      bigint NOT NULL,
  device_id    text   NOT NULL,
  mutation_id  uuid   NOT NULL,
  type         text   NOT NULL,
  status       text   NOT NULL,   -- applied, duplicate, rejected
  code         text,              -- rejection code
  duration_ms  real   NOT NULL
);
CREATE INDEX sync_audit_user_at ON sync_audit (user_id, at);
CREATE INDEX sync_audit_mutation ON sync_audit (mutation_id);

-- The transaction that applied a mutation: the device's writes are in its replica once a
-- pull has caught up past it (the push answer's visibleAfter).
ALTER TABLE sync_mutations ADD COLUMN tx xid8;
