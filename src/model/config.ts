import { z } from 'zod';
import { reservedEventNames } from '../protocol/events.js';
import type { MutationHandler } from './mutations.js';

/**
 * The sync config: what fieldsync syncs out of a database it did not create. A company
 * writes one `fieldsync.config.ts` that default-exports `defineConfig({...})`; the demo
 * ERP's is src/demo/config.ts. The shape is checked here (names, references between
 * sections); `npm run sync:check` and every start check it against the live database
 * (loadModel in src/model/load.ts). Every SQL fragment is an expression over the row alias `r`.
 *
 * README "Adopting your ERP database" is the reference for every field.
 */

/** Wire types: how a value travels in JSON. */
export const wireTypes = ['int', 'text', 'bool', 'money', 'ms', 'date', 'timestamp', 'json', 'int[]', 'text[]'] as const;
/** `numeric(N)`: a decimal string with exactly N decimals ("12.500" for N = 3). */
export type WireType = (typeof wireTypes)[number] | `numeric(${number})`;

/** The columns of a collection (or of nested child rows), by wire name, in wire order. */
export type ColumnSpec =
  /** the source column of the same name */
  | WireType
  /** another source column */
  | { column: string; type: WireType }
  /** a computed value: an SQL expression over r */
  | { sql: string; type: WireType }
  /** the collection's current image (the media collection only): fieldsync keeps images itself */
  | { media: 'key' | 'width' | 'height' | 'placeholder' };

export interface ChildConfig {
  /** the child table, e.g. 'order_lines' or 'erp.order_items' */
  table: string;
  /** child column -> parent key column: how a child row finds its parent */
  parent: Record<string, string>;
  /** SQL over the child alias r: the order of the nested rows */
  orderBy: string;
  /** each nested row is an array of these, in this order */
  columns: Record<string, ColumnSpec>;
}

export interface CollectionConfig {
  /** source table, optionally schema-qualified ('public' if not) */
  table: string;
  /** primary key column(s): int, text or uuid */
  key: string | readonly string[];
  columns: Record<string, ColumnSpec>;
  /** SQL condition over r: true means deleted (the row leaves every bucket, its deletes go out) */
  softDelete?: string;
  /** nested child rows, sent as one JSON column of the parent; a change to a child re-sends the parent */
  children?: Record<string, ChildConfig>;
}

export interface BucketConfig {
  /**
   * Which rows of which collections the bucket holds. `true`: every row (a bucket with no
   * key, such as `catalog`); an SQL expression over r: the row's key(s) in this bucket
   * definition (a scalar, or an array for a row in several buckets; NULL for none), so
   * the row is in bucket `<name>:<key>`.
   */
  rows: Record<string, true | string>;
  /** devices starting from zero download pre-built pages (worth it for buckets many users share) */
  snapshot?: boolean;
}

export const permissions = ['users:read', 'users:write', 'media:write'] as const;
export type Permission = (typeof permissions)[number];

export interface RoleConfig {
  /** claims the role needs, and their type; from the token or the standalone user's record */
  claims?: Record<string, 'int' | 'text'>;
  /**
   * The role's buckets: bucket name -> `true` (a bucket with no key) or a parameter query:
   * SQL whose first column gives the keys, with `${claim}` and `${userId}` bound from the
   * caller (pg-promise named parameters, formatted safely). No rows: no bucket.
   */
  buckets: Record<string, true | string>;
  /** what the role may do beyond sync (admin endpoints) */
  permissions?: readonly Permission[];
}

export interface TokenConfig {
  /** claim naming the user (default 'sub') */
  userClaim?: string;
  /** claim naming the role (default 'role') */
  roleClaim?: string;
  /** the ERP's role names -> this config's roles (default: the same names) */
  roleMap?: Record<string, string>;
  /** this config's claim names -> the token's (default: the same names) */
  claims?: Record<string, string>;
}

