import { createHash } from 'node:crypto';
import type { IBaseProtocol } from 'pg-promise';
import { pgp } from '../db/pg.js';
import { bucketsExpr, captureFn, ident, keyText, s, type Collection, type Membership, type Model } from '../model/model.js';

/**
 * What `npm run sync:install` runs, computed from the compiled config and what the
 * database holds now. On the ERP's tables fieldsync adds triggers only; everything else
 * is in its own schema:
 *
 *   k_<c>(r)   SQL function (BEGIN ATOMIC): the row's key as text
 *   b_<c>(r)   SQL function (BEGIN ATOMIC): the buckets the row is in (read by the indexer)
 *   v_<c>(r)   SQL function (BEGIN ATOMIC): the synced values, to skip no-op updates
 *   pk_<c>_<child>(r)  the parent's key from a child row
 *   ti_/tu_/td_<c>()   the capture trigger functions (statement level, transition tables):
 *                      append the changed rows' keys to the outbox (`changes`)
 *   tc_<c>_<child>()   append the parents of changed child rows
 *   tt_<c>_<child>()   append "every parent" when the child table is truncated
 *   dep_<schema>_<table>()  marks a change of a table the parameter queries read
 *
 * The key and bucket functions are SQL-standard bodies, so PostgreSQL records which ERP
 * columns they read: dropping such a column fails with a message naming the fieldsync
 * function (instead of the ERP's writes failing later), a rename is followed, and the
 * functions are inlined where they are called.
 *
 * Every object carries the hash of its definition in its comment; install creates what is
 * missing, replaces what changed and drops what is no longer configured, nothing else.
 */

export interface PlanStep {
  /** a comment for the DBA reading the dry run */
  why: string;
  sql: string;
}

export interface InstallPlan {
  steps: PlanStep[];
  /** bucket definitions whose devices start over (changed or removed) */
  resetBuckets: string[];
  /** the hash of everything installed: a server starts only when the database has this one */
  hash: string;
  /** suggestions for the DBA, never applied (an index that would speed a child lookup) */
  advice: string[];
}

type Q = IBaseProtocol<unknown>;

interface Desired {
  kind: 'function' | 'trigger';
  /** the collection it captures */
  collection: string;
  /** comparable identity: fn:<schema>.<name> or tg:<schema>.<table>.<name> (unquoted) */
  id: string;
  /** quoted name (functions: schema-qualified) */
  name: string;
  /** for triggers: the quoted table */
  table?: string;
  create: string;
  hash: string;
}

interface Existing {
  id: string;
  /** the statement that drops it */
  drop: string;
  hash: string | null;
}

const TAG = 'fieldsync:';

const hashOf = (text: string) => createHash('sha256').update(text).digest('base64url').slice(0, 16);

