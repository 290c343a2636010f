// Demo rows exactly as they are inserted: property names are column names of the demo ERP
// (sql/demo/001.do.erp-schema.sql) and, for users, of fieldsync's own users table
// (sql/migrations/001.do.fieldsync.sql). Money is a numeric string with 2 decimals;
// timestamps are ISO strings. `updated_at` is left to the column default.

export interface WarehouseRow {
  id: number;
  code: string;
  name: string;
  name_ar: string;
  city: string;
  is_active: boolean;
}

export interface CategoryRow {
  id: number;
  parent_id: number | null;
  name: string;
  name_ar: string;
  sort_order: number;
  is_active: boolean;
}

export interface ProductRow {
  id: number;
  sku: string;
  barcode: string;
  name: string;
  name_ar: string;
  description: string;
  description_ar: string;
  category_id: number;
  unit: string;
  pack_size: number;
  base_price: string;
  is_active: boolean;
}

export interface PricelistRow {
  id: number;
  code: string;
  name: string;
  name_ar: string;
  currency: string;
  is_active: boolean;
}

export interface PriceRow {
  id: number;
  pricelist_id: number;
  product_id: number;
  price: string;
}

export interface StockRow {
  id: number;
  product_id: number;
  warehouse_id: number;
  qty: number;
  reserved: number;
}

export type SalesmanKind = 'field' | 'travel' | 'partner';

export interface SalesmanRow {
  id: number;
  code: string;
  name: string;
  name_ar: string;
  phone: string;
  kind: SalesmanKind;
  warehouse_id: number;
  is_active: boolean;
}

export interface ClientRow {
  id: number;
  code: string;
  name: string;
  name_ar: string;
  phone: string;
  email: string | null;
  address: string;
  city: string;
  type: 'wholesale' | 'retail';
  pricelist_id: number | null;
  salesman_id: number | null;
  credit_limit: string;
  balance: string;
  allow_backorder: boolean;
  is_active: boolean;
}

export type DemoRole = 'admin' | 'manager' | 'salesman' | 'client_app' | 'warehouse' | 'driver';

/**
 * The claims a demo role needs (the demo sync config's roles.<role>.claims): a salesman's
 * `salesmanId`, the client app's `clientId`, nothing for the others.
 */
export type DemoClaims = { salesmanId: number } | { clientId: number } | Record<string, never>;

/**
 * A login in fieldsync's users table, without its password hash (hashing is salted, so
 * load.ts adds it at write time and generation stays pure).
 */
export interface DemoUserRow {
  id: number;
  email: string;
  role: DemoRole;
  display_name: string;
  claims: DemoClaims;
  is_active: boolean;
  created_at: string;
}

export type OrderStatus = 'pending' | 'confirmed' | 'picking' | 'shipped' | 'delivered' | 'cancelled';

export interface OrderRow {
  id: string;
  client_id: number;
  salesman_id: number;
  warehouse_id: number;
  /** the fieldsync user who pushed it: its users.id as text */
  created_by: string;
  status: OrderStatus;
  requested_delivery: string;
  notes: string | null;
  total: string;
  placed_at: string;
  created_at: string;
}

export interface OrderLineRow {
  order_id: string;
  line_no: number;
  product_id: number;
  qty: number;
  unit_price: string;
  line_total: string;
  note: string | null;
}

/** Everything one seed run writes, in foreign-key order (users go to fieldsync's schema). */
export interface DemoData {
  warehouses: WarehouseRow[];
  categories: CategoryRow[];
  products: ProductRow[];
  pricelists: PricelistRow[];
  prices: PriceRow[];
  stock: StockRow[];
  salesmen: SalesmanRow[];
  clients: ClientRow[];
  users: DemoUserRow[];
  orders: OrderRow[];
  order_lines: OrderLineRow[];
}