export interface AppConfig {
  /** roles that may use the app */
  roles: readonly string[];
  /** the app these roles get when a request names none */
  defaultFor?: readonly string[];
  /** collection -> wire columns ('*' = all) */
  collections: Record<string, '*' | readonly string[]>;
}

export interface EventConfig {
  collection: string;
  /** payload field -> SQL over r */
  fields: Record<string, string>;
  /**
   * 'batch': changes are coalesced per bucket room over the poke window into
   * `{items: [...]}`, and may be dropped under load (stock levels); 'row': one event per
   * changed row to every room of the row, each once (order status).
   */
  mode: 'batch' | 'row';
}

export interface MediaConfig {
  /** the collection images belong to */
  collection: string;
  /** SQL over r: the name `media:import` matches files against (e.g. 'r.sku') */
  name: string;
}

export interface SyncConfig {
  /** fieldsync's own PostgreSQL schema (default 'fieldsync') */
  schema?: string;
  collections: Record<string, CollectionConfig>;
  buckets: Record<string, BucketConfig>;
  roles: Record<string, RoleConfig>;
  token?: TokenConfig;
  apps: Record<string, AppConfig>;
  mutations?: Record<string, MutationHandler>;
  events?: Record<string, EventConfig>;
  media?: MediaConfig;
}

/** Identity: gives a config file its types. */
export function defineConfig(config: SyncConfig): SyncConfig {
  return config;
}

// ---------------------------------------------------------------------------------------
// The shape check: the same rules as the types above, for configs written in JavaScript
// or assembled at run time, plus the references between sections.

const ident = z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'a lower-case SQL identifier');
const tableName = z.string().regex(/^(?:[a-z_][a-z0-9_]{0,62}\.)?[a-z_][a-z0-9_]{0,62}$/, 'a table name, optionally schema-qualified (lower case)');
const claimName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'a claim name (letters, digits, _)');
const wireName = z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'a lower-case wire name');
const bucketName = z.string().regex(/^[a-z][a-z0-9_]{0,31}$/, 'a lower-case bucket name without ":"');
const sql = z.string().trim().min(1).max(4000);
const wireType = z.union([
  z.enum(wireTypes),
  z.custom<`numeric(${number})`>((v) => typeof v === 'string' && /^numeric\((?:[0-9]|1[0-9]|20)\)$/.test(v), `a wire type: ${wireTypes.join(', ')} or numeric(N) with N from 0 to 20`),
]);
const columnSpec = z.union([
  wireType,
  z.strictObject({ column: ident, type: wireType }),
  z.strictObject({ sql, type: wireType }),
  z.strictObject({ media: z.enum(['key', 'width', 'height', 'placeholder']) }),
]);
const RESERVED = new Set(['b', 'id', 'v']);
const columns = z.record(wireName, columnSpec).superRefine((cols, ctx) => {
  if (Object.keys(cols).length === 0) ctx.addIssue({ code: 'custom', message: 'at least one column' });
  for (const name of Object.keys(cols)) if (RESERVED.has(name)) ctx.addIssue({ code: 'custom', path: [name], message: `"${name}" is reserved (b, id and v always go out)` });
});

