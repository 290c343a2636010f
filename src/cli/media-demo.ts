/**
 * `npm run media:demo`: draws the demo product images in media/demo/ (flat shapes made
 * here with sharp from SVG: no photographs, no third-party content). Run once; the files
 * are committed.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import sharp from 'sharp';

const items = [
  { name: 'water', bg: '#d6eaf8', body: '#3498db', shape: 'bottle' },
  { name: 'juice', bg: '#fdebd0', body: '#e67e22', shape: 'carton' },
  { name: 'milk', bg: '#f4f6f7', body: '#5d6d7e', shape: 'carton' },
  { name: 'rice', bg: '#fcf3cf', body: '#b7950b', shape: 'sack' },
  { name: 'dates', bg: '#f6ddcc', body: '#6e2c00', shape: 'box' },
  { name: 'oil', bg: '#fef9e7', body: '#d4ac0d', shape: 'bottle' },
  { name: 'soap', bg: '#e8f8f5', body: '#17a589', shape: 'box' },
  { name: 'tea', bg: '#fadbd8', body: '#922b21', shape: 'can' },
] as const;

const shapes: Record<string, (c: string) => string> = {
  bottle: (c) => `<rect x="330" y="140" width="140" height="90" rx="20" fill="${c}"/><rect x="250" y="220" width="300" height="480" rx="60" fill="${c}"/>`,
  carton: (c) => `<polygon points="250,260 400,140 550,260" fill="${c}" opacity="0.8"/><rect x="250" y="260" width="300" height="440" fill="${c}"/>`,
  sack: (c) => `<path d="M230 240 Q400 160 570 240 L600 700 Q400 760 200 700 Z" fill="${c}"/>`,
  box: (c) => `<rect x="180" y="260" width="440" height="360" rx="16" fill="${c}"/><rect x="180" y="260" width="440" height="70" fill="#000" opacity="0.15"/>`,
  can: (c) => `<rect x="270" y="200" width="260" height="460" rx="40" fill="${c}"/><ellipse cx="400" cy="205" rx="130" ry="30" fill="#000" opacity="0.2"/>`,
};

await mkdir('media/demo', { recursive: true });
for (const [i, it] of items.entries()) {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="800" height="800"><rect width="800" height="800" fill="${it.bg}"/>${shapes[it.shape]!(it.body)}<rect x="300" y="420" width="200" height="90" rx="10" fill="#fff" opacity="0.85"/></svg>`;
  const img = sharp(Buffer.from(svg));
  const file = `media/demo/${String(i + 1).padStart(2, '0')}-${it.name}.${i % 2 ? 'png' : 'jpg'}`;
  await writeFile(file, await (i % 2 ? img.png({ compressionLevel: 9, palette: true }) : img.jpeg({ quality: 80, mozjpeg: true })).toBuffer());
  console.log(file);
}
