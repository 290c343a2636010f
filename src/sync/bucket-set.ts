import type { Principal } from '../auth/principal.js';
import type { Db } from '../db/pg.js';
import { bucket } from './buckets.js';
import type { Heads } from './heads.js';

/**
 * A user's bucket set, computed on the server from who they are (token claims) and
 * the database, never from what the client asks for (DESIGN §3, §4.5).
 *
 *   salesman     catalog, prices of the pricelists his active clients use, stock of his
 *                warehouse (all warehouses if he has none), his clients, his orders
 *   admin/manager catalog, every pricelist, every warehouse, clients:all, orders:all
 *   client_app   catalog, its own pricelist, its own orders
 *   warehouse    catalog, stock of every warehouse
 *   driver       catalog (deliveries are not modelled yet)
 */
export async function computeBucketSet(db: Db, p: Principal): Promise<string[]> {
  switch (p.role) {
    case 'salesman': {
      const r = await db.one<{ pricelists: number[]; warehouses: number[] }>(
        `SELECT
           ARRAY(SELECT DISTINCT c.pricelist_id FROM clients c
                  WHERE c.salesman_id = $1 AND c.is_active AND c.pricelist_id IS NOT NULL ORDER BY 1) AS pricelists,
           ARRAY(SELECT w.id FROM warehouses w
                  WHERE w.id = (SELECT s.warehouse_id FROM salesmen s WHERE s.id = $1)
                     OR NOT EXISTS (SELECT 1 FROM salesmen s WHERE s.id = $1 AND s.warehouse_id IS NOT NULL)
                  ORDER BY 1) AS warehouses`,
        [p.salesmanId],
      );
      return [
        bucket.catalog(),
        ...r.pricelists.map(bucket.prices),
        ...r.warehouses.map(bucket.stock),
        bucket.clients(p.salesmanId!),
        bucket.orders(p.salesmanId!),
      ];
    }
    case 'admin':
    case 'manager': {
      const r = await db.one<{ pricelists: number[]; warehouses: number[] }>(
        `SELECT ARRAY(SELECT id FROM pricelists ORDER BY id) AS pricelists,
                ARRAY(SELECT id FROM warehouses ORDER BY id) AS warehouses`,
      );
      return [
        bucket.catalog(),
        ...r.pricelists.map(bucket.prices),
        ...r.warehouses.map(bucket.stock),
        bucket.clients('all'),
        bucket.orders('all'),
      ];
    }
    case 'client_app': {
      const r = await db.oneOrNone<{ pricelist_id: number | null }>('SELECT pricelist_id FROM clients WHERE id = $1', [p.clientId]);
      return [bucket.catalog(), ...(r?.pricelist_id ? [bucket.prices(r.pricelist_id)] : []), bucket.clientOrders(p.clientId!)];
    }
    case 'warehouse': {
      const ids = await db.map('SELECT id FROM warehouses ORDER BY id', [], (r: { id: number }) => r.id);
      return [bucket.catalog(), ...ids.map(bucket.stock)];
    }
    case 'driver':
      return [bucket.catalog()];
  }
}

/** The buckets whose changes can change a role's set. */
function dependencies(p: Principal): string[] {
  switch (p.role) {
    case 'salesman':
      return [bucket.clients(p.salesmanId!), bucket.catalog()];
    case 'client_app':
      return [bucket.clients('all')];
    default:
      return [bucket.catalog()];
  }
}

interface Entry {
  set: string[];
  deps: Map<string, bigint>;
  at: number;
}

/**
 * Bucket sets cached per user, so a no-change pull needs no query. An entry is reused
 * while none of the buckets it depends on has changed (a salesman's clients, the
 * catalog) and it is younger than `maxAgeMs`, which bounds how long a change the heads
 * cannot see (a salesman moved to another warehouse) takes to apply.
 */
export class BucketSets {
  private readonly cache = new Map<string, Entry>();
  /** bumped when a set is (re)computed */
  version = 0;

  constructor(
    private readonly db: Db,
    private readonly heads: Heads,
    private readonly maxAgeMs = 60_000,
    private readonly maxEntries = 50_000,
  ) {}

  private key(p: Principal): string {
    return `${p.userId}:${p.role}:${p.salesmanId ?? ''}:${p.clientId ?? ''}`;
  }

  /** The cached set, if still valid; undefined otherwise (no query). */
  peek(p: Principal): string[] | undefined {
    const e = this.cache.get(this.key(p));
    if (!e || Date.now() - e.at > this.maxAgeMs) return undefined;
    for (const [b, head] of e.deps) if (this.heads.head(b) !== head) return undefined;
    return e.set;
  }

  async get(p: Principal): Promise<string[]> {
    const cached = this.peek(p);
    if (cached) return cached;
    // read the dependencies' heads before the query: a change racing it invalidates the entry
    const deps = new Map(dependencies(p).map((b) => [b, this.heads.head(b)]));
    const set = await computeBucketSet(this.db, p);
    if (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(this.key(p), { set, deps, at: Date.now() });
    this.version++;
    return set;
  }
}
