import { defineConfig } from '../model/config.js';
import { cancelOrder, createOrder, updateClientContact, updateOrderNotes } from './mutations.js';

/**
 * The demo ERP's sync config (schema: sql/demo/): the worked example of a config, and
 * what `npm start` runs with when SYNC_CONFIG is not set.
 *
 * Buckets:
 *   catalog                 warehouses, categories, products, pricelists (everyone)
 *   prices:<pricelist>      prices of one pricelist
 *   stock:<warehouse>       stock of one warehouse
 *   clients:<salesman>      one salesman's clients; clients:all every client
 *   orders:<salesman>       one salesman's orders (lines inside); orders:all every order
 *   client_orders:<client>  one client's orders, for the self-ordering app
 */
const active = { column: 'is_active', type: 'bool' } as const;
const updated = { column: 'updated_at', type: 'ms' } as const;
const all = '*' as const;
const productLite = ['sku', 'barcode', 'name', 'name_ar', 'category', 'unit', 'pack', 'price', 'active', 'image', 'placeholder', 'updated'];

export default defineConfig({
  collections: {
    warehouses: {
      table: 'warehouses',
      key: 'id',
      columns: { code: 'text', name: 'text', name_ar: 'text', city: 'text', active, updated },
    },
    categories: {
      table: 'categories',
      key: 'id',
      columns: { parent: { column: 'parent_id', type: 'int' }, name: 'text', name_ar: 'text', sort: { column: 'sort_order', type: 'int' }, active, updated },
    },
    products: {
      table: 'products',
      key: 'id',
      columns: {
        sku: 'text', barcode: 'text', name: 'text', name_ar: 'text', description: 'text', description_ar: 'text',
        category: { column: 'category_id', type: 'int' }, unit: 'text', pack: { column: 'pack_size', type: 'int' },
        price: { column: 'base_price', type: 'money' }, active,
        image: { media: 'key' }, image_w: { media: 'width' }, image_h: { media: 'height' }, placeholder: { media: 'placeholder' },
        updated,
      },
    },
    pricelists: {
      table: 'pricelists',
      key: 'id',
      columns: { code: 'text', name: 'text', name_ar: 'text', currency: 'text', active, updated },
    },
    prices: {
      table: 'prices',
      key: 'id',
      columns: { pricelist: { column: 'pricelist_id', type: 'int' }, product: { column: 'product_id', type: 'int' }, price: 'money', updated },
    },
    stock: {
      table: 'stock',
      key: 'id',
      columns: { product: { column: 'product_id', type: 'int' }, warehouse: { column: 'warehouse_id', type: 'int' }, qty: 'int', reserved: 'int', updated },
    },
    clients: {
      table: 'clients',
      key: 'id',
      columns: {
        code: 'text', name: 'text', name_ar: 'text', phone: 'text', email: 'text', address: 'text', city: 'text', type: 'text',
        pricelist: { column: 'pricelist_id', type: 'int' }, salesman: { column: 'salesman_id', type: 'int' },
        credit_limit: 'money', balance: 'money', backorder: { column: 'allow_backorder', type: 'bool' }, active, updated,
      },
    },
    orders: {
      table: 'orders',
      key: 'id',
      columns: {
        client: { column: 'client_id', type: 'int' }, salesman: { column: 'salesman_id', type: 'int' }, warehouse: { column: 'warehouse_id', type: 'int' },
        status: 'text', delivery: { column: 'requested_delivery', type: 'date' }, notes: 'text', total: 'money',
        placed: { column: 'placed_at', type: 'ms' }, created: { column: 'created_at', type: 'ms' }, updated,
      },
      children: {
        // [line_no, product, qty, unit_price, line_total, note] per line
        lines: {
          table: 'order_lines',
          parent: { order_id: 'id' },
          orderBy: 'r.line_no',
          columns: { line_no: 'int', product: { column: 'product_id', type: 'int' }, qty: 'int', unit_price: 'money', line_total: 'money', note: 'text' },
        },
      },
    },
  },

  buckets: {
    catalog: { rows: { warehouses: true, categories: true, products: true, pricelists: true }, snapshot: true },
    prices: { rows: { prices: 'r.pricelist_id' }, snapshot: true },
    stock: { rows: { stock: 'r.warehouse_id' }, snapshot: true },
    clients: { rows: { clients: `ARRAY[r.salesman_id::text, 'all']` } },
    orders: { rows: { orders: `ARRAY[r.salesman_id::text, 'all']` } },
    client_orders: { rows: { orders: 'r.client_id' } },
  },

  roles: {
    salesman: {
      claims: { salesmanId: 'int' },
      buckets: {
        catalog: true,
        // the pricelists his active clients use
        prices: 'SELECT DISTINCT c.pricelist_id FROM clients c WHERE c.salesman_id = ${salesmanId} AND c.is_active AND c.pricelist_id IS NOT NULL',
        // his warehouse; every warehouse if he has none
        stock: `SELECT w.id FROM warehouses w
                 WHERE w.id = (SELECT s.warehouse_id FROM salesmen s WHERE s.id = \${salesmanId})
                    OR NOT EXISTS (SELECT 1 FROM salesmen s WHERE s.id = \${salesmanId} AND s.warehouse_id IS NOT NULL)`,
        clients: 'SELECT ${salesmanId}',
        orders: 'SELECT ${salesmanId}',
      },
    },
    admin: {
      buckets: { catalog: true, prices: 'SELECT id FROM pricelists', stock: 'SELECT id FROM warehouses', clients: `SELECT 'all'`, orders: `SELECT 'all'` },
      permissions: ['users:read', 'users:write', 'media:write'],
    },
    manager: {
      buckets: { catalog: true, prices: 'SELECT id FROM pricelists', stock: 'SELECT id FROM warehouses', clients: `SELECT 'all'`, orders: `SELECT 'all'` },
      permissions: ['users:read', 'media:write'],
    },
    client_app: {
      claims: { clientId: 'int' },
      buckets: { catalog: true, prices: 'SELECT pricelist_id FROM clients WHERE id = ${clientId}', client_orders: 'SELECT ${clientId}' },
    },
    warehouse: { buckets: { catalog: true, stock: 'SELECT id FROM warehouses' } },
    // deliveries are not modelled yet
    driver: { buckets: { catalog: true } },
  },

  apps: {
    salesman: {
      roles: ['salesman', 'admin', 'manager'],
      defaultFor: ['salesman'],
      collections: { warehouses: all, categories: all, products: all, pricelists: all, prices: all, stock: all, clients: all, orders: all },
    },
    // long trips on weak links: no long descriptions or image sizes
    travel_sales: {
      roles: ['salesman', 'admin', 'manager'],
      collections: { warehouses: all, categories: all, products: productLite, pricelists: all, prices: all, stock: all, clients: all, orders: all },
    },
    // partner salesmen are not employees: no client credit or balances
    partner_sales: {
      roles: ['salesman', 'admin', 'manager'],
      collections: {
        categories: all, products: productLite, pricelists: all, prices: all, stock: all, orders: all,
        clients: ['code', 'name', 'name_ar', 'phone', 'address', 'city', 'type', 'pricelist', 'salesman', 'active', 'updated'],
      },
    },
    client_ordering: {
      roles: ['client_app', 'admin', 'manager'],
      defaultFor: ['client_app'],
      collections: { categories: all, products: all, pricelists: all, prices: all, orders: all },
    },
    pos: {
      roles: ['client_app', 'warehouse', 'admin', 'manager'],
      collections: { categories: all, products: productLite, pricelists: all, prices: all, stock: all },
    },
    warehouse: {
      roles: ['warehouse', 'admin', 'manager'],
      defaultFor: ['warehouse'],
      collections: { warehouses: all, categories: all, products: ['sku', 'barcode', 'name', 'name_ar', 'category', 'unit', 'pack', 'active', 'image', 'placeholder', 'updated'], stock: all },
    },
    delivery: {
      roles: ['driver', 'admin', 'manager'],
      defaultFor: ['driver'],
      collections: { warehouses: all, products: ['sku', 'barcode', 'name', 'name_ar', 'unit', 'pack', 'image', 'placeholder', 'updated'] },
    },
    manager: {
      roles: ['admin', 'manager'],
      defaultFor: ['admin', 'manager'],
      collections: { warehouses: all, categories: all, products: all, pricelists: all, prices: all, stock: all, clients: all, orders: all },
    },
  },

  mutations: {
    'order.create': createOrder,
    'order.cancel': cancelOrder,
    'order.update_notes': updateOrderNotes,
    'client.update_contact': updateClientContact,
  },

  events: {
    // latest quantities, coalesced per warehouse room over the poke window
    'stock:changed': {
      collection: 'stock',
      mode: 'batch',
      fields: { productId: 'r.product_id', warehouseId: 'r.warehouse_id', qty: 'r.qty', reserved: 'r.reserved' },
    },
    // an order's status as the ERP or a push left it
    'order:status': {
      collection: 'orders',
      mode: 'row',
      fields: { orderId: 'r.id', status: 'r.status::text', updatedAt: '(extract(epoch FROM r.updated_at) * 1000)::bigint' },
    },
  },

  media: { collection: 'products', name: 'r.sku' },
});
