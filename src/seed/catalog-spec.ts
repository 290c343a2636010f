import type { Pair } from './vocabulary.js';

/** A leaf category: what its products are called, how they are sized, what they cost. */
export interface SubcategorySpec {
  en: string;
  ar: string;
  /** the `unit` of one item sold alone (bottle, can, bag, ...); multipacks become pack/carton */
  unit: string;
  /** e.g. ['330ml', '1.5L']: the first is the reference size for `price` */
  sizes: readonly string[];
  /** SAR for one item of the first size from an average brand */
  price: number;
  /** item types; a product is brand + item + size (+ pack) */
  items: readonly Pair[];
}

export interface TopCategorySpec {
  /** SKU prefix, also the key brands list their categories by */
  code: string;
  en: string;
  ar: string;
  /** storage or usage hint closing every description */
  hint: Pair;
  subs: readonly SubcategorySpec[];
}

/**
 * One subcategory in one line: `items` is 'English|عربي; English|عربي'.
 * Compact on purpose: ~190 of these make the catalog tree.
 */
export function sub(en: string, ar: string, unit: string, sizes: string, price: number, items: string): SubcategorySpec {
  return {
    en,
    ar,
    unit,
    sizes: sizes.split(' '),
    price,
    items: items.split(';').map((pair) => {
      const [itemEn, itemAr] = pair.split('|').map((s) => s.trim());
      if (!itemEn || !itemAr) throw new Error(`seed vocabulary: bad item "${pair}" in ${en}`);
      return [itemEn, itemAr] as const;
    }),
  };
}
