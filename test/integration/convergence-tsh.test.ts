import test from 'ava';
import { SignJWT } from 'jose';
import type pgPromise from 'pg-promise';
import type { Rand as Rng } from '../../src/seed/random.js';
import { itemUuid, loadTshData, orderRef, TSH_PASSWORD, TSH_WORLD } from '../fixtures/tsh/data.js';
import { runConvergence, type DeviceSpec, type Op } from '../helpers/convergence.js';
import { erpFixture, erpPool } from '../helpers/db.js';
import { startTestServer, TEST_SECRET, type TestServer } from '../helpers/server.js';

/**
 * Convergence (DESIGN §4.1–4.3) on the second ERP (test/fixtures/tsh: tables in the schema
 * erp, fieldsync in fs_sync, uuid / text / identity / composite keys, soft deletes, nested
 * order lines, ERP token claims), with the demo's run (test/helpers/convergence.ts).
 * Writers do ERP-like SQL: item inserts and updates (numeric, jsonb, arrays, timestamp),
 * soft delete and undelete of items and item groups, hard deletes, customers moved
 * between reps and to no rep, price level changes, price_levels and branch_stock
 * composite-key inserts, updates, key moves and deletes, orders with lines (line edits,
 * inserts, deletes and moves re-send the orders), orders moved between reps and deleted,
 * keys renamed (a group code cascading to its items, customer numbers, order refs),
 * columns fieldsync does not sync, rollbacks and transactions left open across many pulls.
 *
 * Devices: rep 1 (fieldsync login, rep_app), rep 2 (an ERP-signed token: role
 * `sales_rep`, `https://tsh.example/rep_id` as a digit string), the back office (login,
 * back_office) and an ERP admin token on rep_app. No rep device ever receives a customer
 * or order of another rep, nor a column its app does not sync; at the end each holds
 * exactly what SQL over erp.* says (soft-deleted rows absent, nested lines included), with
 * every row's version the transaction of its live items in fs_sync.items, and every
 * checksum matches.
 *
 * Not written here: erp.sales_reps and erp.branches. The rep's and the admin's stock
 * buckets come from them, and they are not synced collections, so a change there (a rep
 * moved to another branch, a branch code renamed) reaches the bucket sets within 60 s
 * (README, roles), longer than a run.
 *
 * SEED=n replays a run; SOAK=1 runs for SOAK_SECONDS (default 300); OPS sets the number
 * of writer operations of a normal run (default 300).
 */

let s: TestServer;
let erp: pgPromise.IDatabase<unknown>;

test.before(async () => {
  s = await startTestServer({ DOORBELL_POLL_MS: '10' }, { erp: await erpFixture('tsh') });
  await loadTshData(s.db);
  await s.settle();
  erp = erpPool(s.tdb.url, 8);
});
test.after.always(async () => {
  await erp?.$pool.end();
  await s?.close();
});

// --- the ERP's writes --------------------------------------------------------------------

const ids = { item: TSH_WORLD.items, customer: TSH_WORLD.customers, order: TSH_WORLD.orders };
const item = (r: Rng) => `'${itemUuid(r.int(1, ids.item))}'::uuid`;
const customer = (r: Rng) => r.int(1, ids.customer);
const order = (r: Rng) => `'${orderRef(r.int(1, ids.order))}'`;
const branch = (r: Rng) => `'${r.pick(TSH_WORLD.branches)}'`;
/** an item group's code as it is now (groupRecode renames OIL to OIL2 and back) */
const group = (r: Rng) => `(SELECT code FROM erp.item_groups WHERE left(code, 3) = '${r.pick(TSH_WORLD.groups)}')`;
const groupIs = (r: Rng) => `left(code, 3) = '${r.pick(TSH_WORLD.groups)}'`;
/** a rep, or none now and then (reps 3 and 4 have no device: moves there leave the devices' scope) */
const rep = (r: Rng) => (r.chance(0.15) ? 'NULL' : String(r.int(1, TSH_WORLD.reps)));
/** level 5 starts with no prices: a customer there gives its rep an empty prices bucket */
const level = (r: Rng) => r.int(1, TSH_WORLD.levels + 1);
const dec = (r: Rng, max: number) => (r.int(0, max * 1000) / 1000).toFixed(3);

