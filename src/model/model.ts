import { createHash } from 'node:crypto';
import { pgp } from '../db/pg.js';
import type { AppConfig, CheckedConfig, ColumnSpec, EventConfig, Permission, TokenConfig, WireType } from './config.js';
import type { MutationHandler } from './mutations.js';

/**
 * The compiled sync config: what pull, heads, snapshots, install and push work from.
 * Built by loadModel() (src/model/load.ts) once the config has been checked against the
 * live database, so key types and expression types are known here.
 *
 * SQL fragments use fixed aliases: `r` the source row, `p` its item in fieldsync's
 * items table (`p.row_key`, `p.seq`), `im` the media collection's image row.
 */

export type KeyType = 'int' | 'text' | 'uuid';

export interface KeyColumn {
  column: string;
  type: KeyType;
  /** the PostgreSQL type to cast a key text back to */
  pgType: string;
}

export interface WireColumn {
  name: string;
  /** SQL over r (and im, p) giving the wire value */
  sql: string;
  type: WireType | 'rows';
}

export interface Membership {
  bucket: BucketDef;
  /** SQL over r giving the keys; undefined for a bucket with no key */
  expr?: string;
  /** the expression gives an array of keys */
  array: boolean;
}

export interface Collection {
  name: string;
  /** quoted, schema-qualified */
  table: string;
  tableSchema: string;
  tableName: string;
  key: KeyColumn[];
  columns: WireColumn[];
  /** the source expressions (over r) of the synced columns: what a no-op update leaves unchanged */
  sources: string[];
  softDelete?: string;
  children: { name: string; table: string; tableSchema: string; tableName: string; parent: Record<string, string> }[];
  memberships: Membership[];
  /** has the media columns (joins fieldsync's images) */
  media: boolean;
}

export interface BucketDef {
  name: string;
  keyed: boolean;
  snapshot: boolean;
  /** collections in its rows, in config order */
  collections: Collection[];
  /** changes when what the bucket holds changes: devices reset it (410 for its buckets) */
  hash: string;
}

export interface Role {
  name: string;
  claims: Record<string, 'int' | 'text'>;
  buckets: { bucket: BucketDef; query?: string }[];
  permissions: ReadonlySet<Permission>;
  /**
   * What the parameter queries read: collections, and `@dep:<schema>.<table>` for tables
   * that are not synced (the demo's salesmen); a change there may change the bucket set.
   */
  dependsOn: string[];
}

export interface App {
  name: string;
  roles: readonly string[];
  /** collection -> wire columns it receives (collections it skips are absent) */
  collections: Map<string, string[]>;
  /** in every cursor: when what the app receives changes, its cursors answer 410 */
  hash: string;
}

export interface Model {
  /** fieldsync's own schema, unquoted */
  schema: string;
  collections: Map<string, Collection>;
  buckets: Map<string, BucketDef>;
  roles: Map<string, Role>;
  apps: Map<string, App>;
  /** role -> app it gets when a request names none */
  defaultApp: Map<string, string>;
  token: Required<TokenConfig>;
  mutations: Readonly<Record<string, MutationHandler>>;
  events: Readonly<Record<string, EventConfig>>;
  media?: { collection: Collection; name: string };
  /** tables parameter queries read that no collection syncs: install watches them too */
  dependencyTables: { schema: string; name: string; quoted: string; key: string }[];
}

/** The dependency key of a table that is not synced (a pseudo-collection in items and heads). */
export function dependencyKey(schema: string, name: string): string {
  return `@dep:${schema}.${name}`;
}

/** An identifier of at most 63 bytes (PostgreSQL's limit): long names get a hash suffix. */
export function ident(...parts: string[]): string {
  const name = parts.join('_');
  return name.length <= 63 ? name : `${name.slice(0, 50)}_${createHash('sha256').update(name).digest('hex').slice(0, 12)}`;
}

/** The quoted name of an installed capture function of a collection: captureFn(m, 'k', 'orders') -> "fieldsync"."k_orders". */
export function captureFn(m: Pick<Model, 'schema'>, ...parts: string[]): string {
  return s(m, ident(...parts));
}

/** A quoted name in fieldsync's schema, e.g. s(m, 'items') -> "fieldsync"."items". */
export function s(m: Pick<Model, 'schema'>, name: string): string {
  return `${pgp.as.name(m.schema)}.${pgp.as.name(name)}`;
}

