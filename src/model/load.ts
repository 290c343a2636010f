import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { IBaseProtocol } from 'pg-promise';
import { pgp } from '../db/pg.js';
import { checkShape, SyncConfigError, type CheckedConfig, type WireType } from './config.js';
import {
  bucketsExpr,
  columnSource,
  columnSql,
  compileApp,
  dependencyKey,
  keyMatch,
  wireSql,
  type BucketDef,
  type Collection,
  type KeyColumn,
  type Model,
  type Role,
  type WireColumn,
} from './model.js';

type Q = IBaseProtocol<unknown>;

/**
 * Loads a sync config file: SYNC_CONFIG (a .ts or .js module default-exporting
 * defineConfig({...})), or the demo ERP's config when none is given.
 */
export async function loadConfigFile(path: string | undefined): Promise<CheckedConfig> {
  let mod: { default?: unknown };
  if (path === undefined) {
    mod = await import('../demo/config.js');
  } else {
    const url = pathToFileURL(resolve(path)).href;
    try {
      mod = (await import(url)) as { default?: unknown };
    } catch (err) {
      throw new SyncConfigError([`${path}: cannot load (${(err as Error).message})`]);
    }
  }
  if (mod.default === undefined) throw new SyncConfigError([`${path}: must default-export defineConfig({...})`]);
  return checkShape(mod.default);
}

interface ColumnInfo {
  type: string;
  category: string;
}

interface TypeInfo {
  name: string;
  category: string;
}

/** Which PostgreSQL types each wire type accepts (by type name; arrays start with _). */
const ACCEPTS: Record<string, (t: TypeInfo) => boolean> = {
  int: (t) => ['int2', 'int4', 'int8'].includes(t.name),
  text: () => true,
  bool: (t) => t.name === 'bool',
  money: (t) => ['numeric', 'int2', 'int4', 'int8', 'float4', 'float8', 'money'].includes(t.name),
  ms: (t) => ['timestamptz', 'timestamp', 'date'].includes(t.name),
  date: (t) => ['date', 'timestamp', 'timestamptz'].includes(t.name),
  timestamp: (t) => t.name === 'timestamp',
  json: (t) => t.name === 'json' || t.name === 'jsonb',
  'int[]': (t) => ['_int2', '_int4', '_int8'].includes(t.name),
  'text[]': (t) => t.category === 'A' && !['_json', '_jsonb'].includes(t.name),
};
const EXPECTED: Record<string, string> = {
  int: 'smallint, integer or bigint',
  bool: 'boolean',
  money: 'a number type',
  ms: 'timestamptz, timestamp or date',
  date: 'date or a timestamp',
  timestamp: 'timestamp without time zone',
  json: 'json or jsonb',
  'int[]': 'an integer array',
  'text[]': 'an array',
};

function accepts(wire: WireType, t: TypeInfo): boolean {
  return (ACCEPTS[wire] ?? ACCEPTS.money!)(t);
}

const KEY_TYPES: Record<string, KeyColumn['type']> = { int2: 'int', int4: 'int', int8: 'int', text: 'text', varchar: 'text', bpchar: 'text', uuid: 'uuid' };
const PG_NAMES: Record<string, string> = { int2: 'smallint', int4: 'integer', int8: 'bigint', text: 'text', varchar: 'text', bpchar: 'text', uuid: 'uuid' };

function splitTable(table: string): { schema: string; name: string; quoted: string } {
  const [schema, name] = table.includes('.') ? (table.split('.') as [string, string]) : ['public', table];
  return { schema, name, quoted: `${pgp.as.name(schema)}.${pgp.as.name(name)}` };
}

/** Reads the columns of every table the config names (one query). */
async function readCatalog(db: Q, tables: string[]): Promise<Map<string, Map<string, ColumnInfo>>> {
  const rows = await db.any<{ t: string; column_name: string; typname: string; typcategory: string }>(
    `SELECT c.table_schema || '.' || c.table_name AS t, c.column_name, ty.typname, ty.typcategory
       FROM information_schema.columns c
       JOIN pg_catalog.pg_namespace n ON n.nspname = c.table_schema
       JOIN pg_catalog.pg_class cl ON cl.relnamespace = n.oid AND cl.relname = c.table_name
       JOIN pg_catalog.pg_attribute a ON a.attrelid = cl.oid AND a.attname = c.column_name
       JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
      WHERE (c.table_schema || '.' || c.table_name) IN ($1:csv)`,
    [tables.length ? tables : ['-']],
  );
  const out = new Map<string, Map<string, ColumnInfo>>();
  for (const r of rows) {
    let t = out.get(r.t);
    if (!t) out.set(r.t, (t = new Map()));
    t.set(r.column_name, { type: r.typname, category: r.typcategory });
  }
  return out;
}