const ops: Record<string, Op> = {
  // catalog: items (uuid key, soft delete) and item groups (text key, soft delete)
  itemUpdate: (r) =>
    `UPDATE erp.items SET unit_price = ${dec(r, 99)}, name_ar = 'صنف محدّث ' || ${r.int(1, 999)}, modified = localtimestamp WHERE item_uuid = ${item(r)}`,
  itemDetails: (r) => {
    const n = r.int(1, 999);
    const weights = r.chance(0.2) ? 'NULL' : `ARRAY[${r.int(100, 5000)}, ${r.int(100, 5000)}]`;
    return `UPDATE erp.items SET attrs = attrs || jsonb_build_object('batch', ${n}, 'note', 'دفعة ${n}', 'ok', ${r.chance(0.5)}),
              tags = array_append(tags[1:2], 't${n}'), weights = ${weights}, name_en = 'Item rev ${n}', modified = localtimestamp
             WHERE item_uuid = ${item(r)}`;
  },
  itemRegroup: (r) => `UPDATE erp.items SET group_code = ${group(r)} WHERE item_uuid = ${item(r)}`,
  itemInsert: (r) => {
    const n = ++ids.item;
    const u = `'${itemUuid(n)}'::uuid`;
    return `INSERT INTO erp.items (item_uuid, zoho_item_id, sku, name_en, name_ar, group_code, unit_price, tags, attrs, weights)
              VALUES (${u}, 'Z${9000 + n}', 'NEW-${n}', 'New item ${n}', 'صنف جديد ${n}', ${group(r)}, ${dec(r, 50)}, ARRAY['new', 't${n % 3}'],
                      '{"origin": "TR", "tiers": [1, 2]}', ${r.chance(0.5) ? 'NULL' : `ARRAY[${r.int(100, 900)}]`});
            INSERT INTO erp.price_levels (price_level, item_uuid, price) VALUES (${r.int(1, TSH_WORLD.levels)}, ${u}, ${dec(r, 40)});
            INSERT INTO erp.branch_stock (branch_code, item_uuid, on_hand) VALUES (${branch(r)}, ${u}, ${dec(r, 40)})`;
  },
  itemSoftDelete: (r) => `UPDATE erp.items SET deleted_at = now() WHERE item_uuid = ${item(r)} AND deleted_at IS NULL`,
  itemUndelete: (r) => `UPDATE erp.items SET deleted_at = NULL, modified = localtimestamp WHERE item_uuid = ${item(r)} AND deleted_at IS NOT NULL`,
  itemHardDelete: (r) => {
    const u = item(r);
    const unused = `NOT EXISTS (SELECT 1 FROM erp.order_items WHERE item_uuid = ${u})`;
    return `DELETE FROM erp.branch_stock WHERE item_uuid = ${u} AND ${unused};
            DELETE FROM erp.price_levels WHERE item_uuid = ${u} AND ${unused};
            DELETE FROM erp.items WHERE item_uuid = ${u} AND ${unused}`;
  },
  itemUnsynced: (r) => `UPDATE erp.items SET internal_note = 'buyer note ' || ${r.int(1, 999)} WHERE item_uuid = ${item(r)}`,
  groupRename: (r) => `UPDATE erp.item_groups SET name_ar = 'مجموعة ' || ${r.int(1, 99)} WHERE ${groupIs(r)}`,
  groupToggle: (r) => `UPDATE erp.item_groups SET is_deleted = NOT is_deleted WHERE ${groupIs(r)}`,
  // a text key renamed, cascading to the items of the group (ON UPDATE CASCADE): OIL <-> OIL2
  groupRecode: (r) =>
    `UPDATE erp.item_groups SET code = CASE WHEN length(code) = 4 THEN left(code, 3) ELSE code || '2' END WHERE ${groupIs(r)}`,

  // branch stock: composite key (branch_code, item_uuid)
  stockUpdate: (r) => `UPDATE erp.branch_stock SET on_hand = ${dec(r, 500)}, modified = localtimestamp WHERE branch_code = ${branch(r)} AND item_uuid = ${item(r)}`,
  stockBurst: (r) => `UPDATE erp.branch_stock SET on_hand = on_hand + 0.5 WHERE branch_code = ${branch(r)} AND right(item_uuid::text, 1)::int % 3 = ${r.int(0, 2)}`,
  stockMove: (r) => `UPDATE erp.branch_stock SET branch_code = ${branch(r)} WHERE branch_code = ${branch(r)} AND item_uuid = ${item(r)}`,
  stockDelete: (r) => `DELETE FROM erp.branch_stock WHERE branch_code = ${branch(r)} AND item_uuid = ${item(r)}`,
  stockUpsert: (r) =>
    `INSERT INTO erp.branch_stock (branch_code, item_uuid, on_hand) SELECT ${branch(r)}, item_uuid, ${dec(r, 90)} FROM erp.items WHERE item_uuid = ${item(r)}
       ON CONFLICT (branch_code, item_uuid) DO UPDATE SET on_hand = excluded.on_hand, modified = localtimestamp`,
  stockUnsynced: (r) => `UPDATE erp.branch_stock SET last_counted_by = 'clerk ${r.int(1, 9)}' WHERE branch_code = ${branch(r)}`,

  // price levels: composite key (price_level, item_uuid)
  priceUpdate: (r) => `UPDATE erp.price_levels SET price = ${dec(r, 99)} WHERE price_level = ${level(r)} AND item_uuid = ${item(r)}`,
  priceMove: (r) => `UPDATE erp.price_levels SET price_level = ${level(r)} WHERE price_level = ${level(r)} AND item_uuid = ${item(r)}`,
  priceDelete: (r) => `DELETE FROM erp.price_levels WHERE price_level = ${level(r)} AND item_uuid = ${item(r)}`,
  priceUpsert: (r) =>
    `INSERT INTO erp.price_levels (price_level, item_uuid, price) SELECT ${level(r)}, item_uuid, ${dec(r, 60)} FROM erp.items WHERE item_uuid = ${item(r)}
       ON CONFLICT (price_level, item_uuid) DO UPDATE SET price = excluded.price`,
  priceDeleteReinsert: (r) =>
    `WITH d AS (DELETE FROM erp.price_levels WHERE price_level = ${level(r)} AND item_uuid = ${item(r)} RETURNING *)
     INSERT INTO erp.price_levels (price_level, item_uuid, price) SELECT ${level(r)}, item_uuid, price + 1 FROM d`,

  // customers: integer identity key; the rep decides the bucket, active ones their levels' prices
  customerMove: (r) => `UPDATE erp.customers SET rep_id = ${rep(r)}, updated = now() WHERE customer_no = ${customer(r)}`,
  customerLevel: (r) => `UPDATE erp.customers SET price_level = ${level(r)} WHERE customer_no = ${customer(r)}`,
  customerToggle: (r) => `UPDATE erp.customers SET is_active = NOT is_active WHERE customer_no = ${customer(r)}`,
  customerEdit: (r) =>
    `UPDATE erp.customers SET name_ar = 'زبون معدّل ' || ${r.int(1, 99)}, credit = ${r.int(0, 99999) / 100}, client_type = '${r.pick(['retail', 'wholesale', 'vip'])}'
      WHERE customer_no = ${customer(r)}`,
  customerUnsynced: (r) => `UPDATE erp.customers SET last_viewed_at = now(), internal_note = 'seen ${r.int(1, 99)}' WHERE customer_no = ${customer(r)}`,
  customerInsert: (r) => {
    const n = ++ids.customer;
    return `INSERT INTO erp.customers (customer_no, name, name_ar, client_type, rep_id, price_level, credit)
              VALUES (${n}, 'New customer ${n}', 'زبون جديد ${n}', 'retail', ${rep(r)}, ${level(r)}, ${r.int(0, 5000)})`;
  },
  customerBulkMove: (r) => `UPDATE erp.customers SET rep_id = ${rep(r)}, updated = now() WHERE rep_id = ${r.int(1, TSH_WORLD.reps)} AND customer_no % 2 = ${r.int(0, 1)}`,
  // an integer key changed (customers without orders: sales_orders does not cascade)
  customerRenumber: (r) => {
    const n = customer(r);
    return `UPDATE erp.customers SET customer_no = ${++ids.customer} WHERE customer_no = ${n} AND NOT EXISTS (SELECT 1 FROM erp.sales_orders WHERE customer_no = ${n})`;
  },
  customerDelete: (r) => {
    const n = customer(r);
    return `DELETE FROM erp.customers WHERE customer_no = ${n} AND NOT EXISTS (SELECT 1 FROM erp.sales_orders WHERE customer_no = ${n})`;
  },

  // sales orders: text key, lines nested (erp.order_items, composite key)
  orderInsert: (r) => {
    const ref = `'${orderRef(++ids.order)}'`;
    const lines = Array.from({ length: r.int(1, 3) }, () => item(r));
    return `INSERT INTO erp.sales_orders (order_ref, customer_no, rep_id, status, meta)
              SELECT ${ref}, c.customer_no, c.rep_id, 'draft', jsonb_build_object('source', 'app', 'device', ${r.int(1, 9)}) FROM erp.customers c WHERE c.customer_no = ${customer(r)};
            INSERT INTO erp.order_items (order_ref, line, item_uuid, qty, price)
              SELECT ${ref}, row_number() OVER (ORDER BY i.item_uuid), i.item_uuid, ${r.int(1, 20)} * 0.5, i.unit_price
                FROM erp.items i WHERE i.item_uuid IN (${lines.join(', ')}) AND EXISTS (SELECT 1 FROM erp.sales_orders WHERE order_ref = ${ref});
            UPDATE erp.sales_orders SET total = (SELECT coalesce(sum(qty * price), 0) FROM erp.order_items WHERE order_ref = ${ref}) WHERE order_ref = ${ref}`;
  },
  orderLineEdit: (r) => `UPDATE erp.order_items SET qty = qty + 1, price = ${dec(r, 30)} WHERE order_ref = ${order(r)} AND line = ${r.int(1, 2)}`,
  orderLineAdd: (r) => {
    const ref = order(r);
    return `INSERT INTO erp.order_items (order_ref, line, item_uuid, qty, price)
              SELECT o.order_ref, coalesce((SELECT max(line) FROM erp.order_items WHERE order_ref = o.order_ref), 0) + 1, i.item_uuid, 2, i.unit_price
                FROM erp.sales_orders o, erp.items i WHERE o.order_ref = ${ref} AND i.item_uuid = ${item(r)}`;
  },
  orderLineDelete: (r) => {
    const ref = order(r);
    return `DELETE FROM erp.order_items WHERE order_ref = ${ref} AND line = (SELECT max(line) FROM erp.order_items WHERE order_ref = ${ref})`;
  },
  // a line moving to another order re-sends both
  orderLineMove: (r) => {
    const to = order(r);
    return `UPDATE erp.order_items SET order_ref = ${to}, line = (SELECT coalesce(max(line), 0) + 1 FROM erp.order_items WHERE order_ref = ${to})
             WHERE order_ref = ${order(r)} AND line = 1 AND EXISTS (SELECT 1 FROM erp.sales_orders WHERE order_ref = ${to})`;
  },
  // a text key changed (orders without lines: order_items does not cascade)
  orderRenumber: (r) => {
    const ref = order(r);
    return `UPDATE erp.sales_orders SET order_ref = '${orderRef(++ids.order)}' WHERE order_ref = ${ref} AND NOT EXISTS (SELECT 1 FROM erp.order_items WHERE order_ref = ${ref})`;
  },
  orderStatus: (r) =>
    `UPDATE erp.sales_orders SET status = '${r.pick(['draft', 'confirmed', 'invoiced', 'void'])}', total = total + 1 WHERE order_ref = ${order(r)}`,
  orderMeta: (r) =>
    `UPDATE erp.sales_orders SET meta = ${r.chance(0.2) ? 'NULL' : `coalesce(meta, '{}') || jsonb_build_object('rev', ${r.int(1, 99)}, 'tags', jsonb_build_array('a', ${r.int(1, 9)}))`}
      WHERE order_ref = ${order(r)}`,
  orderMove: (r) => `UPDATE erp.sales_orders SET rep_id = ${rep(r)} WHERE order_ref = ${order(r)}`,
  orderDelete: (r) => `DELETE FROM erp.sales_orders WHERE order_ref = ${order(r)}`,
  orderUnsynced: (r) => `UPDATE erp.sales_orders SET internal_note = 'call back ${r.int(1, 9)}' WHERE order_ref = ${order(r)}`,
};

