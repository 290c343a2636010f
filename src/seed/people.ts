import type { Rand } from './random.js';
import type { ClientRow, DemoUserRow, SalesmanKind, SalesmanRow, WarehouseRow } from './rows.js';
import { arabicDigits, money, slug } from './text.js';
import {
  CITIES, DISTRICTS, FAMILY_NAMES, FIRST_NAMES, PRICELISTS, SHOP_TYPES, SHOP_WORDS, STREETS, WAREHOUSES,
  type City, type Pair,
} from './vocabulary.js';

export function buildWarehouses(): WarehouseRow[] {
  return WAREHOUSES.map((w, i) => ({ id: i + 1, code: w.code, name: w.name, name_ar: w.name_ar, city: w.city, is_active: true }));
}

/** Saudi mobile numbers (+9665XXXXXXXX), never the same twice in one data set. */
export class Phones {
  private readonly used = new Set<string>();
  constructor(private readonly rand: Rand) {}

  next(): string {
    for (;;) {
      const phone = `+9665${this.rand.pick(['0', '3', '4', '5', '6', '8', '9'])}${this.rand.digits(7)}`;
      if (!this.used.has(phone)) {
        this.used.add(phone);
        return phone;
      }
    }
  }
}

function citiesOf(warehouseCode: string): City[] {
  return CITIES.filter((c) => c.warehouse === warehouseCode);
}

const KINDS: readonly (readonly [SalesmanKind, number])[] = [['field', 80], ['travel', 12], ['partner', 8]];

/** Salesmen and, index-aligned, the city each one works in. */
export function buildSalesmen(rand: Rand, phones: Phones, count: number): { rows: SalesmanRow[]; cities: City[] } {
  // Every first x family name pair once before any repeats (1,680 pairs).
  const pairs: [Pair, Pair][] = FIRST_NAMES.flatMap((f) => FAMILY_NAMES.map((l): [Pair, Pair] => [f, l]));
  rand.shuffle(pairs);
  const rows: SalesmanRow[] = [];
  const cities: City[] = [];
  for (let i = 0; i < count; i++) {
    const [first, family] = pairs[i % pairs.length] as [Pair, Pair];
    const whIndex = WAREHOUSES.indexOf(rand.weighted(WAREHOUSES, (w) => w.weight));
    const wh = WAREHOUSES[whIndex];
    cities.push(rand.weighted(citiesOf(wh?.code ?? ''), (c) => c.weight));
    rows.push({
      id: i + 1,
      code: `S${String(i + 1).padStart(4, '0')}`,
      name: `${first[0]} ${family[0]}`,
      name_ar: `${first[1]} ${family[1]}`,
      phone: phones.next(),
      kind: rand.weighted(KINDS, (k) => k[1])[0],
      warehouse_id: whIndex + 1,
      is_active: true,
    });
  }
  return { rows, cities };
}

function shopName(rand: Rand): Pair {
  const r = rand.float();
  if (r < 0.5) return rand.pick(SHOP_WORDS);
  if (r < 0.85) return rand.pick(FAMILY_NAMES);
  const [en, ar] = rand.pick(FIRST_NAMES);
  return [`Abu ${en}`, `أبو ${ar}`];
}

export function buildClients(
  rand: Rand,
  phones: Phones,
  count: number,
  salesmen: { rows: readonly SalesmanRow[]; cities: readonly City[] },
): ClientRow[] {
  const taken = new Set<string>();
  const rows: ClientRow[] = [];
  for (let i = 0; i < count; i++) {
    const id = i + 1;
    const shop = rand.weighted(SHOP_TYPES, (s) => s.weight);
    const [nEn, nAr] = shopName(rand);
    const district = rand.pick(DISTRICTS);
    let name: Pair = [shop.en.replace('{n}', nEn), shop.ar.replace('{n}', nAr)];
    // Same-named shops are common; a branch is told apart by its district, then a number.
    if (taken.has(name[0])) name = [`${name[0]} - ${district[0]}`, `${name[1]} - ${district[1]}`];
    if (taken.has(name[0])) name = [`${name[0]} ${id}`, `${name[1]} ${arabicDigits(String(id))}`];
    taken.add(name[0]);

    // A few clients wait for a salesman (new, or their salesman left).
    const s = rand.chance(0.02) ? -1 : rand.int(0, salesmen.rows.length - 1);
    const salesman = salesmen.rows[s];
    const home = salesmen.cities[s];
    const city =
      salesman && home
        ? rand.chance(0.8) ? home : rand.weighted(citiesOf(home.warehouse), (c) => c.weight)
        : rand.weighted(CITIES, (c) => c.weight);

    const p = rand.float();
    const pricelist =
      p < 0.02 ? null
        : p < 0.1 ? PRICELISTS.indexOf(rand.pick(PRICELISTS)) + 1
          : PRICELISTS.findIndex((l) => l.code === shop.pricelist) + 1;

    const horeca = shop.pricelist === 'HORECA';
    const limit = shop.type === 'wholesale' ? rand.int(10, 60) * 5000 : horeca ? rand.int(10, 80) * 1000 : rand.int(2, 30) * 1000;
    const b = rand.float();
    const balance = b < 0.1 ? 0 : b < 0.25 ? -rand.int(0, 200_000) : rand.int(0, limit * 90);

    rows.push({
      id,
      code: `C${String(id).padStart(5, '0')}`,
      name: name[0],
      name_ar: name[1],
      phone: phones.next(),
      email: rand.chance(0.4) ? `${slug(name[0])}.${id}@example.com` : null,
      address: `${rand.int(1, 9999)} ${rand.pick(STREETS)}, ${district[0]}, ${city.en}`,
      city: city.en,
      type: shop.type,
      pricelist_id: pricelist,
      salesman_id: salesman ? salesman.id : null,
      credit_limit: money(limit * 100),
      balance: money(balance),
      allow_backorder: rand.chance(0.1),
      is_active: rand.chance(0.97),
    });
  }
  return rows;
}

/**
 * The demo logins: admin, manager, salesman1..N (salesmanK is the K-th salesman), one
 * client app user on the first active client with a pricelist, warehouse and driver.
 * Their claims are what the demo config's roles need (salesmanId, clientId).
 */
export function buildUsers(salesmen: readonly SalesmanRow[], clients: readonly ClientRow[], createdAt: string): DemoUserRow[] {
  const client = clients.find((c) => c.pricelist_id !== null && c.is_active);
  if (!client) throw new Error('seed: no active client with a pricelist for client@demo.test');
  const rows: Omit<DemoUserRow, 'id' | 'is_active' | 'created_at'>[] = [
    { email: 'admin@demo.test', role: 'admin', display_name: 'Demo Admin', claims: {} },
    { email: 'manager@demo.test', role: 'manager', display_name: 'Sales Manager', claims: {} },
    ...salesmen.map((s, i) => ({
      email: `salesman${i + 1}@demo.test`,
      role: 'salesman' as const,
      display_name: s.name,
      claims: { salesmanId: s.id },
    })),
    { email: 'client@demo.test', role: 'client_app', display_name: client.name, claims: { clientId: client.id } },
    { email: 'warehouse@demo.test', role: 'warehouse', display_name: 'Warehouse Keeper', claims: {} },
    { email: 'driver@demo.test', role: 'driver', display_name: 'Delivery Driver', claims: {} },
  ];
  return rows.map((u, i) => ({ id: i + 1, ...u, is_active: true, created_at: createdAt }));
}
