import { createHash } from 'node:crypto';

/**
 * The image variants, one table (documented in media/README.md). Keys are
 * content-addressed: <collection>/<row>/<sha256 prefix of the uploaded bytes>-<presets version>/<variant>.<ext>
 * (the demo: products/42/...). <row> is the row's key when it is made of letters, digits,
 * '-' and '_' (at most 128), else '~' and a hash of it.
 */
export interface Preset {
  name: string;
  ext: 'webp' | 'jpg';
  contentType: string;
  width: number;
  height: number;
  fit: 'cover' | 'inside';
  /** qualities tried in order until the output fits maxBytes (the last one is kept anyway) */
  qualities: readonly number[];
  maxBytes?: number;
}

export const presets: readonly Preset[] = [
  { name: 'thumb', ext: 'webp', contentType: 'image/webp', width: 200, height: 200, fit: 'cover', qualities: [80, 70, 60, 50, 40, 30, 20], maxBytes: 20_000 },
  { name: 'thumb', ext: 'jpg', contentType: 'image/jpeg', width: 200, height: 200, fit: 'cover', qualities: [75, 60, 45, 30], maxBytes: 20_000 },
  { name: 'detail', ext: 'webp', contentType: 'image/webp', width: 800, height: 800, fit: 'inside', qualities: [80] },
  { name: 'zoom', ext: 'webp', contentType: 'image/webp', width: 1600, height: 1600, fit: 'inside', qualities: [80] },
];

/**
 * A short hash of the presets, part of every key: after a preset change, regenerated
 * variants get new keys, so no CDN ever serves an old rendering under an immutable key.
 */
export const PRESETS_VERSION = createHash('sha256').update(JSON.stringify(presets)).digest('hex').slice(0, 6);

export const IMMUTABLE = 'public, max-age=31536000, immutable';

/** Accepted input formats (sharp's names); the bytes decide, never the file name or Content-Type. */
export const acceptedFormats = new Set(['jpeg', 'png', 'webp', 'heif', 'avif']);