/**
 * Checks the config against the live database and compiles it: every table, column and
 * key exists; every SQL expression parses and has a type its wire type accepts; every
 * parameter query runs. Throws SyncConfigError with one line per problem, each naming
 * its path in the config. Nothing starts half-configured.
 */
export async function loadModel(db: Q, config: CheckedConfig): Promise<Model> {
  const problems: string[] = [];
  const tables = new Set<string>();
  for (const c of Object.values(config.collections)) {
    tables.add(splitTable(c.table).schema + '.' + splitTable(c.table).name);
    for (const ch of Object.values(c.children ?? {})) tables.add(splitTable(ch.table).schema + '.' + splitTable(ch.table).name);
  }
  const catalog = await readCatalog(db, [...tables]);
  const types = new Map<number, TypeInfo>(
    (await db.any<{ oid: number; typname: string; typcategory: string }>('SELECT oid::int AS oid, typname, typcategory FROM pg_catalog.pg_type')).map((t) => [t.oid, { name: t.typname, category: t.typcategory }]),
  );

  /** The type of an SQL expression over `from` (alias r), or a problem. */
  const probe = async (path: string, expr: string, from: string): Promise<TypeInfo | undefined> => {
    try {
      const res = await db.result(`SELECT (${expr}) AS x FROM ${from} r LIMIT 0`);
      return types.get(res.fields[0]!.dataTypeID) ?? { name: 'unknown', category: 'X' };
    } catch (err) {
      problems.push(`${path}: ${(err as Error).message}`);
      return undefined;
    }
  };

  const collections = new Map<string, Collection>();
  for (const [name, c] of Object.entries(config.collections)) {
    const path = `collections.${name}`;
    const t = splitTable(c.table);
    const cols = catalog.get(`${t.schema}.${t.name}`);
    if (!cols) {
      problems.push(`${path}.table: no table ${t.schema}.${t.name}`);
      continue;
    }
    const key: KeyColumn[] = [];
    for (const k of typeof c.key === 'string' ? [c.key] : c.key) {
      const info = cols.get(k);
      if (!info) problems.push(`${path}.key: no column ${k} in ${t.schema}.${t.name}`);
      else if (!KEY_TYPES[info.type]) problems.push(`${path}.key: ${k} is ${info.type}; keys must be integer, text or uuid`);
      else key.push({ column: k, type: KEY_TYPES[info.type]!, pgType: PG_NAMES[info.type]! });
    }
    const columns: WireColumn[] = [];
    const sources: string[] = [];
    for (const [wire, spec] of Object.entries(c.columns)) {
      const src = columnSource(spec, wire);
      if (src) {
        sources.push(src.expr);
        const plain = typeof spec === 'string' ? wire : 'column' in spec ? spec.column : undefined;
        if (plain !== undefined && !cols.has(plain)) {
          problems.push(`${path}.columns.${wire}: no column ${plain} in ${t.schema}.${t.name}`);
          continue;
        }
        const ty = await probe(`${path}.columns.${wire}`, src.expr, t.quoted);
        if (ty && !accepts(src.type, ty)) problems.push(`${path}.columns.${wire}: ${ty.name} cannot be sent as ${src.type} (expected ${EXPECTED[src.type] ?? 'a number type'})`);
      }
      columns.push({ name: wire, ...columnSql(spec, wire) });
    }
    const children: Collection['children'] = [];
    for (const [child, ch] of Object.entries(c.children ?? {})) {
      const cpath = `${path}.children.${child}`;
      const ct = splitTable(ch.table);
      const ccols = catalog.get(`${ct.schema}.${ct.name}`);
      if (!ccols) {
        problems.push(`${cpath}.table: no table ${ct.schema}.${ct.name}`);
        continue;
      }
      for (const fk of Object.keys(ch.parent)) if (!ccols.has(fk)) problems.push(`${cpath}.parent: no column ${fk} in ${ct.schema}.${ct.name}`);
      const values: string[] = [];
      for (const [wire, spec] of Object.entries(ch.columns)) {
        const src = columnSource(spec, wire);
        if (!src) {
          problems.push(`${cpath}.columns.${wire}: media columns belong to the collection itself`);
          continue;
        }
        const ty = await probe(`${cpath}.columns.${wire}`, src.expr, ct.quoted);
        if (ty && !accepts(src.type, ty)) problems.push(`${cpath}.columns.${wire}: ${ty.name} cannot be sent as ${src.type} (expected ${EXPECTED[src.type] ?? 'a number type'})`);
        values.push(wireSql(src.expr, src.type));
      }
      await probe(`${cpath}.orderBy`, ch.orderBy, ct.quoted);
      const fks = Object.keys(ch.parent);
      // the parent key columns in key order, mapped to the child's columns
      const byParent = key.map((k) => fks.find((fk) => ch.parent[fk] === k.column) ?? k.column);
      columns.push({
        name: child,
        type: 'rows',
        sql: `(SELECT coalesce(json_agg(json_build_array(${values.join(', ')}) ORDER BY ${ch.orderBy}), '[]'::json) FROM ${ct.quoted} r WHERE ${keyMatch({ key }, 'r', 'p.row_key', byParent)})`,
      });
      children.push({ name: child, table: ct.quoted, tableSchema: ct.schema, tableName: ct.name, parent: ch.parent });
    }
    if (c.softDelete) {
      const ty = await probe(`${path}.softDelete`, c.softDelete, t.quoted);
      if (ty && ty.name !== 'bool') problems.push(`${path}.softDelete: must be a condition (boolean), not ${ty.name}`);
    }
    collections.set(name, {
      name,
      table: t.quoted,
      tableSchema: t.schema,
      tableName: t.name,
      key,
      columns,
      sources,
      ...(c.softDelete !== undefined && { softDelete: c.softDelete }),
      children,
      memberships: [],
      media: Object.values(c.columns).some((spec) => typeof spec === 'object' && 'media' in spec),
    });
  }

  const buckets = new Map<string, BucketDef>();
  for (const [name, b] of Object.entries(config.buckets)) {
    const keyed = Object.values(b.rows).some((v) => v !== true);
    const def: BucketDef = { name, keyed, snapshot: b.snapshot ?? false, collections: [], hash: '' };
    const shape: unknown[] = [];
    for (const [colName, expr] of Object.entries(b.rows)) {
      const col = collections.get(colName);
      if (!col) continue;
      let array = false;
      if (expr !== true) {
        const ty = await probe(`buckets.${name}.rows.${colName}`, expr, col.table);
        if (ty && (ty.name === 'json' || ty.name === 'jsonb' || ty.category === 'C')) problems.push(`buckets.${name}.rows.${colName}: gives ${ty.name}; a bucket key is a scalar or an array`);
        array = ty?.category === 'A';
      }
      col.memberships.push({ bucket: def, ...(expr !== true && { expr }), array });
      def.collections.push(col);
      shape.push([colName, col.table, col.key, expr, config.collections[colName]!.softDelete ?? null]);
    }
    def.hash = createHash('sha256').update(JSON.stringify(shape)).digest('base64url').slice(0, 16);
    buckets.set(name, def);
  }
  for (const col of collections.values()) {
    if (col.memberships.length > 0) await probe(`collections.${col.name} (its buckets)`, bucketsExpr(col), col.table);
  }

  const roles = new Map<string, Role>();
  const dependencyTables = new Map<string, Model['dependencyTables'][number]>();
  for (const [name, r] of Object.entries(config.roles)) {
    const claims = r.claims ?? {};
    const nulls = { userId: 'NULL::text', ...Object.fromEntries(Object.entries(claims).map(([k, t]) => [k, t === 'int' ? 'NULL::bigint' : 'NULL::text'])) };
    const dependsOn = new Set<string>();
    const list: Role['buckets'] = [];
    for (const [bucket, spec] of Object.entries(r.buckets)) {
      const def = buckets.get(bucket)!;
      if (spec === true) {
        list.push({ bucket: def });
        continue;
      }
      const path = `roles.${name}.buckets.${bucket}`;
      let sql: string;
      try {
        sql = spec.replace(/\$\{(\w+)\}/g, (_, k: string) => (nulls as Record<string, string>)[k] ?? 'NULL');
        const res = await db.result(`SELECT * FROM (${sql}) q LIMIT 0`);
        if (res.fields.length === 0) problems.push(`${path}: the query gives no column (the first column is the bucket key)`);
        for (const rel of await readsTables(db, sql)) {
          let synced = false;
          for (const col of collections.values()) {
            const isChild = col.children.some((ch) => ch.tableSchema === rel.schema && ch.tableName === rel.name);
            if ((col.tableSchema === rel.schema && col.tableName === rel.name) || isChild) {
              dependsOn.add(col.name);
              synced = true;
            }
          }
          if (!synced) {
            const key = dependencyKey(rel.schema, rel.name);
            dependsOn.add(key);
            dependencyTables.set(key, { schema: rel.schema, name: rel.name, quoted: `${pgp.as.name(rel.schema)}.${pgp.as.name(rel.name)}`, key });
          }
        }
      } catch (err) {
        problems.push(`${path}: ${(err as Error).message}`);
      }
      list.push({ bucket: def, query: spec });
    }
    roles.set(name, { name, claims, buckets: list, permissions: new Set(r.permissions ?? []), dependsOn: [...dependsOn] });
  }

  for (const [event, e] of Object.entries(config.events ?? {})) {
    const col = collections.get(e.collection);
    if (!col) continue;
    for (const [field, expr] of Object.entries(e.fields)) await probe(`events.${event}.fields.${field}`, expr, col.table);
  }
  const mediaCol = config.media ? collections.get(config.media.collection) : undefined;
  if (config.media && mediaCol) {
    const ty = await probe('media.name', config.media.name, mediaCol.table);
    if (ty && ty.category !== 'S') problems.push(`media.name: must give text, not ${ty.name}`);
  }
  if (problems.length > 0) throw new SyncConfigError(problems);

  const apps = new Map(Object.entries(config.apps).map(([name, a]) => [name, compileApp(name, a, collections)]));
  const defaultApp = new Map<string, string>();
  for (const [name, a] of Object.entries(config.apps)) for (const role of a.defaultFor ?? []) defaultApp.set(role, name);
  return {
    schema: config.schema,
    collections,
    buckets,
    roles,
    apps,
    defaultApp,
    token: { userClaim: 'sub', roleClaim: 'role', roleMap: {}, claims: {}, ...config.token },
    mutations: config.mutations ?? {},
    events: config.events ?? {},
    ...(config.media && mediaCol && { media: { collection: mediaCol, name: config.media.name } }),
    dependencyTables: [...dependencyTables.values()].sort((a, b) => (a.key < b.key ? -1 : 1)),
  };
}

