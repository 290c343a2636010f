/**
 * Bucket names: the one concept shared by pull, snapshots and push-channel rooms
 * (DESIGN §3). The SQL side computes the same names in the sync_track() registrations
 * of sql/migrations/002.do.erp-schema.sql; test/integration/registry.test.ts keeps the
 * two in step with src/sync/collections.ts.
 *
 *   catalog                 warehouses, categories, products, pricelists (everyone)
 *   prices:<pricelist>      prices of one pricelist
 *   stock:<warehouse>       stock of one warehouse
 *   clients:<salesman>      one salesman's clients
 *   orders:<salesman>       one salesman's orders (with their lines)
 *   client_orders:<client>  one client's orders, for the self-ordering app
 *   clients:all, orders:all every client / order (admins, managers)
 */
export const bucketKinds = ['catalog', 'prices', 'stock', 'clients', 'orders', 'client_orders'] as const;
export type BucketKind = (typeof bucketKinds)[number];

export const bucket = {
  catalog: () => 'catalog',
  prices: (pricelistId: number) => `prices:${pricelistId}`,
  stock: (warehouseId: number) => `stock:${warehouseId}`,
  clients: (salesmanId: number | 'all') => `clients:${salesmanId}`,
  orders: (salesmanId: number | 'all') => `orders:${salesmanId}`,
  clientOrders: (clientId: number) => `client_orders:${clientId}`,
} as const;

const BUCKET = /^(?:catalog|(prices|stock|clients|orders|client_orders):(all|[1-9]\d{0,15}))$/;

export interface ParsedBucket {
  kind: BucketKind;
  /** the key (pricelist, warehouse, salesman or client id); 'all' for admin buckets; undefined for catalog */
  key?: number | 'all';
}

/** Parses a bucket name; undefined for anything that is not one. */
export function parseBucket(name: string): ParsedBucket | undefined {
  const m = BUCKET.exec(name);
  if (!m) return undefined;
  if (m[1] === undefined) return { kind: 'catalog' };
  const kind = m[1] as BucketKind;
  if (m[2] === 'all') return kind === 'clients' || kind === 'orders' ? { kind, key: 'all' } : undefined;
  return { kind, key: Number(m[2]) };
}
