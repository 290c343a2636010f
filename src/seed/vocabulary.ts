// Paired English/Arabic vocabulary for the demo data. Names are everyday Saudi ones;
// brands are made up (no real trademarks). Arabic digits are Arabic-Indic throughout
// (text.ts converts generated numbers the same way).

/** [english, arabic] */
export type Pair = readonly [string, string];

export interface Brand {
  en: string;
  ar: string;
  /** price level against the market: 0.8 economy .. 1.3 premium */
  tier: number;
  /** codes of the top-level categories the brand sells in */
  tops: readonly string[];
}

function brand(en: string, ar: string, tier: number, tops: string): Brand {
  return { en, ar, tier, tops: tops.split(' ') };
}

export const BRANDS: readonly Brand[] = [
  brand('Al Waha', 'الواحة', 1.0, 'BEV DAI FRZ BAK'),
  brand('Sahara Gold', 'ذهب الصحراء', 1.2, 'RIC OIL COF SPI SNK'),
  brand('Nakheel', 'النخيل', 1.0, 'BEV SNK RIC BAK CAN'),
  brand('Bayader', 'البيادر', 0.95, 'DAI RIC CAN FRZ BAK'),
  brand('Rimal', 'رمال', 0.85, 'BEV CLN PAP CAN'),
  brand('Al Fursan', 'الفرسان', 0.9, 'RIC OIL CAN SPI FRZ'),
  brand('Najmat Al Sharq', 'نجمة الشرق', 1.05, 'COF SPI CON CAN'),
  brand('Zahrat Al Rabee', 'زهرة الربيع', 1.0, 'CLN PER BAB PAP'),
  brand('Wadi Hanifa', 'وادي حنيفة', 1.1, 'DAI BEV BAK SNK'),
  brand('Al Bustan', 'البستان', 0.95, 'CAN BEV FRZ SNK'),
  brand('Marjan', 'مرجان', 1.15, 'CAN FRZ OIL'),
  brand('Durra', 'درة', 1.1, 'PER CLN BAB'),
  brand('Al Sanabel', 'السنابل', 0.9, 'RIC BAK OIL'),
  brand('Qamar', 'قمر', 1.0, 'CON SNK BEV'),
  brand('Al Khair', 'الخير', 0.8, 'RIC OIL CLN PAP CAN SPI'),
  brand('Taibah', 'طيبة', 1.05, 'COF BAK DAI SPI'),
  brand('Ruba', 'ربى', 1.0, 'DAI BAB PER'),
  brand('Al Majd', 'المجد', 1.25, 'COF OIL SNK CON'),
  brand('Sawsan', 'سوسن', 1.1, 'PER CLN'),
  brand('Jood', 'جود', 0.9, 'BEV SNK CON FRZ'),
  brand('Nesma', 'نسمة', 1.0, 'PAP PER BAB CLN'),
  brand('Al Ghadeer', 'الغدير', 0.95, 'BEV DAI'),
  brand('Falak', 'فلك', 1.0, 'SNK CON FRZ'),
  brand('Hilal', 'هلال', 0.9, 'SPI CAN RIC'),
  brand('Al Dar', 'الدار', 1.0, 'FRZ BAK CAN OIL'),
  brand('Areej', 'أريج', 1.2, 'PER CLN COF'),
  brand('Safwa', 'صفوة', 1.3, 'OIL DAI COF RIC BAK'),
  brand('Lamsa', 'لمسة', 1.1, 'BAB PER PAP'),
  brand('Shams', 'شمس', 0.9, 'OIL BEV SNK'),
  brand('Wafra', 'وفرة', 0.8, 'CLN PAP RIC SPI BAB'),
  brand('Tala', 'تالا', 1.05, 'BAB DAI CON'),
  brand('Misk', 'مسك', 1.3, 'PER COF CON'),
  brand('Ghaima', 'غيمة', 1.0, 'BEV DAI FRZ PAP'),
  brand('Kanz', 'كنز', 1.15, 'SPI SNK CON'),
  brand('Bahja', 'بهجة', 1.0, 'CON BAK BAB'),
  brand('Al Ameer', 'الأمير', 1.2, 'RIC COF SPI'),
  brand('Yusr', 'يسر', 0.85, 'CLN PAP FRZ CAN'),
  brand('Nujoom', 'نجوم', 0.95, 'SNK CON BEV'),
  brand('Mawared', 'موارد', 0.9, 'OIL CAN RIC'),
  brand('Aseel', 'أصيل', 1.25, 'DAI COF BAK SPI'),
  brand('Sidra', 'سدرة', 1.1, 'BAB PER DAI'),
  brand('Tayseer', 'تيسير', 0.85, 'CLN PAP FRZ'),
];