/**
 * The tables a query reads, from PostgreSQL's own dependency records: the query becomes a
 * temporary view inside a rolled-back transaction (a plan would not do: with the claims
 * bound to NULL the planner drops scans it proves empty).
 */
async function readsTables(db: Q, sql: string): Promise<{ schema: string; name: string }[]> {
  const probe = db as Q & { tx?: unknown };
  const run = async (t: Q) =>
    t.any<{ schema: string; name: string }>(
      `SELECT DISTINCT n.nspname AS schema, c.relname AS name
         FROM pg_depend d JOIN pg_rewrite rw ON rw.oid = d.objid
         JOIN pg_class c ON c.oid = d.refobjid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
          AND rw.ev_class = 'fieldsync_probe'::regclass AND c.oid <> rw.ev_class AND c.relkind IN ('r', 'p')`,
    );
  const body = async (t: Q) => {
    await t.none(`CREATE TEMP VIEW fieldsync_probe AS SELECT * FROM (${sql}) q`);
    try {
      return await run(t);
    } finally {
      await t.none('DROP VIEW IF EXISTS fieldsync_probe');
    }
  };
  // inside a transaction already (install, the drift check's task): a savepoint keeps it clean
  return typeof probe.tx === 'function' ? (probe as unknown as { tx: (cb: (t: Q) => Promise<unknown>) => Promise<{ schema: string; name: string }[]> }).tx(body) : body(db);
}