const shape = z.strictObject({
  schema: ident.default('fieldsync'),
  collections: z.record(
    wireName,
    z.strictObject({
      table: tableName,
      key: z.union([ident, z.array(ident).min(1).max(4)]),
      columns,
      softDelete: sql.optional(),
      children: z.record(wireName, z.strictObject({ table: tableName, parent: z.record(ident, ident), orderBy: sql, columns })).optional(),
    }),
  ),
  buckets: z.record(bucketName, z.strictObject({ rows: z.record(wireName, z.union([z.literal(true), sql])), snapshot: z.boolean().optional() })),
  roles: z.record(
    ident,
    z.strictObject({
      claims: z.record(claimName, z.enum(['int', 'text'])).optional(),
      buckets: z.record(bucketName, z.union([z.literal(true), sql])),
      permissions: z.array(z.enum(permissions)).optional(),
    }),
  ),
  token: z
    .strictObject({
      userClaim: z.string().min(1).optional(),
      roleClaim: z.string().min(1).optional(),
      roleMap: z.record(z.string().min(1), ident).optional(),
      claims: z.record(claimName, z.string().min(1)).optional(),
    })
    .optional(),
  apps: z.record(
    ident,
    z.strictObject({
      roles: z.array(ident).min(1),
      defaultFor: z.array(ident).optional(),
      collections: z.record(wireName, z.union([z.literal('*'), z.array(wireName).min(1)])),
    }),
  ),
  mutations: z.record(z.string().regex(/^[a-z][a-z0-9_.]{0,63}$/, 'a mutation type such as "order.create"'), z.custom<MutationHandler>((h) => typeof h === 'object' && h !== null && typeof (h as MutationHandler).decide === 'function', 'a mutation handler {roles, payload, reads, decide}')).optional(),
  events: z.record(z.string().regex(/^[a-z][a-z0-9_:.-]{0,63}$/), z.strictObject({ collection: wireName, fields: z.record(z.string().min(1), sql), mode: z.enum(['batch', 'row']) })).optional(),
  media: z.strictObject({ collection: wireName, name: sql }).optional(),
});

export type CheckedConfig = z.output<typeof shape>;