/** The BEGIN ATOMIC functions and capture triggers of one collection. */
function collectionObjects(m: Model, c: Collection): Desired[] {
  const fs = (name: string) => s(m, name);
  const fid = (quoted: string) => `fn:${m.schema}.${quoted.slice(quoted.lastIndexOf('.') + 1).replaceAll('"', '')}`;
  const coll = pgp.as.text(c.name);
  const k = captureFn(m, 'k', c.name);
  const b = captureFn(m, 'b', c.name);
  const out: Desired[] = [];
  const fn = (name: string, create: string) => out.push({ kind: 'function', collection: c.name, id: fid(name), name, create, hash: hashOf(create) });
  const trigger = (name: string, table: string, create: string) => {
    const where = table === c.table ? c : c.children.find((ch) => ch.table === table)!;
    out.push({ kind: 'trigger', collection: c.name, id: `tg:${where.tableSchema}.${where.tableName}.${name}`, name: pgp.as.name(name), table, create, hash: hashOf(create) });
  };

  fn(k, `CREATE OR REPLACE FUNCTION ${k}(r ${c.table}) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE\n  BEGIN ATOMIC SELECT ${keyText(c)}; END`);
  fn(b, `CREATE OR REPLACE FUNCTION ${b}(r ${c.table}) RETURNS text[] LANGUAGE sql STABLE PARALLEL SAFE\n  BEGIN ATOMIC SELECT ${bucketsExpr(c)}; END`);
  // what the devices receive of the row (its synced source values): an update that leaves
  // it unchanged (a column fieldsync does not sync, an identical rewrite) is not re-sent
  const v = captureFn(m, 'v', c.name);
  fn(v, `CREATE OR REPLACE FUNCTION ${v}(r ${c.table}) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE\n  BEGIN ATOMIC SELECT ROW(${c.sources.join(', ')})::text; END`);

  // The capture appends the changed rows' keys to the outbox (one heap row each, no index):
  // what the ERP pays per write. The indexer computes buckets and writes items after commit.
  const changes = fs('changes');
  const ti = captureFn(m, 'ti', c.name);
  fn(ti, `CREATE OR REPLACE FUNCTION ${ti}() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  INSERT INTO ${changes} (coll, row_key) SELECT ${coll}, ${k}(n) FROM new_rows n;
  RETURN NULL;
END $fn$`);
  // A row whose synced values and buckets are unchanged is not re-sent (an ERP job
  // rewriting identical rows, a column fieldsync does not sync); a changed key is a delete
  // of the old key and a new row.
  const tu = captureFn(m, 'tu', c.name);
  const seen = (rows: string) => `SELECT ${k}(x) AS k, ${v}(x) AS v, ${b}(x) AS b FROM ${rows} x`;
  fn(tu, `CREATE OR REPLACE FUNCTION ${tu}() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  INSERT INTO ${changes} (coll, row_key)
    SELECT DISTINCT ${coll}, d.k FROM ((${seen('new_rows')} EXCEPT ALL ${seen('old_rows')})
                                  UNION ALL (${seen('old_rows')} EXCEPT ALL ${seen('new_rows')})) d;
  RETURN NULL;
END $fn$`);
  // a deleted row of the media collection takes its image along (files after the grace period)
  const images = c.media
    ? `
  WITH gone AS (DELETE FROM ${fs('images')} im USING old_rows o WHERE im.coll = ${coll} AND im.row_key = ${k}(o) RETURNING im.key, im.coll, im.row_key)
  INSERT INTO ${fs('media_garbage')} (prefix, coll, row_key) SELECT key, coll, row_key FROM gone
    ON CONFLICT (prefix) DO UPDATE SET replaced_at = now();`
    : '';
  const td = captureFn(m, 'td', c.name);
  fn(td, `CREATE OR REPLACE FUNCTION ${td}() RETURNS trigger LANGUAGE plpgsql${c.media ? ' SET enable_seqscan = off' : ''} AS $fn$
BEGIN
  INSERT INTO ${changes} (coll, row_key) SELECT ${coll}, ${k}(o) FROM old_rows o;${images}
  RETURN NULL;
END $fn$`);

  const on = (event: string, ref: string, fnName: string, table = c.table, trig = ident('fieldsync', c.name, event.toLowerCase())) =>
    trigger(trig, table, `CREATE TRIGGER ${pgp.as.name(trig)} AFTER ${event} ON ${table}${ref} FOR EACH STATEMENT EXECUTE FUNCTION ${fnName}(${fnName === fs('truncated') ? coll : ''})`);
  on('INSERT', ' REFERENCING NEW TABLE AS new_rows', ti);
  on('UPDATE', ' REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows', tu);
  on('DELETE', ' REFERENCING OLD TABLE AS old_rows', td);
  on('TRUNCATE', '', fs('truncated'));

  for (const child of c.children) {
    const fks = c.key.map((kc) => Object.keys(child.parent).find((fk) => child.parent[fk] === kc.column)!);
    const pk = captureFn(m, 'pk', c.name, child.name);
    fn(pk, `CREATE OR REPLACE FUNCTION ${pk}(r ${child.table}) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE\n  BEGIN ATOMIC SELECT ${keyText(c, 'r', fks)}; END`);
    // lines travel inside their parent: a changed line re-sends the parent (a line without
    // a parent has nothing to re-send; NULL in the outbox means every row)
    const parents = (rows: string) => `SELECT ${pk}(x) AS k FROM ${rows} x`;
    const tc = captureFn(m, 'tc', c.name, child.name);
    fn(tc, `CREATE OR REPLACE FUNCTION ${tc}() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO ${changes} (coll, row_key) SELECT DISTINCT ${coll}, p.k FROM (${parents('new_rows')}) p WHERE p.k IS NOT NULL;
  ELSIF TG_OP = 'UPDATE' THEN
    INSERT INTO ${changes} (coll, row_key) SELECT DISTINCT ${coll}, p.k FROM (${parents('new_rows')} UNION ALL ${parents('old_rows')}) p WHERE p.k IS NOT NULL;
  ELSE
    INSERT INTO ${changes} (coll, row_key) SELECT DISTINCT ${coll}, p.k FROM (${parents('old_rows')}) p WHERE p.k IS NOT NULL;
  END IF;
  RETURN NULL;
END $fn$`);
    const name = (event: string) => ident('fieldsync', c.name, child.name, event.toLowerCase());
    on('INSERT', ' REFERENCING NEW TABLE AS new_rows', tc, child.table, name('INSERT'));
    on('UPDATE', ' REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows', tc, child.table, name('UPDATE'));
    on('DELETE', ' REFERENCING OLD TABLE AS old_rows', tc, child.table, name('DELETE'));
    // an emptied child table re-sends every parent (with no nested rows), no reset needed
    const tt = captureFn(m, 'tt', c.name, child.name);
    fn(tt, `CREATE OR REPLACE FUNCTION ${tt}() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  INSERT INTO ${changes} (coll, row_key) VALUES (${coll}, NULL);
  RETURN NULL;
END $fn$`);
    on('TRUNCATE', '', tt, child.table, name('TRUNCATE'));
  }
  return out;
}