/** Extra product variants, used only when a scale needs more products than the plain combinations give. */
export const EDITIONS: readonly Pair[] = [
  ['', ''],
  ['Value Pack', 'عبوة توفير'],
  ['Family Size', 'حجم عائلي'],
  ['Promo Pack', 'عرض خاص'],
  ['Twin Pack', 'عبوة مزدوجة'],
  ['Ramadan Edition', 'إصدار رمضان'],
];

/** Arabic words for the `unit` column's values, used in descriptions. */
export const UNIT_AR: Readonly<Record<string, string>> = {
  piece: 'حبة', pack: 'عبوة', carton: 'كرتون', bottle: 'عبوة', can: 'علبة', bag: 'كيس',
  box: 'علبة', jar: 'برطمان', tin: 'علبة', tub: 'علبة', tube: 'أنبوب', tray: 'طبق',
  cup: 'كوب', roll: 'لفة',
};

export const FIRST_NAMES: readonly Pair[] = [
  ['Mohammed', 'محمد'], ['Ahmed', 'أحمد'], ['Abdullah', 'عبدالله'], ['Abdulrahman', 'عبدالرحمن'],
  ['Khalid', 'خالد'], ['Faisal', 'فيصل'], ['Saud', 'سعود'], ['Sultan', 'سلطان'], ['Fahad', 'فهد'],
  ['Turki', 'تركي'], ['Nasser', 'ناصر'], ['Omar', 'عمر'], ['Ali', 'علي'], ['Hassan', 'حسن'],
  ['Hussein', 'حسين'], ['Ibrahim', 'إبراهيم'], ['Yousef', 'يوسف'], ['Saleh', 'صالح'], ['Majed', 'ماجد'],
  ['Nawaf', 'نواف'], ['Bandar', 'بندر'], ['Mansour', 'منصور'], ['Waleed', 'وليد'], ['Hamad', 'حمد'],
  ['Ziyad', 'زياد'], ['Rayan', 'ريان'], ['Mishal', 'مشعل'], ['Badr', 'بدر'], ['Abdulaziz', 'عبدالعزيز'],
  ['Talal', 'طلال'], ['Meshari', 'مشاري'], ['Osama', 'أسامة'], ['Tariq', 'طارق'], ['Adel', 'عادل'],
  ['Anas', 'أنس'], ['Hamza', 'حمزة'], ['Rakan', 'راكان'], ['Yazeed', 'يزيد'], ['Saad', 'سعد'],
  ['Ammar', 'عمار'], ['Mazen', 'مازن'], ['Hisham', 'هشام'],
];

export const FAMILY_NAMES: readonly Pair[] = [
  ['Al Otaibi', 'العتيبي'], ['Al Qahtani', 'القحطاني'], ['Al Ghamdi', 'الغامدي'], ['Al Zahrani', 'الزهراني'],
  ['Al Shammari', 'الشمري'], ['Al Dossary', 'الدوسري'], ['Al Harbi', 'الحربي'], ['Al Mutairi', 'المطيري'],
  ['Al Anazi', 'العنزي'], ['Al Shehri', 'الشهري'], ['Al Asmari', 'الأسمري'], ['Al Malki', 'المالكي'],
  ['Al Subaie', 'السبيعي'], ['Al Juhani', 'الجهني'], ['Al Rashidi', 'الرشيدي'], ['Al Yami', 'اليامي'],
  ['Al Sulami', 'السلمي'], ['Al Balawi', 'البلوي'], ['Al Hajri', 'الهاجري'], ['Al Khalidi', 'الخالدي'],
  ['Al Tamimi', 'التميمي'], ['Al Amri', 'العمري'], ['Al Faifi', 'الفيفي'], ['Al Jaber', 'الجابر'],
  ['Al Saleh', 'الصالح'], ['Al Rasheed', 'الرشيد'], ['Al Moussa', 'الموسى'], ['Al Nasser', 'الناصر'],
  ['Al Sheikh', 'الشيخ'], ['Al Omar', 'العمر'], ['Al Fahad', 'الفهد'], ['Al Shahrani', 'الشهراني'],
  ['Al Bishi', 'البيشي'], ['Al Sahli', 'السهلي'], ['Al Qurashi', 'القرشي'], ['Al Hazmi', 'الحازمي'],
  ['Al Sayed', 'السيد'], ['Al Najjar', 'النجار'], ['Al Hamdan', 'الحمدان'], ['Al Obaid', 'العبيد'],
];