// --- what each device must hold ----------------------------------------------------------

/** SQL: the expected version of row r: the transaction of its live items in fs_sync.items. */
const v = (coll: string, key: string) => `(SELECT max(i.seq)::text FROM fs_sync.items i WHERE i.coll = '${coll}' AND i.row_key = ${key} AND NOT i.deleted)`;

/** per collection: its table, its key as text (the wire id's String) and each wire column's expected value over r */
const tables = {
  item_groups: { table: 'erp.item_groups', key: 'r.code', live: 'NOT r.is_deleted' },
  items: { table: 'erp.items', key: 'r.item_uuid::text', live: 'r.deleted_at IS NULL' },
  branch_stock: { table: 'erp.branch_stock', key: 'json_build_array(r.branch_code, r.item_uuid)::text', live: 'true' },
  customers: { table: 'erp.customers', key: 'r.customer_no::text', live: 'true' },
  price_levels: { table: 'erp.price_levels', key: 'json_build_array(r.price_level, r.item_uuid)::text', live: 'true' },
  sales_orders: { table: 'erp.sales_orders', key: 'r.order_ref', live: 'true' },
} as const;
type Coll = keyof typeof tables;

const TS = `'YYYY-MM-DD"T"HH24:MI:SS.MS'`;
const wire: Record<Coll, Record<string, string>> = {
  item_groups: { name: 'r.name', name_ar: 'r.name_ar' },
  items: {
    zoho_id: 'r.zoho_item_id', sku: 'r.sku', name_en: 'r.name_en', name_ar: 'r.name_ar', group: 'r.group_code',
    unit_price: 'r.unit_price::text', tags: 'r.tags', attrs: 'r.attrs', weights: 'r.weights',
    modified: `to_char(r.modified, ${TS})`, label: `r.sku || ' ' || r.name_en`,
  },
  branch_stock: { branch: 'r.branch_code', item: 'r.item_uuid::text', on_hand: 'r.on_hand::text', modified: `to_char(r.modified, ${TS})` },
  customers: {
    name: 'r.name', name_ar: 'r.name_ar', client_type: 'r.client_type', rep: 'r.rep_id', price_level: 'r.price_level',
    credit: 'r.credit::text', active: 'r.is_active', updated: '(extract(epoch FROM r.updated) * 1000)::bigint',
  },
  price_levels: { level: 'r.price_level', item: 'r.item_uuid::text', price: 'r.price::text' },
  sales_orders: {
    customer: 'r.customer_no', rep: 'r.rep_id', status: 'r.status', total: 'r.total::text',
    order_date: `to_char(r.order_date, 'YYYY-MM-DD')`, created: `to_char(r.created, ${TS})`, meta: 'r.meta',
    lines: `(SELECT coalesce(json_agg(json_build_array(l.line, l.item_uuid::text, l.qty::text, l.price::text) ORDER BY l.line), '[]')
               FROM erp.order_items l WHERE l.order_ref = r.order_ref)`,
  },
};

