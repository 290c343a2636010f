import { createHash } from 'node:crypto';
import type { Role } from '../auth/principal.js';
import { collections, type CollectionName } from './collections.js';

/**
 * App profiles: which collections and which columns each of the eight apps syncs, so
 * each app downloads only what it shows. The bucket set still comes from the caller's
 * role; a profile only narrows it. `id`, `v` (version) and `b` (bucket) always go out.
 */
export interface Profile {
  name: string;
  roles: readonly Role[];
  /** collection -> wire columns ('*' = all) */
  collections: Partial<Record<CollectionName, readonly string[] | '*'>>;
}

const all = '*' as const;
const productLite = ['sku', 'barcode', 'name', 'name_ar', 'category', 'unit', 'pack', 'price', 'active', 'image', 'placeholder', 'updated'];

export const profiles = {
  salesman: {
    name: 'salesman',
    roles: ['salesman', 'admin', 'manager'],
    collections: { warehouses: all, categories: all, products: all, pricelists: all, prices: all, stock: all, clients: all, orders: all },
  },
  travel_sales: {
    // long trips on weak links: no long descriptions or image sizes
    name: 'travel_sales',
    roles: ['salesman', 'admin', 'manager'],
    collections: { warehouses: all, categories: all, products: productLite, pricelists: all, prices: all, stock: all, clients: all, orders: all },
  },
  partner_sales: {
    // partner salesmen are not employees: no client credit or balances
    name: 'partner_sales',
    roles: ['salesman', 'admin', 'manager'],
    collections: {
      categories: all, products: productLite, pricelists: all, prices: all, stock: all, orders: all,
      clients: ['code', 'name', 'name_ar', 'phone', 'address', 'city', 'type', 'pricelist', 'salesman', 'active', 'updated'],
    },
  },
  client_ordering: {
    name: 'client_ordering',
    roles: ['client_app', 'admin', 'manager'],
    collections: { categories: all, products: all, pricelists: all, prices: all, orders: all },
  },
  pos: {
    name: 'pos',
    roles: ['client_app', 'warehouse', 'admin', 'manager'],
    collections: { categories: all, products: productLite, pricelists: all, prices: all, stock: all },
  },
  warehouse: {
    name: 'warehouse',
    roles: ['warehouse', 'admin', 'manager'],
    collections: { warehouses: all, categories: all, products: ['sku', 'barcode', 'name', 'name_ar', 'category', 'unit', 'pack', 'active', 'image', 'placeholder', 'updated'], stock: all },
  },
  delivery: {
    name: 'delivery',
    roles: ['driver', 'admin', 'manager'],
    collections: { warehouses: all, products: ['sku', 'barcode', 'name', 'name_ar', 'unit', 'pack', 'image', 'placeholder', 'updated'] },
  },
  manager: {
    name: 'manager',
    roles: ['admin', 'manager'],
    collections: { warehouses: all, categories: all, products: all, pricelists: all, prices: all, stock: all, clients: all, orders: all },
  },
} as const satisfies Record<string, Profile>;

export type AppName = keyof typeof profiles;
export const appNames = Object.keys(profiles) as AppName[];

/** The app a role gets when the request names none. */
export const defaultApp: Record<Role, AppName> = {
  admin: 'manager',
  manager: 'manager',
  salesman: 'salesman',
  client_app: 'client_ordering',
  warehouse: 'warehouse',
  driver: 'delivery',
};

/** The wire columns a profile sends for a collection, or undefined if it skips it. */
export function profileColumns(profile: Profile, name: CollectionName): string[] | undefined {
  const sel = profile.collections[name];
  if (sel === undefined) return undefined;
  const cols = collections[name].columns.map((col) => col.name);
  return sel === '*' ? cols : cols.filter((col) => sel.includes(col));
}

/**
 * A short hash of what a profile sends. It is in every cursor: when a deploy changes a
 * profile's columns, old cursors get 410 and devices re-bootstrap with the new columns.
 */
export function profileHash(profile: Profile): string {
  const shape = Object.keys(collections).map((name) => [name, profileColumns(profile, name as CollectionName) ?? null]);
  return createHash('sha256').update(JSON.stringify(shape)).digest('base64url').slice(0, 8);
}
