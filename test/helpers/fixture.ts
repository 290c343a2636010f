import { hashPassword } from '../../src/auth/passwords.js';
import type { Db } from '../../src/db/pg.js';

export const FIXTURE_PASSWORD = 'fixture-password';

/**
 * A small world for sync tests, all ids explicit: 3 warehouses, 3 pricelists,
 * 4 salesmen (1 and 2 tied to warehouses 1 and 2, 3 and 4 to none), 12 clients,
 * 6 categories, 30 products with prices in every pricelist and stock everywhere,
 * and users: admin, manager, salesman1..4, client (client 1), warehouse, driver.
 */
export async function loadFixture(db: Db): Promise<void> {
  const hash = await hashPassword(FIXTURE_PASSWORD);
  await db.tx('fixture', async (t) => {
    await t.none(`
      INSERT INTO warehouses (id, code, name, name_ar) VALUES
        (1, 'RUH', 'Riyadh', 'الرياض'), (2, 'JED', 'Jeddah', 'جدة'), (3, 'DMM', 'Dammam', 'الدمام');
      INSERT INTO pricelists (id, code, name, name_ar) VALUES
        (1, 'RET', 'Retail', 'تجزئة'), (2, 'WHO', 'Wholesale', 'جملة'), (3, 'KEY', 'Key accounts', 'كبار العملاء');
      INSERT INTO salesmen (id, code, name, name_ar, warehouse_id) VALUES
        (1, 'S1', 'Ali', 'علي', 1), (2, 'S2', 'Omar', 'عمر', 2), (3, 'S3', 'Faisal', 'فيصل', NULL), (4, 'S4', 'Khalid', 'خالد', NULL);
      INSERT INTO categories (id, parent_id, name, name_ar) VALUES
        (1, NULL, 'Beverages', 'مشروبات'), (2, 1, 'Juices', 'عصائر'), (3, 1, 'Water', 'مياه'),
        (4, NULL, 'Food', 'أغذية'), (5, 4, 'Rice', 'أرز'), (6, 4, 'Dates', 'تمور');
      INSERT INTO products (id, sku, name, name_ar, category_id, base_price)
        SELECT i, 'SKU-' || i, 'Product ' || i, 'منتج رقم ' || i, 2 + i % 5, (i * 1.25)::numeric(14,2)
          FROM generate_series(1, 30) i;
      INSERT INTO prices (pricelist_id, product_id, price)
        SELECT pl, p, (p * 1.25 * (1 - pl * 0.05))::numeric(14,2) FROM generate_series(1, 3) pl, generate_series(1, 30) p;
      INSERT INTO stock (product_id, warehouse_id, qty)
        SELECT p, w, (p * 7 + w) % 50 FROM generate_series(1, 30) p, generate_series(1, 3) w;
      INSERT INTO clients (id, code, name, name_ar, type, pricelist_id, salesman_id)
        SELECT i, 'C' || i, 'Client ' || i, 'عميل ' || i, CASE WHEN i % 3 = 0 THEN 'wholesale' ELSE 'retail' END::client_type,
               1 + i % 3, CASE WHEN i = 12 THEN NULL ELSE 1 + i % 4 END
          FROM generate_series(1, 12) i;
    `);
    await t.none(
      `INSERT INTO users (email, password_hash, role, display_name, salesman_id, client_id) VALUES
        ('admin@fixture.test', $1, 'admin', 'Admin', NULL, NULL),
        ('manager@fixture.test', $1, 'manager', 'Manager', NULL, NULL),
        ('salesman1@fixture.test', $1, 'salesman', 'Ali', 1, NULL),
        ('salesman2@fixture.test', $1, 'salesman', 'Omar', 2, NULL),
        ('salesman3@fixture.test', $1, 'salesman', 'Faisal', 3, NULL),
        ('salesman4@fixture.test', $1, 'salesman', 'Khalid', 4, NULL),
        ('client@fixture.test', $1, 'client_app', 'Client 1', NULL, 1),
        ('warehouse@fixture.test', $1, 'warehouse', 'Store', NULL, NULL),
        ('driver@fixture.test', $1, 'driver', 'Driver', NULL, NULL)`,
      [hash],
    );
  });
}
