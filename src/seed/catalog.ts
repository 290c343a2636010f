import { FOOD } from './catalog-food.js';
import { HOME } from './catalog-home.js';
import type { SubcategorySpec, TopCategorySpec } from './catalog-spec.js';
import type { Rand } from './random.js';
import type { CategoryRow, PricelistRow, PriceRow, ProductRow, StockRow, WarehouseRow } from './rows.js';
import { arabicDigits, ean13CheckDigit, money, parseSize, piecesAr, type Size } from './text.js';
import { BRANDS, EDITIONS, PRICELISTS, UNIT_AR, type Brand } from './vocabulary.js';

export const TOP_CATEGORIES: readonly TopCategorySpec[] = [...FOOD, ...HOME];

/** A subcategory with its vocabulary resolved: products hang off these. */
export interface Leaf {
  id: number;
  top: TopCategorySpec;
  spec: SubcategorySpec;
  sizes: Size[];
  brands: Brand[];
}

/** The fixed category tree (the same ~200 categories at every scale) and its leaves. */
export function buildCategories(): { rows: CategoryRow[]; leaves: Leaf[] } {
  const rows: CategoryRow[] = [];
  const leaves: Leaf[] = [];
  TOP_CATEGORIES.forEach((top, i) => {
    rows.push({ id: i + 1, parent_id: null, name: top.en, name_ar: top.ar, sort_order: (i + 1) * 10, is_active: true });
  });
  let id = TOP_CATEGORIES.length;
  TOP_CATEGORIES.forEach((top, i) => {
    const brands = BRANDS.filter((b) => b.tops.includes(top.code));
    if (brands.length < 3) throw new Error(`seed vocabulary: too few brands for ${top.code}`);
    top.subs.forEach((spec, j) => {
      id += 1;
      rows.push({ id, parent_id: i + 1, name: spec.en, name_ar: spec.ar, sort_order: (j + 1) * 10, is_active: true });
      leaves.push({ id, top, spec, sizes: spec.sizes.map(parseSize), brands });
    });
  });
  return { rows, leaves };
}

/** Index-aligned with `rows` (product id = index + 1): facts later generators need. */
export interface Catalog {
  rows: ProductRow[];
  top: string[];
  /** base price in halalas */
  base: number[];
}

interface Combo {
  brand: number;
  item: number;
  size: number;
  pack: number;
}

/** Multipacks a distributor sells a size in: small items by the carton, big ones by fours. */
function packsFor(size: Size): number[] {
  if (size.counted) return [1, 3, 6];
  if (size.amount <= 400) return [1, 6, 12, 24];
  if (size.amount <= 1100) return [1, 6, 12];
  if (size.amount <= 2500) return [1, 4, 6];
  return [1, 4];
}

function combosOf(leaf: Leaf): Combo[] {
  const out: Combo[] = [];
  leaf.brands.forEach((_, brand) =>
    leaf.spec.items.forEach((_, item) =>
      leaf.sizes.forEach((s, size) => packsFor(s).forEach((pack) => out.push({ brand, item, size, pack }))),
    ),
  );
  return out;
}

/**
 * Splits `total` over leaves in proportion to how many distinct products each can make,
 * at least one each (largest remainder, so the sum is exact and no leaf exceeds its cap).
 */