/** The wire columns each app receives, restated from the fixture's config (not read from the model: a wrong app profile must fail). */
const appColumns: Record<string, Record<Coll, string[]>> = {
  back_office: Object.fromEntries(Object.entries(wire).map(([c, cols]) => [c, Object.keys(cols)])) as Record<Coll, string[]>,
  rep_app: {
    item_groups: ['name', 'name_ar'],
    items: ['zoho_id', 'sku', 'name_en', 'name_ar', 'group', 'unit_price', 'tags', 'label', 'modified'],
    branch_stock: Object.keys(wire.branch_stock),
    customers: ['name', 'name_ar', 'client_type', 'rep', 'price_level', 'active', 'updated'],
    price_levels: Object.keys(wire.price_levels),
    sales_orders: Object.keys(wire.sales_orders),
  },
};

/** SQL: (id, v, check) of a collection's live rows matching `where`, checked on the app's columns. */
function rows(coll: Coll, app: string, where = 'true'): string {
  const t = tables[coll];
  const check = appColumns[app]![coll].map((c) => wire[coll][c]!);
  return `SELECT ${t.key} AS id, ${v(coll, t.key)} AS v, json_build_array(${check.join(', ')}) AS check FROM ${t.table} r WHERE (${t.live}) AND (${where})`;
}