/** Words shops are named after ("Al Salam Grocery" / "بقالة السلام"). */
export const SHOP_WORDS: readonly Pair[] = [
  ['Al Rawdah', 'الروضة'], ['Al Salam', 'السلام'], ['Al Noor', 'النور'], ['Al Amal', 'الأمل'],
  ['Al Fajr', 'الفجر'], ['Al Huda', 'الهدى'], ['Al Wafa', 'الوفاء'], ['Al Baraka', 'البركة'],
  ['Al Rahma', 'الرحمة'], ['Al Yasmin', 'الياسمين'], ['Al Zahra', 'الزهراء'], ['Al Andalus', 'الأندلس'],
  ['Al Manar', 'المنار'], ['Al Qimma', 'القمة'], ['Al Diyafa', 'الضيافة'], ['Al Reef', 'الريف'],
  ['Al Sharq', 'الشرق'], ['Al Jazeera', 'الجزيرة'], ['Al Khaleej', 'الخليج'], ['Al Murooj', 'المروج'],
  ['Al Farah', 'الفرح'], ['Al Safa', 'الصفا'], ['Al Marwa', 'المروة'], ['Al Taj', 'التاج'],
  ['Al Dana', 'الدانة'], ['Al Lulu', 'اللؤلؤ'], ['Al Rabie', 'الربيع'], ['Al Bahar', 'البحر'],
  ['Al Qasr', 'القصر'], ['Al Watan', 'الوطن'], ['Al Mustaqbal', 'المستقبل'], ['Al Wadi', 'الوادي'],
  ['Al Nakheel', 'النخيل'], ['Al Sanabel', 'السنابل'], ['Al Ezz', 'العز'], ['Al Jawhara', 'الجوهرة'],
  ['Al Rayah', 'الراية'], ['Al Hilal', 'الهلال'], ['Al Nada', 'الندى'], ['Al Sahab', 'السحاب'],
];

export interface ShopType {
  /** `{n}` is the shop's name */
  en: string;
  ar: string;
  type: 'wholesale' | 'retail';
  /** the pricelist such shops usually buy on */
  pricelist: string;
  weight: number;
}

// Weights give ~30% wholesale and ~70% retail.
export const SHOP_TYPES: readonly ShopType[] = [
  { en: '{n} Provisions', ar: 'تموينات {n}', type: 'wholesale', pricelist: 'WHOLESALE', weight: 12 },
  { en: '{n} Trading Est.', ar: 'مؤسسة {n} التجارية', type: 'wholesale', pricelist: 'WHOLESALE', weight: 8 },
  { en: '{n} Trading Co.', ar: 'شركة {n} للتجارة', type: 'wholesale', pricelist: 'WHOLESALE', weight: 4 },
  { en: '{n} Markets', ar: 'أسواق {n}', type: 'wholesale', pricelist: 'KEY', weight: 4 },
  { en: '{n} Hypermarket', ar: 'هايبر {n}', type: 'wholesale', pricelist: 'KEY', weight: 2 },
  { en: '{n} Grocery', ar: 'بقالة {n}', type: 'retail', pricelist: 'RETAIL', weight: 28 },
  { en: '{n} Mini Market', ar: 'ميني ماركت {n}', type: 'retail', pricelist: 'RETAIL', weight: 10 },
  { en: '{n} Supermarket', ar: 'سوبرماركت {n}', type: 'retail', pricelist: 'RETAIL', weight: 12 },
  { en: '{n} Restaurant', ar: 'مطعم {n}', type: 'retail', pricelist: 'HORECA', weight: 8 },
  { en: '{n} Bakery', ar: 'مخبز {n}', type: 'retail', pricelist: 'HORECA', weight: 6 },
  { en: '{n} Cafeteria', ar: 'كافتيريا {n}', type: 'retail', pricelist: 'HORECA', weight: 6 },
];

export interface PricelistSpec {
  code: string;
  name: string;
  name_ar: string;
  /** price against the product's base price */
  factor: number;
  /** top-level category codes this list does not carry */
  excludes: readonly string[];
}

