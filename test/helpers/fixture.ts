import { hashPassword } from '../../src/auth/passwords.js';
import type { Db } from '../../src/db/pg.js';

export const FIXTURE_PASSWORD = 'fixture-password';

/**
 * A small world for sync tests, all ids explicit: 3 warehouses, 3 pricelists,
 * 4 salesmen (1 and 2 tied to warehouses 1 and 2, 3 and 4 to none), 12 clients,
 * 6 categories, 30 products with prices in every pricelist and stock everywhere,
 * and users in fieldsync's `<schema>.users` with the demo config's claims: admin, manager,
 * salesman1..4 ({"salesmanId": 1..4}), client ({"clientId": 1}), warehouse, driver.
 * Needs the demo ERP schema and fieldsync installed (createTestDatabase's default).
 */
export async function loadFixture(db: Db, schema = 'fieldsync'): Promise<void> {
  const hash = await hashPassword(FIXTURE_PASSWORD);
  await db.tx('fixture', async (t) => {
    await t.none(`
      INSERT INTO public.warehouses (id, code, name, name_ar) VALUES
        (1, 'RUH', 'Riyadh', 'الرياض'), (2, 'JED', 'Jeddah', 'جدة'), (3, 'DMM', 'Dammam', 'الدمام');
      INSERT INTO public.pricelists (id, code, name, name_ar) VALUES
        (1, 'RET', 'Retail', 'تجزئة'), (2, 'WHO', 'Wholesale', 'جملة'), (3, 'KEY', 'Key accounts', 'كبار العملاء');
      INSERT INTO public.salesmen (id, code, name, name_ar, warehouse_id) VALUES
        (1, 'S1', 'Ali', 'علي', 1), (2, 'S2', 'Omar', 'عمر', 2), (3, 'S3', 'Faisal', 'فيصل', NULL), (4, 'S4', 'Khalid', 'خالد', NULL);
      INSERT INTO public.categories (id, parent_id, name, name_ar) VALUES
        (1, NULL, 'Beverages', 'مشروبات'), (2, 1, 'Juices', 'عصائر'), (3, 1, 'Water', 'مياه'),
        (4, NULL, 'Food', 'أغذية'), (5, 4, 'Rice', 'أرز'), (6, 4, 'Dates', 'تمور');
      INSERT INTO public.products (id, sku, name, name_ar, category_id, base_price)
        SELECT i, 'SKU-' || i, 'Product ' || i, 'منتج رقم ' || i, 2 + i % 5, (i * 1.25)::numeric(14,2)
          FROM generate_series(1, 30) i;
      INSERT INTO public.prices (pricelist_id, product_id, price)
        SELECT pl, p, (p * 1.25 * (1 - pl * 0.05))::numeric(14,2) FROM generate_series(1, 3) pl, generate_series(1, 30) p;
      INSERT INTO public.stock (product_id, warehouse_id, qty)
        SELECT p, w, (p * 7 + w) % 50 FROM generate_series(1, 30) p, generate_series(1, 3) w;
      INSERT INTO public.clients (id, code, name, name_ar, type, pricelist_id, salesman_id)
        SELECT i, 'C' || i, 'Client ' || i, 'عميل ' || i, CASE WHEN i % 3 = 0 THEN 'wholesale' ELSE 'retail' END::public.client_type,
               1 + i % 3, CASE WHEN i = 12 THEN NULL ELSE 1 + i % 4 END
          FROM generate_series(1, 12) i;
    `);
    await t.none(
      `INSERT INTO $<schema:name>.users (email, password_hash, role, display_name, claims) VALUES
        ('admin@fixture.test', $<hash>, 'admin', 'Admin', '{}'),
        ('manager@fixture.test', $<hash>, 'manager', 'Manager', '{}'),
        ('salesman1@fixture.test', $<hash>, 'salesman', 'Ali', '{"salesmanId": 1}'),
        ('salesman2@fixture.test', $<hash>, 'salesman', 'Omar', '{"salesmanId": 2}'),
        ('salesman3@fixture.test', $<hash>, 'salesman', 'Faisal', '{"salesmanId": 3}'),
        ('salesman4@fixture.test', $<hash>, 'salesman', 'Khalid', '{"salesmanId": 4}'),
        ('client@fixture.test', $<hash>, 'client_app', 'Client 1', '{"clientId": 1}'),
        ('warehouse@fixture.test', $<hash>, 'warehouse', 'Store', '{}'),
        ('driver@fixture.test', $<hash>, 'driver', 'Driver', '{}')`,
      { schema, hash },
    );
  });
}