/** A config that is wrong: every problem, each naming its path in the config. */
export class SyncConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid sync config:\n  ${problems.join('\n  ')}`);
    this.name = 'SyncConfigError';
  }
}

const at = (path: readonly PropertyKey[]) => path.map(String).join('.');

/** Checks the shape and the cross-references; throws SyncConfigError naming each problem. */
export function checkShape(config: unknown): CheckedConfig {
  const parsed = shape.safeParse(config);
  if (!parsed.success) throw new SyncConfigError(parsed.error.issues.map((i) => `${at(i.path) || '(config)'}: ${i.message}`));
  const c = parsed.data;
  const problems: string[] = [];
  const collectionNames = new Set(Object.keys(c.collections));
  for (const [name, col] of Object.entries(c.collections)) {
    const media = Object.entries(col.columns).filter(([, s]) => typeof s === 'object' && 'media' in s);
    if (media.length > 0 && c.media?.collection !== name) problems.push(`collections.${name}.columns.${media[0]![0]}: media columns need media.collection = "${name}"`);
    for (const [child, spec] of Object.entries(col.children ?? {})) {
      if (Object.hasOwn(col.columns, child)) problems.push(`collections.${name}.children.${child}: a column of that name exists`);
      const keys = typeof col.key === 'string' ? [col.key] : col.key;
      for (const parentCol of Object.values(spec.parent)) {
        if (!keys.includes(parentCol)) problems.push(`collections.${name}.children.${child}.parent: ${parentCol} is not a key column of ${name}`);
      }
      if (Object.keys(spec.parent).length !== keys.length) problems.push(`collections.${name}.children.${child}.parent: must map every key column (${keys.join(', ')})`);
    }
  }
  const inBuckets = new Set<string>();
  for (const [name, b] of Object.entries(c.buckets)) {
    for (const col of Object.keys(b.rows)) {
      if (!collectionNames.has(col)) problems.push(`buckets.${name}.rows.${col}: no collection "${col}"`);
      inBuckets.add(col);
    }
  }
  for (const name of collectionNames) if (!inBuckets.has(name)) problems.push(`collections.${name}: in no bucket (add it to a bucket's rows)`);
  for (const [role, r] of Object.entries(c.roles)) {
    for (const [bucket, spec] of Object.entries(r.buckets)) {
      const def = c.buckets[bucket];
      if (!def) {
        problems.push(`roles.${role}.buckets.${bucket}: no bucket "${bucket}"`);
        continue;
      }
      const keyless = Object.values(def.rows).every((v) => v === true);
      if (keyless && spec !== true) problems.push(`roles.${role}.buckets.${bucket}: the bucket has no key: write true`);
      if (!keyless && spec === true) problems.push(`roles.${role}.buckets.${bucket}: the bucket has keys: give a parameter query`);
      if (typeof spec === 'string') {
        for (const m of spec.matchAll(/\$\{(\w+)\}/g)) {
          if (m[1] !== 'userId' && !Object.hasOwn(r.claims ?? {}, m[1]!)) problems.push(`roles.${role}.buckets.${bucket}: \${${m[1]}} is not a claim of the role`);
        }
      }
    }
  }
  for (const [bucket, def] of Object.entries(c.buckets)) {
    const mixed = Object.values(def.rows).some((v) => v === true) && Object.values(def.rows).some((v) => v !== true);
    if (mixed) problems.push(`buckets.${bucket}.rows: either every collection is true (no key) or every one has a key expression`);
  }
  for (const [target] of Object.entries(c.token?.roleMap ?? {})) {
    const role = c.token!.roleMap![target]!;
    if (!Object.hasOwn(c.roles, role)) problems.push(`token.roleMap.${target}: no role "${role}"`);
  }
  // fieldsync's own tokens write a role under a name the map sends back to it
  const roleMap = c.token?.roleMap ?? {};
  for (const role of Object.keys(c.roles)) {
    const redirected = Object.hasOwn(roleMap, role) && roleMap[role] !== role;
    if (redirected && !Object.values(roleMap).includes(role)) problems.push(`token.roleMap: role "${role}" cannot be written in a token (its own name maps to "${roleMap[role]}" and no name maps to it)`);
  }
  for (const claim of Object.keys(c.token?.claims ?? {})) {
    if (!Object.values(c.roles).some((r) => Object.hasOwn(r.claims ?? {}, claim))) problems.push(`token.claims.${claim}: no role has the claim "${claim}"`);
  }
  const defaults = new Map<string, string>();
  for (const [app, a] of Object.entries(c.apps)) {
    for (const role of a.roles) if (!Object.hasOwn(c.roles, role)) problems.push(`apps.${app}.roles: no role "${role}"`);
    for (const role of a.defaultFor ?? []) {
      if (!a.roles.includes(role)) problems.push(`apps.${app}.defaultFor: ${role} is not in the app's roles`);
      if (defaults.has(role)) problems.push(`apps.${app}.defaultFor: ${role} already defaults to ${defaults.get(role)}`);
      defaults.set(role, app);
    }
    for (const [col, sel] of Object.entries(a.collections)) {
      const def = c.collections[col];
      if (!def) {
        problems.push(`apps.${app}.collections.${col}: no collection "${col}"`);
        continue;
      }
      const known = [...Object.keys(def.columns), ...Object.keys(def.children ?? {})];
      if (sel !== '*') for (const w of sel) if (!known.includes(w)) problems.push(`apps.${app}.collections.${col}: no column "${w}" in ${col}`);
    }
  }
  for (const role of Object.keys(c.roles)) if (!defaults.has(role)) problems.push(`roles.${role}: no app has it in defaultFor`);
  for (const [type, h] of Object.entries(c.mutations ?? {})) {
    for (const role of h.roles) if (!Object.hasOwn(c.roles, role)) problems.push(`mutations.${type}.roles: no role "${role}"`);
  }
  for (const [event, e] of Object.entries(c.events ?? {})) {
    if (reservedEventNames.includes(event)) problems.push(`events.${event}: the name is taken by the push channel; choose another`);
    if (!collectionNames.has(e.collection)) problems.push(`events.${event}.collection: no collection "${e.collection}"`);
  }
  if (c.media && !collectionNames.has(c.media.collection)) problems.push(`media.collection: no collection "${c.media.collection}"`);
  const mediaKey = c.media && c.collections[c.media.collection]?.key;
  if (Array.isArray(mediaKey) && mediaKey.length > 1) problems.push(`media.collection: ${c.media!.collection} has a composite key; images need a collection with a single-column key`);
  if (problems.length > 0) throw new SyncConfigError(problems);
  return c;
}