function allocate(total: number, caps: readonly number[]): number[] {
  const capSum = caps.reduce((a, b) => a + b, 0);
  if (total > capSum) throw new Error(`seed: ${total} products asked, the vocabulary makes at most ${capSum}`);
  const rest = total - caps.length;
  const restCap = capSum - caps.length;
  const raw = caps.map((c) => (restCap === 0 ? 0 : (rest * (c - 1)) / restCap));
  const out = raw.map((r) => 1 + Math.floor(r));
  let left = total - out.reduce((a, b) => a + b, 0);
  const order = raw.map((r, i) => [r - Math.floor(r), i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (const [, i] of order) {
    if (left === 0) break;
    out[i] = (out[i] ?? 0) + 1;
    left -= 1;
  }
  return out;
}

/** SAR -> halalas at shelf-price steps: 0.25 below 20, 0.50 below 100, whole riyals above. */
function shelfPrice(sar: number): number {
  const step = sar < 20 ? 25 : sar < 100 ? 50 : 100;
  return Math.max(step, Math.round((sar * 100) / step) * step);
}

export function buildProducts(rand: Rand, leaves: readonly Leaf[], count: number): Catalog {
  if (count < leaves.length) throw new Error(`seed: at least ${leaves.length} products (one per category)`);
  const combos = leaves.map(combosOf);
  const quotas = allocate(count, combos.map((c) => c.length * EDITIONS.length));
  const made: { row: Omit<ProductRow, 'id' | 'sku'>; top: string; base: number }[] = [];
  const barcodes = new Set<string>();

  leaves.forEach((leaf, li) => {
    const base = rand.shuffle([...(combos[li] ?? [])]);
    const quota = quotas[li] ?? 0;
    const picked: [Combo, number][] = base.slice(0, quota).map((c) => [c, 0]);
    // Editions ("Value Pack", ...) only when a large scale runs out of plain combinations.
    for (let e = 1; picked.length < quota; e++) {
      const more = rand.shuffle([...base]).slice(0, quota - picked.length);
      picked.push(...more.map((c): [Combo, number] => [c, e]));
    }
    const itemFactor = leaf.spec.items.map(() => rand.between(0.9, 1.2));
    const ref = leaf.sizes[0]?.amount ?? 1;
    for (const [combo, edition] of picked) {
      const brand = leaf.brands[combo.brand] as Brand;
      const [itemEn, itemAr] = leaf.spec.items[combo.item] ?? ['', ''];
      const size = leaf.sizes[combo.size] as Size;
      const [edEn, edAr] = EDITIONS[edition] ?? ['', ''];
      const pack = combo.pack;
      const unit = pack === 1 ? leaf.spec.unit : pack <= 6 ? 'pack' : 'carton';
      const each =
        leaf.spec.price * (size.amount / ref) ** 0.85 * brand.tier * (itemFactor[combo.item] ?? 1) * rand.between(0.94, 1.06);
      const price = shelfPrice(each * pack * (pack >= 12 ? 0.93 : pack > 1 ? 0.97 : 1) * (edition ? 0.95 : 1));
      let barcode: string;
      do {
        const first12 = `628${rand.digits(9)}`;
        barcode = `${first12}${ean13CheckDigit(first12)}`;
      } while (barcodes.has(barcode));
      barcodes.add(barcode);
      const packEn = pack > 1 ? ` x ${pack}` : '';
      const packAr = pack > 1 ? ` × ${arabicDigits(String(pack))}` : '';
      made.push({
        top: leaf.top.code,
        base: price,
        row: {
          barcode,
          name: `${brand.en} ${itemEn} ${size.en}${packEn}${edEn ? ` ${edEn}` : ''}`,
          name_ar: `${brand.ar} ${itemAr} ${size.ar}${packAr}${edAr ? ` - ${edAr}` : ''}`,
          description:
            `${itemEn} from ${brand.en}, ${size.en} ${leaf.spec.unit}.` +
            (pack > 1 ? ` Sold as a ${unit} of ${pack}.` : '') +
            ` ${leaf.top.hint[0]}`,
          description_ar:
            `${itemAr} من ${brand.ar}، ${UNIT_AR[leaf.spec.unit] ?? ''} ${size.ar}.` +
            (pack > 1 ? ` يباع ${UNIT_AR[unit] ?? ''} ${piecesAr(pack)}.` : '') +
            ` ${leaf.top.hint[1]}`,
          category_id: leaf.id,
          unit,
          pack_size: pack,
          base_price: money(price),
          is_active: rand.chance(0.985),
        },
      });
    }
  });

  // Ids in catalog order would group by category; an ERP adds products over the years.
  rand.shuffle(made);
  const serial = new Map<string, number>();
  const catalog: Catalog = { rows: [], top: [], base: [] };
  made.forEach((p, i) => {
    const n = (serial.get(p.top) ?? 0) + 1;
    serial.set(p.top, n);
    catalog.rows.push({ id: i + 1, sku: `${p.top}-${String(n).padStart(6, '0')}`, ...p.row });
    catalog.top.push(p.top);
    catalog.base.push(p.base);
  });
  return catalog;
}

export function buildPricelists(): PricelistRow[] {
  return PRICELISTS.map((p, i) => ({ id: i + 1, code: p.code, name: p.name, name_ar: p.name_ar, currency: 'SAR', is_active: true }));
}

/** Price rows, and a lookup: `table[pricelistIndex][productId]` in halalas, -1 when not listed. */
export function buildPrices(rand: Rand, catalog: Catalog): { rows: PriceRow[]; table: Int32Array[] } {
  const rows: PriceRow[] = [];
  const table = PRICELISTS.map((spec, li) => {
    const prices = new Int32Array(catalog.rows.length + 1).fill(-1);
    catalog.rows.forEach((product, i) => {
      if (spec.excludes.includes(catalog.top[i] ?? '')) return;
      const halalas = Math.round((catalog.base[i] ?? 0) * spec.factor * rand.between(0.97, 1.03));
      prices[product.id] = halalas;
      rows.push({ id: rows.length + 1, pricelist_id: li + 1, product_id: product.id, price: money(halalas) });
    });
    return prices;
  });
  return { rows, table };
}

/** Every product in every warehouse; discontinued products and ~7% of the rest are out of stock. */
export function buildStock(rand: Rand, catalog: Catalog, warehouses: readonly WarehouseRow[]): StockRow[] {
  const rows: StockRow[] = [];
  for (const product of catalog.rows) {
    for (const wh of warehouses) {
      const qty = !product.is_active || rand.chance(0.07) ? 0 : 1 + Math.floor(499 * rand.float() ** 1.6);
      rows.push({ id: rows.length + 1, product_id: product.id, warehouse_id: wh.id, qty, reserved: 0 });
    }
  }
  return rows;
}