/** A device's expectations: catalog for everyone; the rest in `where` per collection. */
function expect(app: string, where: Partial<Record<Coll, string>>): Pick<DeviceSpec, 'expect' | 'check'> {
  const colls = Object.keys(tables) as Coll[];
  return {
    expect: Object.fromEntries(colls.map((c) => [c, rows(c, app, where[c])])),
    check: appColumns[app]!,
  };
}

const repScope = (repId: number) => ({
  branch_stock: `r.branch_code = (SELECT branch_code FROM erp.sales_reps WHERE rep_id = ${repId})`,
  customers: `r.rep_id = ${repId}`,
  price_levels: `r.price_level IN (SELECT price_level FROM erp.customers WHERE rep_id = ${repId} AND is_active)`,
  sales_orders: `r.rep_id = ${repId}`,
});

/** what an app never receives: the columns it does not sync */
const foreignColumns = (app: string) => (coll: string, row: Record<string, unknown>) => {
  const wanted = new Set(['b', 'id', 'v', ...(appColumns[app]![coll as Coll] ?? [])]);
  const extra = Object.keys(row).filter((c) => !wanted.has(c));
  return extra.length > 0 ? `columns ${extra.join(', ')} are not for ${app}` : undefined;
};
/** a rep device never receives a customer or an order of another rep (nor of none) */
const repLeak = (repId: number) => (coll: string, row: Record<string, unknown>) =>
  (coll === 'customers' || coll === 'sales_orders') && row.rep !== repId ? `of rep ${String(row.rep)}` : foreignColumns('rep_app')(coll, row);