// --- keys ------------------------------------------------------------------------------

/** SQL: the row's key as text (decimal, lower-case uuid, the text; JSON array text for a composite key). */
export function keyText(c: Pick<Collection, 'key'>, alias = 'r', columns?: string[]): string {
  const cols = (columns ?? c.key.map((k) => k.column)).map((col) => `${alias}.${pgp.as.name(col)}`);
  return cols.length === 1 ? `${cols[0]}::text` : `json_build_array(${cols.join(', ')})::text`;
}

/** SQL: the row alias's key equals the key text `text` (index-friendly: the text is cast, not the column). */
export function keyMatch(c: Pick<Collection, 'key'>, alias: string, text: string, columns?: string[]): string {
  const cols = columns ?? c.key.map((k) => k.column);
  if (c.key.length === 1) return `${alias}.${pgp.as.name(cols[0]!)} = (${text})::${c.key[0]!.pgType}`;
  return c.key.map((k, i) => `${alias}.${pgp.as.name(cols[i]!)} = ((${text})::jsonb->>${i})::${k.pgType}`).join(' AND ');
}

/** SQL: the wire id from a key text (a number for an int key, else the text). */
export function wireIdFromText(c: Pick<Collection, 'key'>, text: string): string {
  return c.key.length === 1 && c.key[0]!.type === 'int' ? `(${text})::bigint` : text;
}

/** The wire id from a key text, in JavaScript. */
export function wireId(c: Pick<Collection, 'key'>, text: string): number | string {
  return c.key.length === 1 && c.key[0]!.type === 'int' ? Number(text) : text;
}

// --- buckets ---------------------------------------------------------------------------

/** Bucket names: `<definition>` for a bucket with no key, `<definition>:<key>` otherwise. */
export function bucketName(def: string, key?: string | number): string {
  return key === undefined ? def : `${def}:${key}`;
}

const BUCKET = /^([a-z][a-z0-9_]{0,31})(?::([^\u0000-\u001f]{1,200}))?$/;

/** The definition and key of a bucket name, or undefined when it is not one of the model's. */
export function parseBucket(m: Model, name: string): { def: BucketDef; key?: string } | undefined {
  const match = BUCKET.exec(name);
  if (!match) return undefined;
  const def = m.buckets.get(match[1]!);
  if (!def || def.keyed !== (match[2] !== undefined)) return undefined;
  return match[2] === undefined ? { def } : { def, key: match[2] };
}

/**
 * SQL over r: every bucket the row is in, as text[] (the capture triggers store an item
 * per bucket). Soft-deleted rows are in none.
 */
export function bucketsExpr(c: Collection): string {
  const scalars: string[] = [];
  const arrays: string[] = [];
  for (const m of c.memberships) {
    if (m.expr === undefined) scalars.push(pgp.as.text(m.bucket.name));
    // an array of keys, prefixed without a sub-select (which would keep the bucket function
    // from being inlined into the capture triggers: measured 0.05 ms per statement): joined
    // with the unit separator, which no bucket name may contain; NULL keys are skipped
    else if (m.array) {
      const keys = `array_remove((${m.expr})::text[], NULL)`;
      const prefix = pgp.as.text(`${m.bucket.name}:`);
      arrays.push(`CASE WHEN cardinality(${keys}) > 0 THEN string_to_array(${prefix} || array_to_string(${keys}, chr(31) || ${prefix}), chr(31)) ELSE '{}'::text[] END`);
    }
    else scalars.push(`${pgp.as.text(`${m.bucket.name}:`)} || (${m.expr})::text`);
  }
  const parts = [...(scalars.length ? [`array_remove(ARRAY[${scalars.join(', ')}], NULL)`] : []), ...arrays];
  const all = parts.join(' || ');
  return c.softDelete ? `CASE WHEN coalesce((${c.softDelete}), false) THEN '{}'::text[] ELSE ${all} END` : all;
}

/**
 * SQL over r: the row is in bucket `<defName>:<key>` (or `<defName>` for a bucket with no
 * key) as it is now: the one membership test, cheaper than building every bucket name of
 * the row (bucketsExpr). Soft-deleted rows are in none.
 */
