import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Db } from '../db/pg.js';
import type { MediaService } from './service.js';

const DEMO_DIR = fileURLToPath(new URL('../../media/demo/', import.meta.url));

/**
 * Gives the first `count` demo products an image (the images of media/demo, in turn),
 * so the embedded mode shows real thumbnails. Goes through the ordinary upload path.
 */
export async function attachDemoImages(db: Db, media: MediaService, count = 24): Promise<number> {
  const files = (await readdir(DEMO_DIR)).filter((f) => /\.(jpg|png)$/.test(f)).sort();
  if (files.length === 0) return 0;
  const images = await Promise.all(files.map((f) => readFile(DEMO_DIR + f)));
  const ids = await db.map('SELECT id FROM products WHERE image_key IS NULL ORDER BY id LIMIT $1', [count], (r: { id: number }) => r.id);
  await Promise.all(ids.map((id, i) => media.upload(id, images[i % images.length]!)));
  return ids.length;
}
