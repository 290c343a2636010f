import type { BucketKind } from './buckets.js';

/**
 * The synced collections: table, bucket membership and wire columns. This registry is
 * the single description pull, checksums and heads are generated from; the SQL
 * triggers registered in the migrations must name the same buckets (a test checks).
 *
 * Wire values: ids and quantities are numbers, money is a string with 2 decimals
 * ("12.50", never a float), timestamps are epoch milliseconds, dates "YYYY-MM-DD".
 */
export type WireType = 'int' | 'text' | 'money' | 'bool' | 'ms' | 'date' | 'json';

export interface Column {
  /** stable wire name */
  name: string;
  /** SQL expression over the row alias r */
  sql: string;
  type: WireType;
}

export interface Membership {
  kind: BucketKind;
  /** column holding the bucket key; undefined: the bucket has no key (catalog) */
  key?: string;
  /** also in the kind's `all` bucket (clients:all, orders:all) */
  all?: boolean;
}

export interface Collection {
  name: string;
  table: string;
  idType: 'bigint' | 'uuid';
  membership: Membership;
  columns: readonly Column[];
}

const ms = (col: string): Column => ({ name: col === 'updated_at' ? 'updated' : col.replace(/_at$/, ''), sql: `(extract(epoch from r.${col}) * 1000)::bigint`, type: 'ms' });
const c = (name: string, type: WireType, sql = `r.${name}`): Column => ({ name, sql: type === 'money' ? `${sql}::text` : sql, type });

export const collections = {
  warehouses: {
    name: 'warehouses',
    table: 'warehouses',
    idType: 'bigint',
    membership: { kind: 'catalog' },
    columns: [c('code', 'text'), c('name', 'text'), c('name_ar', 'text'), c('city', 'text'), c('active', 'bool', 'r.is_active'), ms('updated_at')],
  },
  categories: {
    name: 'categories',
    table: 'categories',
    idType: 'bigint',
    membership: { kind: 'catalog' },
    columns: [c('parent', 'int', 'r.parent_id'), c('name', 'text'), c('name_ar', 'text'), c('sort', 'int', 'r.sort_order'), c('active', 'bool', 'r.is_active'), ms('updated_at')],
  },
  products: {
    name: 'products',
    table: 'products',
    idType: 'bigint',
    membership: { kind: 'catalog' },
    columns: [
      c('sku', 'text'), c('barcode', 'text'), c('name', 'text'), c('name_ar', 'text'),
      c('description', 'text'), c('description_ar', 'text'), c('category', 'int', 'r.category_id'),
      c('unit', 'text'), c('pack', 'int', 'r.pack_size'), c('price', 'money', 'r.base_price'),
      c('active', 'bool', 'r.is_active'), c('image', 'text', 'r.image_key'), c('image_w', 'int', 'r.image_width'),
      c('image_h', 'int', 'r.image_height'), c('placeholder', 'text', 'r.image_placeholder'), ms('updated_at'),
    ],
  },
  pricelists: {
    name: 'pricelists',
    table: 'pricelists',
    idType: 'bigint',
    membership: { kind: 'catalog' },
    columns: [c('code', 'text'), c('name', 'text'), c('name_ar', 'text'), c('currency', 'text'), c('active', 'bool', 'r.is_active'), ms('updated_at')],
  },
  prices: {
    name: 'prices',
    table: 'prices',
    idType: 'bigint',
    membership: { kind: 'prices', key: 'pricelist_id' },
    columns: [c('pricelist', 'int', 'r.pricelist_id'), c('product', 'int', 'r.product_id'), c('price', 'money'), ms('updated_at')],
  },
  stock: {
    name: 'stock',
    table: 'stock',
    idType: 'bigint',
    membership: { kind: 'stock', key: 'warehouse_id' },
    columns: [c('product', 'int', 'r.product_id'), c('warehouse', 'int', 'r.warehouse_id'), c('qty', 'int'), c('reserved', 'int'), ms('updated_at')],
  },
  clients: {
    name: 'clients',
    table: 'clients',
    idType: 'bigint',
    membership: { kind: 'clients', key: 'salesman_id', all: true },
    columns: [
      c('code', 'text'), c('name', 'text'), c('name_ar', 'text'), c('phone', 'text'), c('email', 'text'),
      c('address', 'text'), c('city', 'text'), c('type', 'text', 'r.type::text'), c('pricelist', 'int', 'r.pricelist_id'),
      c('salesman', 'int', 'r.salesman_id'), c('credit_limit', 'money'), c('balance', 'money'),
      c('backorder', 'bool', 'r.allow_backorder'), c('active', 'bool', 'r.is_active'), ms('updated_at'),
    ],
  },
  orders: {
    name: 'orders',
    table: 'orders',
    idType: 'uuid',
    membership: { kind: 'orders', key: 'salesman_id', all: true },
    columns: [
      c('client', 'int', 'r.client_id'), c('salesman', 'int', 'r.salesman_id'), c('warehouse', 'int', 'r.warehouse_id'),
      c('status', 'text', 'r.status::text'), c('delivery', 'date', `to_char(r.requested_delivery, 'YYYY-MM-DD')`),
      c('notes', 'text'), c('total', 'money'), ms('placed_at'), ms('created_at'), ms('updated_at'),
      {
        // [line_no, product, qty, unit_price, line_total, note] per line
        name: 'lines',
        type: 'json',
        sql: `(SELECT coalesce(json_agg(json_build_array(l.line_no, l.product_id, l.qty, l.unit_price::text, l.line_total::text, l.note) ORDER BY l.line_no), '[]'::json)
                 FROM order_lines l WHERE l.order_id = r.id)`,
      },
    ],
  },
} as const satisfies Record<string, Collection>;

export type CollectionName = keyof typeof collections;

/** Orders are also in client_orders:<client> for the self-ordering app. */
export const extraMemberships: Partial<Record<CollectionName, Membership[]>> = {
  orders: [{ kind: 'client_orders', key: 'client_id' }],
};

/** Collections whose rows a bucket of this kind holds, in their fixed wire order. */
export function collectionsOfKind(kind: BucketKind): Collection[] {
  return Object.values(collections as Record<string, Collection>).filter(
    (col) => col.membership.kind === kind || (extraMemberships[col.name as CollectionName] ?? []).some((m) => m.kind === kind),
  );
}

/** The membership of a collection in buckets of `kind`. */
export function membershipFor(col: Collection, kind: BucketKind): Membership {
  if (col.membership.kind === kind) return col.membership;
  const extra = (extraMemberships[col.name as CollectionName] ?? []).find((m) => m.kind === kind);
  if (!extra) throw new Error(`${col.name} is not in ${kind} buckets`);
  return extra;
}

/** The bucket expression sync_track() must have been registered with (checked by a test). */
export function triggerBucketExpression(col: Collection): string {
  const parts: string[] = [];
  for (const m of [col.membership, ...(extraMemberships[col.name as CollectionName] ?? [])]) {
    parts.push(m.key ? `'${m.kind}:' || r.${m.key}` : `'${m.kind}'`);
  }
  if (col.membership.all) parts.push(`'${col.membership.kind}:all'`);
  return `ARRAY[${parts.join(', ')}]`;
}