async function login(email: string): Promise<string> {
  const res = await s.post('/v1/auth/login', { email, password: TSH_PASSWORD });
  if (res.status !== 200) throw new Error(`login ${email}: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { token: string }).token;
}

/** A token as the ERP signs it: its own claim names and role names (config `token`). */
function erpToken(sub: string, claims: Record<string, unknown>): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(sub)
    .setIssuer(s.config.auth.issuer)
    .setAudience(s.config.auth.audience)
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(TEST_SECRET));
}

test('devices of the second ERP converge to their bucket sets under concurrent ERP writes', async (t) => {
  const devices: DeviceSpec[] = [
    { name: 'rep1 (login)', app: 'rep_app', token: await login('rep1@tsh.test'), ...expect('rep_app', repScope(1)), leak: repLeak(1) },
    {
      name: 'rep2 (ERP token)',
      app: 'rep_app',
      token: await erpToken('erp-user-2', { 'https://tsh.example/role': 'sales_rep', 'https://tsh.example/rep_id': '2' }),
      ...expect('rep_app', repScope(2)),
      leak: repLeak(2),
    },
    { name: 'admin (login)', app: 'back_office', token: await login('admin@tsh.test'), ...expect('back_office', {}), leak: foreignColumns('back_office') },
    {
      name: 'admin (ERP token)',
      app: 'rep_app',
      token: await erpToken('erp-admin-1', { 'https://tsh.example/role': 'erp_admin' }),
      ...expect('rep_app', {}),
      leak: foreignColumns('rep_app'),
    },
  ];
  await runConvergence(t, { server: s, erp, ops, devices });
});