/**
 * A table the parameter queries read that no collection syncs (the demo's salesmen: a
 * salesman moved to another warehouse changes his stock buckets). One statement trigger
 * appends a marker to the outbox; the indexer turns it into a marker item per batch, so
 * the heads see the table change and cached bucket sets and socket rooms are recomputed
 * at once rather than when they expire. Old markers are pruned.
 */
function dependencyObjects(m: Model, dep: Model['dependencyTables'][number]): Desired[] {
  const fn = captureFn(m, 'dep', dep.schema, dep.name);
  const createFn = `CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  INSERT INTO ${s(m, 'changes')} (coll, row_key) VALUES (${pgp.as.text(dep.key)}, NULL);
  RETURN NULL;
END $fn$`;
  const trig = ident('fieldsync', 'dep', dep.name);
  const createTrigger = `CREATE TRIGGER ${pgp.as.name(trig)} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ${dep.quoted} FOR EACH STATEMENT EXECUTE FUNCTION ${fn}()`;
  return [
    { kind: 'function', collection: dep.key, id: `fn:${m.schema}.${ident('dep', dep.schema, dep.name)}`, name: fn, create: createFn, hash: hashOf(createFn) },
    { kind: 'trigger', collection: dep.key, id: `tg:${dep.schema}.${dep.name}.${trig}`, name: pgp.as.name(trig), table: dep.quoted, create: createTrigger, hash: hashOf(createTrigger) },
  ];
}

/** Every fieldsync trigger on any table, and every function in fieldsync's schema, with their hashes. */
async function installedObjects(db: Q, schema: string): Promise<Existing[]> {
  const triggers = await db.any<{ schema: string; table: string; name: string; hash: string | null }>(
    // ours: named fieldsync_*, calling a function of this install's schema (two installs
    // with different schemas in one database, syncing different tables, leave each other alone)
    `SELECT n.nspname AS schema, c.relname AS table, t.tgname AS name, obj_description(t.oid, 'pg_trigger') AS hash
       FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_proc f ON f.oid = t.tgfoid JOIN pg_namespace fn ON fn.oid = f.pronamespace
      WHERE NOT t.tgisinternal AND t.tgname LIKE 'fieldsync\\_%' AND fn.nspname = $1`,
    [schema],
  );
  const functions = await db.any<{ name: string; args: string; hash: string | null }>(
    `SELECT p.proname AS name, pg_get_function_identity_arguments(p.oid) AS args, obj_description(p.oid, 'pg_proc') AS hash
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1 AND p.proname ~ '^(k|b|v|pk|ti|tu|td|tc|tt|dep)_'`,
    [schema],
  );
  return [
    ...triggers.map((t) => ({
      id: `tg:${t.schema}.${t.table}.${t.name}`,
      drop: `DROP TRIGGER ${pgp.as.name(t.name)} ON ${pgp.as.name(t.schema)}.${pgp.as.name(t.table)}`,
      hash: t.hash,
    })),
    ...functions.map((f) => ({
      id: `fn:${schema}.${f.name}`,
      drop: `DROP FUNCTION ${pgp.as.name(schema)}.${pgp.as.name(f.name)}(${f.args}) CASCADE`,
      hash: f.hash,
    })),
  ];
}