export function inBucketSql(c: Collection, defName: string, key: string | undefined): string {
  const tests = c.memberships
    .filter((mm) => mm.bucket.name === defName)
    .map((mm) => {
      if (mm.expr === undefined) return 'true';
      if (mm.array) return `${pgp.as.text(key ?? '')} = ANY ((${mm.expr})::text[])`;
      return `(${mm.expr})::text = ${pgp.as.text(key ?? '')}`;
    });
  const any = `coalesce(${tests.length ? tests.join(' OR ') : 'false'}, false)`;
  return c.softDelete ? `(NOT coalesce((${c.softDelete}), false) AND ${any})` : any;
}

// --- wire values -----------------------------------------------------------------------

/** SQL: a source value as its wire type. */
export function wireSql(expr: string, type: WireType): string {
  switch (type) {
    case 'int':
    case 'bool':
    case 'json':
    case 'int[]':
    case 'text[]':
      return `(${expr})`;
    case 'text':
      return `(${expr})::text`;
    case 'money':
      return `round((${expr})::numeric, 2)::text`;
    case 'ms':
      return `(extract(epoch FROM (${expr})) * 1000)::bigint`;
    case 'date':
      return `to_char((${expr}), 'YYYY-MM-DD')`;
    case 'timestamp':
      return `to_char((${expr}), 'YYYY-MM-DD"T"HH24:MI:SS.MS')`;
    default: {
      const scale = /^numeric\((\d+)\)$/.exec(type);
      if (!scale) throw new Error(`unknown wire type ${type}`);
      return `round((${expr})::numeric, ${scale[1]})::text`;
    }
  }
}

const MEDIA_SQL = { key: 'im.key', width: 'im.width', height: 'im.height', placeholder: 'im.placeholder' } as const;

/** The raw expression a column reads (to probe its type), or undefined for media columns. */
export function columnSource(spec: ColumnSpec, name: string): { expr: string; type: WireType } | undefined {
  if (typeof spec === 'string') return { expr: `r.${pgp.as.name(name)}`, type: spec };
  if ('media' in spec) return undefined;
  if ('column' in spec) return { expr: `r.${pgp.as.name(spec.column)}`, type: spec.type };
  return { expr: spec.sql, type: spec.type };
}

/** The SQL of one configured column: its source as its wire type (media columns from im). */
export function columnSql(spec: ColumnSpec, name: string): { sql: string; type: WireType } {
  const src = columnSource(spec, name);
  if (src) return { sql: wireSql(src.expr, src.type), type: src.type };
  const media = (spec as { media: keyof typeof MEDIA_SQL }).media;
  return { sql: MEDIA_SQL[media], type: media === 'key' || media === 'placeholder' ? 'text' : 'int' };
}

/**
 * SQL: a row's wire array as JSON text, [b, id, v, ...the app's columns]. Needs r (the
 * source row, LEFT JOINed to the item p) and, for the media collection, im.
 */
export function rowJson(c: Collection, wanted: readonly string[], bucketIndex: number): string {
  const set = new Set(wanted);
  const values = c.columns.filter((col) => set.has(col.name)).map((col) => col.sql);
  return `json_build_array(${bucketIndex}, ${wireIdFromText(c, 'p.row_key')}, p.seq${values.map((v) => `, ${v}`).join('')})::text`;
}

/** SQL: the FROM part joining an item alias p to its source row r (and image im). */
export function sourceJoin(m: Model, c: Collection): string {
  const media = c.media ? ` LEFT JOIN ${s(m, 'images')} im ON im.coll = ${pgp.as.text(c.name)} AND im.row_key = p.row_key` : '';
  return `LEFT JOIN ${c.table} r ON ${keyMatch(c, 'r', 'p.row_key')}${media}`;
}

// --- apps ------------------------------------------------------------------------------

export function compileApp(name: string, a: AppConfig, collections: Map<string, Collection>): App {
  const out = new Map<string, string[]>();
  for (const [col, sel] of Object.entries(a.collections)) {
    const all = collections.get(col)!.columns.map((w) => w.name);
    out.set(col, sel === '*' ? all : all.filter((w) => sel.includes(w)));
  }
  const shape = [...collections.keys()].map((col) => [col, out.get(col) ?? null]);
  return { name, roles: a.roles, collections: out, hash: createHash('sha256').update(JSON.stringify(shape)).digest('base64url').slice(0, 8) };
}

/** The wire columns of a collection under an app: b, id, v first. */
export function wireColumns(app: App, collection: string): string[] {
  return ['b', 'id', 'v', ...(app.collections.get(collection) ?? [])];
}

export type { CheckedConfig };
