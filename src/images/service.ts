import pLimit from 'p-limit';
import type { Db } from '../db/pg.js';
import { AppError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { Storage } from '../storage/s3.js';
import { IMMUTABLE, PRESETS_VERSION } from './presets.js';
import { processImage } from './process.js';

export interface MediaOptions {
  maxPixels: number;
  concurrency: number;
  /** 'cdn': baseUrl + key; 'presigned': short-lived S3 URLs; 'proxy': served by this app at /v1/media/<key> */
  urlMode: 'cdn' | 'presigned' | 'proxy';
  baseUrl: string | undefined;
  presignSeconds: number;
}

export interface StoredVariant {
  key: string;
  type: string;
  bytes: number;
  sha256: string;
  width: number;
  height: number;
}

export interface ImageInfo {
  productId: number;
  key: string;
  width: number;
  height: number;
  placeholder: string;
  variants: Record<string, StoredVariant>;
  unchanged: boolean;
}

const variantId = (name: string, ext: string) => (ext === 'webp' ? name : `${name}_${ext}`);

/**
 * Product images: bytes -> validated -> variants on S3 -> the product row, in that order.
 * The row switches to the new image only after every variant is stored; if a write
 * fails, whatever was written is removed and the old image stays. The same bytes again
 * are a no-op (content-addressed keys). Image work runs with a concurrency limit so
 * uploads cannot starve sync requests of CPU.
 */
export class MediaService {
  private readonly limit;

  constructor(
    private readonly db: Db,
    private readonly storage: Storage,
    private readonly opts: MediaOptions,
    private readonly log: Logger,
    private readonly onChange: (productId: number, thumb: string) => void = () => undefined,
  ) {
    this.limit = pLimit(opts.concurrency);
  }

  upload(productId: number, bytes: Buffer): Promise<ImageInfo> {
    return this.limit(async () => {
      const product = await this.db.oneOrNone<{ image_key: string | null; image_variants: Record<string, StoredVariant> | null; image_width: number; image_height: number; image_placeholder: string }>(
        'SELECT image_key, image_variants, image_width, image_height, image_placeholder FROM products WHERE id = $1',
        [productId],
      );
      if (!product) throw new AppError('not-found', `no product ${productId}`);
      const img = await processImage(bytes, this.opts.maxPixels);
      const prefix = `products/${productId}/${img.hash.slice(0, 16)}-${PRESETS_VERSION}`;
      if (product.image_key === prefix && product.image_variants) {
        return { productId, key: prefix, width: product.image_width, height: product.image_height, placeholder: product.image_placeholder, variants: product.image_variants, unchanged: true };
      }

      const writes = [
        ...img.variants.map((v) => ({ key: `${prefix}/${v.name}.${v.ext}`, body: v.body, type: v.contentType, cache: IMMUTABLE })),
        { key: `${prefix}/original`, body: bytes, type: `image/${img.format}`, cache: 'private, no-store' },
      ];
      const settled = await Promise.allSettled(writes.map((w) => this.storage.put(w.key, w.body, w.type, w.cache)));
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) {
        await this.storage.remove(writes.map((w) => w.key)).catch((err: unknown) => this.log.warn({ err, prefix }, 'could not remove a half-written image'));
        this.log.warn({ err: failed.reason, productId }, 'image upload failed at the store');
        throw new AppError('unavailable', 'the image store is unavailable; nothing was changed');
      }

      const variants: Record<string, StoredVariant> = {};
      for (const v of img.variants) {
        variants[variantId(v.name, v.ext)] = { key: `${prefix}/${v.name}.${v.ext}`, type: v.contentType, bytes: v.body.length, sha256: v.sha256, width: v.width, height: v.height };
      }
      await this.db.tx('image switch', async (t) => {
        const old = await t.one<{ image_key: string | null }>('SELECT image_key FROM products WHERE id = $1 FOR UPDATE', [productId]);
        await t.none(
          `UPDATE products SET image_key = $2, image_width = $3, image_height = $4, image_placeholder = $5, image_variants = $6, image_updated_at = now()
            WHERE id = $1`,
          [productId, prefix, img.width, img.height, img.placeholder, variants],
        );
        if (old.image_key && old.image_key !== prefix) {
          await t.none(
            `INSERT INTO media_garbage (prefix, product_id) VALUES ($1, $2) ON CONFLICT (prefix) DO UPDATE SET replaced_at = now()`,
            [old.image_key, productId],
          );
        }
        await t.none('DELETE FROM media_garbage WHERE prefix = $1', [prefix]); // an old image uploaded again
      });
      this.onChange(productId, await this.url(variants.thumb!.key));
      return { productId, key: prefix, width: img.width, height: img.height, placeholder: img.placeholder, variants, unchanged: false };
    });
  }

  /** Where a phone fetches a key from. */
  url(key: string): Promise<string> | string {
    if (this.opts.urlMode === 'cdn') return `${this.opts.baseUrl!.replace(/\/$/, '')}/${key}`;
    if (this.opts.urlMode === 'presigned') return this.storage.presign(key, this.opts.presignSeconds);
    return `/v1/media/${key}`;
  }

  /**
   * Deletes replaced images once their grace period is over and no product points at
   * them any more (a device that synced the old row can still fetch it meanwhile).
   */
  async cleanup(graceHours: number): Promise<number> {
    const due = await this.db.any<{ prefix: string }>(
      `SELECT g.prefix FROM media_garbage g
        WHERE g.replaced_at < now() - make_interval(hours => $1)
          AND NOT EXISTS (SELECT 1 FROM products p WHERE p.image_key = g.prefix)
        LIMIT 500`,
      [graceHours],
    );
    for (const { prefix } of due) {
      await this.storage.remove(['thumb.webp', 'thumb.jpg', 'detail.webp', 'zoom.webp', 'original'].map((k) => `${prefix}/${k}`));
      await this.db.none('DELETE FROM media_garbage WHERE prefix = $1', [prefix]);
    }
    return due.length;
  }

  /** Rebuilds every product's variants from its stored original (after a preset change). */
  async regenerate(onProgress: (done: number, total: number) => void = () => undefined): Promise<number> {
    const rows = await this.db.any<{ id: number; image_key: string }>('SELECT id, image_key FROM products WHERE image_key IS NOT NULL ORDER BY id');
    let done = 0;
    await Promise.all(
      rows.map(async (r) => {
        const original = await this.storage.get(`${r.image_key}/original`);
        const bytes = Buffer.from(await original.Body!.transformToByteArray());
        await this.upload(r.id, bytes); // a preset change gives new keys; the old ones become garbage
        onProgress(++done, rows.length);
      }),
    );
    return rows.length;
  }
}