/** The (row, bucket) pairs of one bucket definition, as SQL over r. */
function membershipArray(c: Collection, defName: string): string {
  const only: Collection = { ...c, memberships: c.memberships.filter((mm: Membership) => mm.bucket.name === defName) };
  return bucketsExpr(only);
}

/**
 * The install plan: fieldsync's own schema objects are applied by migrations before it
 * (see src/install/apply.ts); this diffs the capture objects and the bucket definitions.
 */
export async function planInstall(db: Q, m: Model): Promise<InstallPlan> {
  const desired = [...[...m.collections.values()].flatMap((c) => collectionObjects(m, c)), ...m.dependencyTables.flatMap((d) => dependencyObjects(m, d))];
  const have = new Map((await installedObjects(db, m.schema)).map((e) => [e.id, e]));
  const wanted = new Map(desired.map((d) => [d.id, d]));
  const steps: PlanStep[] = [];
  // what is no longer configured goes first (triggers before their functions)
  for (const e of [...have.values()].sort((a, b) => (a.id < b.id ? 1 : -1))) {
    if (!wanted.has(e.id)) steps.push({ why: `no longer configured: ${e.id.slice(3)}`, sql: e.drop });
  }
  for (const d of [...desired.filter((x) => x.kind === 'function'), ...desired.filter((x) => x.kind === 'trigger')]) {
    const existing = have.get(d.id);
    if (existing?.hash === `${TAG}${d.hash}`) continue;
    const what = `${d.kind} ${d.id.slice(3)}`;
    if (existing && d.kind === 'trigger') steps.push({ why: `changed ${what}`, sql: existing.drop });
    steps.push({ why: existing ? (d.kind === 'function' ? `changed ${what}` : '') : `new ${what}`, sql: d.create });
    const target = d.kind === 'function' ? `FUNCTION ${d.name}` : `TRIGGER ${d.name} ON ${d.table}`;
    steps.push({ why: '', sql: `COMMENT ON ${target} IS ${pgp.as.text(`${TAG}${d.hash}`)}` });
  }

  // bucket definitions: new ones are filled from the tables, changed ones rebuilt, and
  // their devices start those buckets over (reset_seq); removed ones are emptied
  const installed = (await db.one<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [s(m, 'bucket_defs')])).t !== null;
  const defs = new Map(
    installed ? (await db.any<{ name: string; hash: string }>(`SELECT name, hash FROM ${s(m, 'bucket_defs')}`)).map((r) => [r.name, r.hash]) : [],
  );
  const resetBuckets: string[] = [];
  const items = s(m, 'items');
  const byDef = (name: string) => pgp.as.format(`(bucket = $1 OR bucket LIKE $2)`, [name, `${name}:%`]);
  // A collection whose capture triggers are missing although its buckets are installed
  // lost writes meanwhile (the ERP recreated its table, or someone dropped a trigger): its
  // items cannot be trusted, so its bucket definitions are rebuilt like changed ones.
  const uncaptured = new Set(desired.filter((d) => d.kind === 'trigger' && !have.has(d.id)).map((d) => d.collection));
  // Items written here are a batch of their own, numbered by a new batch number taken once
  // before the first write (install holds the indexer's lock from its start: batches commit
  // in number order; see src/install/apply.ts).
  const batch = `(SELECT seq FROM ${s(m, 'state')})`;
  const itemSteps = steps.length;
  for (const def of m.buckets.values()) {
    const before = defs.get(def.name);
    const lost = before === def.hash ? def.collections.find((c) => uncaptured.has(c.name)) : undefined;
    if (before === def.hash && !lost) continue;
    if (before !== undefined) {
      resetBuckets.push(def.name);
      const why = lost
        ? `the capture of ${lost.name} was missing (its table recreated, or a trigger dropped): bucket definition ${def.name} rebuilt, devices download its buckets again`
        : `bucket definition ${def.name} changed: rebuilt, devices download its buckets again`;
      steps.push({ why, sql: `DELETE FROM ${items} WHERE ${byDef(def.name)}` });
    }
    for (const c of def.collections) {
      steps.push({
        why: before === undefined ? `bucket definition ${def.name}: the rows ${c.name} already has` : '',
        sql: `INSERT INTO ${items} (coll, row_key, bucket, seq)
  SELECT DISTINCT ${pgp.as.text(c.name)}, ${keyText(c)}, bk, ${batch} FROM ${c.table} r, unnest(${membershipArray(c, def.name)}) bk
  ON CONFLICT (coll, row_key, bucket) DO UPDATE SET seq = excluded.seq, deleted = false, deleted_at = NULL`,
      });
    }
    steps.push({
      why: '',
      sql: pgp.as.format(
        `INSERT INTO ${s(m, 'bucket_defs')} (name, hash, reset_seq) VALUES ($1, $2, ${batch})
  ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, reset_seq = excluded.reset_seq, changed_at = now()`,
        [def.name, def.hash],
      ),
    });
  }
  for (const name of defs.keys()) {
    if (m.buckets.has(name)) continue;
    resetBuckets.push(name);
    steps.push({ why: `bucket definition ${name} removed`, sql: `DELETE FROM ${items} WHERE ${byDef(name)}` });
    steps.push({ why: '', sql: pgp.as.format(`DELETE FROM ${s(m, 'bucket_defs')} WHERE name = $1`, [name]) });
  }
  if (steps.length > itemSteps) {
    steps.splice(itemSteps, 0, {
      why: 'items are written as one indexing batch: under the indexer lock, with a new batch number',
      sql: `UPDATE ${s(m, 'state')} SET seq = seq + 1`,
    });
  }

  const hash = hashOf(JSON.stringify([desired.map((d) => [d.name, d.table ?? '', d.hash]), [...m.buckets.values()].map((d) => [d.name, d.hash])]));
  if (steps.length > 0) {
    steps.push({
      why: 'record what is installed',
      sql: pgp.as.format(
        `INSERT INTO ${s(m, 'installed')} (plan_hash, collections) VALUES ($1, $2)
  ON CONFLICT (singleton) DO UPDATE SET plan_hash = excluded.plan_hash, collections = excluded.collections, installed_at = now()`,
        [hash, JSON.stringify([...m.collections.keys()])],
      ),
    });
  }
  return { steps, resetBuckets, hash, advice: await indexAdvice(db, m) };
}