export const PRICELISTS: readonly PricelistSpec[] = [
  { code: 'RETAIL', name: 'Retail', name_ar: 'أسعار التجزئة', factor: 1.0, excludes: [] },
  { code: 'WHOLESALE', name: 'Wholesale', name_ar: 'أسعار الجملة', factor: 0.9, excludes: [] },
  { code: 'KEY', name: 'Key Accounts', name_ar: 'كبار العملاء', factor: 0.86, excludes: [] },
  { code: 'HORECA', name: 'Horeca', name_ar: 'الفنادق والمطاعم والمقاهي', factor: 0.94, excludes: [] },
  // exports do not carry chilled or frozen goods
  { code: 'EXPORT', name: 'Export', name_ar: 'التصدير', factor: 0.88, excludes: ['DAI', 'FRZ'] },
];

export interface WarehouseSpec {
  code: string;
  name: string;
  name_ar: string;
  city: string;
  /** share of the salesmen who ship from here */
  weight: number;
}

export const WAREHOUSES: readonly WarehouseSpec[] = [
  { code: 'WH-RUH', name: 'Riyadh Central Warehouse', name_ar: 'مستودع الرياض المركزي', city: 'Riyadh', weight: 45 },
  { code: 'WH-JED', name: 'Jeddah Warehouse', name_ar: 'مستودع جدة', city: 'Jeddah', weight: 35 },
  { code: 'WH-DMM', name: 'Dammam Warehouse', name_ar: 'مستودع الدمام', city: 'Dammam', weight: 20 },
];

export interface City {
  en: string;
  ar: string;
  /** the warehouse that serves it */
  warehouse: string;
  weight: number;
}

export const CITIES: readonly City[] = [
  { en: 'Riyadh', ar: 'الرياض', warehouse: 'WH-RUH', weight: 30 },
  { en: 'Buraidah', ar: 'بريدة', warehouse: 'WH-RUH', weight: 5 },
  { en: 'Hail', ar: 'حائل', warehouse: 'WH-RUH', weight: 3 },
  { en: 'Jeddah', ar: 'جدة', warehouse: 'WH-JED', weight: 20 },
  { en: 'Makkah', ar: 'مكة المكرمة', warehouse: 'WH-JED', weight: 8 },
  { en: 'Madinah', ar: 'المدينة المنورة', warehouse: 'WH-JED', weight: 6 },
  { en: 'Taif', ar: 'الطائف', warehouse: 'WH-JED', weight: 3 },
  { en: 'Abha', ar: 'أبها', warehouse: 'WH-JED', weight: 3 },
  { en: 'Dammam', ar: 'الدمام', warehouse: 'WH-DMM', weight: 9 },
  { en: 'Khobar', ar: 'الخبر', warehouse: 'WH-DMM', weight: 6 },
  { en: 'Al Ahsa', ar: 'الأحساء', warehouse: 'WH-DMM', weight: 4 },
  { en: 'Jubail', ar: 'الجبيل', warehouse: 'WH-DMM', weight: 3 },
];

export const DISTRICTS: readonly Pair[] = [
  ['Al Olaya', 'العليا'], ['Al Malaz', 'الملز'], ['Al Naseem', 'النسيم'], ['Al Rawdah', 'الروضة'],
  ['Al Aziziyah', 'العزيزية'], ['Al Safa', 'الصفا'], ['Al Faisaliyah', 'الفيصلية'], ['Al Shati', 'الشاطئ'],
  ['Al Hamra', 'الحمراء'], ['Al Muruj', 'المروج'], ['Al Nahda', 'النهضة'], ['Al Rabwa', 'الربوة'],
  ['Al Khalidiyah', 'الخالدية'], ['Al Salamah', 'السلامة'], ['Al Andalus', 'الأندلس'], ['Al Yarmouk', 'اليرموك'],
];

export const STREETS: readonly string[] = [
  'King Fahd Rd', 'King Abdulaziz Rd', 'Prince Sultan St', 'Olaya St', 'Makkah Rd', 'Al Tahlia St',
  'Prince Mohammed bin Abdulaziz Rd', 'King Khalid St', 'Omar bin Al Khattab St', 'Al Madinah Rd',
  'Abu Bakr Al Siddiq Rd', 'Prince Nayef St',
];

export const ORDER_NOTES: readonly string[] = [
  'Deliver before noon', 'التوصيل قبل الظهر', 'Call before delivery', 'الاتصال قبل التوصيل',
  'Use the back entrance', 'التسليم من الباب الخلفي', 'Cash on delivery', 'الدفع عند الاستلام',
  'Urgent', 'عاجل', 'Deliver after Asr prayer', 'التوصيل بعد صلاة العصر',
];

export const LINE_NOTES: readonly string[] = ['Promo', 'عرض', 'Replacement for damaged item', 'بدل تالف'];
