// Formatting shared by the generators: Arabic numerals, pack sizes, money, EAN-13.

const ARABIC_DIGITS = '٠١٢٣٤٥٦٧٨٩';

/** "1.5" -> "١٫٥": Arabic-Indic digits and the Arabic decimal separator. */
export function arabicDigits(text: string): string {
  return text
    .replace(/(\d)\.(\d)/g, '$1٫$2')
    .replace(/\d/g, (d) => ARABIC_DIGITS.charAt(Number(d)));
}

interface UnitWords {
  en: string;
  /** Arabic noun after 11+ (and after measures, which stay singular on labels) */
  ar: string;
  /** Arabic plural after 3..10, for counted things */
  arFew?: string;
  /** grams or millilitres per unit, for comparing sizes; 1 for counted things */
  amount: number;
  counted: boolean;
}

const UNITS: Readonly<Record<string, UnitWords>> = {
  ml: { en: 'ml', ar: 'مل', amount: 1, counted: false },
  L: { en: 'L', ar: 'لتر', amount: 1000, counted: false },
  g: { en: 'g', ar: 'غ', amount: 1, counted: false },
  kg: { en: 'kg', ar: 'كغ', amount: 1000, counted: false },
  m: { en: 'm', ar: 'متر', amount: 1, counted: false },
  pcs: { en: ' pcs', ar: 'حبة', arFew: 'حبات', amount: 1, counted: true },
  bags: { en: ' bags', ar: 'كيس', arFew: 'أكياس', amount: 1, counted: true },
  rolls: { en: ' rolls', ar: 'لفة', arFew: 'لفات', amount: 1, counted: true },
  sheets: { en: ' sheets', ar: 'منديل', arFew: 'مناديل', amount: 1, counted: true },
  tabs: { en: ' tabs', ar: 'قرص', arFew: 'أقراص', amount: 1, counted: true },
};

export interface Size {
  en: string;
  ar: string;
  /** comparable quantity (g, ml, m or count): prices scale with it */
  amount: number;
  counted: boolean;
}

/** '1.5L' -> {en: '1.5L', ar: '١٫٥ لتر', amount: 1500}; throws on vocabulary typos. */
export function parseSize(spec: string): Size {
  const m = /^(\d+(?:\.\d+)?)([A-Za-z]+)$/.exec(spec);
  const unit = m?.[2] ? UNITS[m[2]] : undefined;
  if (!m?.[1] || !unit) throw new Error(`seed vocabulary: bad size "${spec}"`);
  const value = Number(m[1]);
  // Arabic counted nouns take a plural only after 3..10; 1 and 2 need other forms we do not keep.
  if (unit.counted && (value < 3 || !Number.isInteger(value))) {
    throw new Error(`seed vocabulary: counted size "${spec}" must be a whole number >= 3`);
  }
  const noun = unit.counted && value <= 10 ? (unit.arFew ?? unit.ar) : unit.ar;
  return {
    en: `${m[1]}${unit.en}`,
    ar: `${arabicDigits(m[1])} ${noun}`,
    amount: value * unit.amount,
    counted: unit.counted,
  };
}

/** "١٢ حبة" / "٦ حبات": how many items a pack or carton holds. */
export function piecesAr(n: number): string {
  return `${arabicDigits(String(n))} ${n >= 3 && n <= 10 ? 'حبات' : 'حبة'}`;
}

/** Integer halalas -> "12.50" (numeric(14,2) as PostgreSQL reads it). */
export function money(halalas: number): string {
  const sign = halalas < 0 ? '-' : '';
  const abs = Math.abs(halalas);
  return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
}

/** The EAN-13 check digit of the first 12 digits. */
export function ean13CheckDigit(first12: string): number {
  let sum = 0;
  for (let i = 0; i < 12; i++) sum += Number(first12.charAt(i)) * (i % 2 === 0 ? 1 : 3);
  return (10 - (sum % 10)) % 10;
}

/** "al-salam-grocery" */
export function slug(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
}

/** "YYYY-MM-DD" of a UTC epoch millisecond. */
export function isoDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}