/**
 * Child rows are read by their parent key: without an index whose leading columns are
 * those, every pull of a parent scans the child table. fieldsync never adds one to an
 * ERP table; it tells the DBA.
 */
async function indexAdvice(db: Q, m: Model): Promise<string[]> {
  const advice: string[] = [];
  for (const c of m.collections.values()) {
    for (const child of c.children) {
      const fks = c.key.map((kc) => Object.keys(child.parent).find((fk) => child.parent[fk] === kc.column)!);
      const covered = await db.oneOrNone(
        `SELECT 1 FROM pg_index i
           JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
          WHERE n.nspname = $1 AND t.relname = $2
            AND (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
                   JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum WHERE k.ord <= $3) = $4::text[]`,
        [child.tableSchema, child.tableName, fks.length, fks],
      );
      if (!covered) {
        advice.push(
          `-- ${c.name}.${child.name}: reading the nested rows of a ${c.name} row scans ${child.table}; an index would help:\n` +
            `--   CREATE INDEX CONCURRENTLY ON ${child.table} (${fks.map((f) => pgp.as.name(f)).join(', ')});`,
        );
      }
    }
  }
  return advice;
}

/** Everything `sync:uninstall` runs: every fieldsync trigger on any table, then fieldsync's schema. */
export async function planUninstall(db: Q, schema: string): Promise<PlanStep[]> {
  const triggers = (await installedObjects(db, schema)).filter((e) => e.id.startsWith('tg:'));
  return [
    ...triggers.map((t) => ({ why: `trigger ${t.id.slice(3)}`, sql: t.drop })),
    { why: `fieldsync's schema and everything in it`, sql: `DROP SCHEMA IF EXISTS ${pgp.as.name(schema)} CASCADE` },
  ];
}

/** The plan as a script a DBA can read and run (the dry run). */
export function planText(steps: PlanStep[], advice: string[] = []): string {
  const body = steps.map((st) => `${st.why ? `-- ${st.why}\n` : ''}${st.sql};`).join('\n');
  return `BEGIN;\n${body}\nCOMMIT;\n${advice.length ? `\n-- Not applied, for the DBA:\n${advice.join('\n')}\n` : ''}`;
}
