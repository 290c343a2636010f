import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { MediaService } from './service.js';

const DEMO_DIR = fileURLToPath(new URL('../../media/demo/', import.meta.url));

/**
 * Gives the first `count` rows of the media collection that have no image one (the
 * images of media/demo, in turn), so the embedded mode shows real thumbnails. Goes
 * through the ordinary upload path.
 */
export async function attachDemoImages(media: MediaService, count = 24): Promise<number> {
  const files = (await readdir(DEMO_DIR)).filter((f) => /\.(jpg|png)$/.test(f)).sort();
  if (files.length === 0) return 0;
  const images = await Promise.all(files.map((f) => readFile(DEMO_DIR + f)));
  const rows = await media.rowsWithoutImage(count);
  await Promise.all(rows.map((rowKey, i) => media.upload(rowKey, images[i % images.length]!)));
  return rows.length;
}
