import { createHash } from 'node:crypto';
import sharp, { type Metadata, type OutputInfo } from 'sharp';
import { rgbaToThumbHash } from 'thumbhash';
import { AppError } from '../errors.js';
import { acceptedFormats, presets } from './presets.js';

export interface Variant {
  name: string;
  ext: string;
  contentType: string;
  body: Buffer;
  width: number;
  height: number;
  sha256: string;
}

export interface Processed {
  /** sha256 of the uploaded bytes (hex): the content address */
  hash: string;
  format: string;
  width: number;
  height: number;
  /** ThumbHash, base64: a blurred preview a list can render offline before the thumb loads */
  placeholder: string;
  variants: Variant[];
}

/**
 * Validates the bytes and makes every variant. The bytes decide the format; sharp reads
 * the header first (no pixels decoded) so a decompression bomb (tiny file, huge
 * dimensions) is refused before any allocation, and decoding stops at maxPixels.
 * Output is auto-rotated by EXIF, converted to sRGB, and carries no metadata (no GPS).
 */
export async function processImage(bytes: Buffer, maxPixels: number): Promise<Processed> {
  if (bytes.length === 0) throw new AppError('unprocessable', 'the body is empty');
  let meta: Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch {
    throw new AppError('unsupported-image', 'not an image (JPEG, PNG, WebP, HEIC or AVIF)');
  }
  if (!meta.format || !acceptedFormats.has(meta.format)) {
    throw new AppError('unsupported-image', `${meta.format ?? 'this'} images are not accepted: send JPEG, PNG, WebP, HEIC or AVIF`);
  }
  if ((meta.pages ?? 1) > 1) throw new AppError('unsupported-image', 'animated or multi-page images are not accepted');
  const w = meta.width ?? 0;
  const h = meta.height ?? 0;
  if (w * h > maxPixels) throw new AppError('unprocessable', `the image is ${w}x${h}: more than ${maxPixels} pixels`);

  try {
    const base = sharp(bytes, { limitInputPixels: maxPixels, failOn: 'truncated' }).rotate().toColorspace('srgb');
    // EXIF orientations 5-8 turn the picture a quarter: width and height swap
    const turned = (meta.orientation ?? 1) >= 5;
    const variants: Variant[] = [];
    for (const p of presets) {
      let out: { data: Buffer; info: OutputInfo } | undefined;
      for (const quality of p.qualities) {
        const img = base.clone().resize(p.width, p.height, { fit: p.fit, withoutEnlargement: p.fit === 'inside' });
        out = await (p.ext === 'webp' ? img.webp({ quality, effort: 4 }) : img.flatten({ background: '#ffffff' }).jpeg({ quality, mozjpeg: true })).toBuffer({ resolveWithObject: true });
        if (!p.maxBytes || out.data.length <= p.maxBytes) break;
      }
      variants.push({
        name: p.name,
        ext: p.ext,
        contentType: p.contentType,
        body: out!.data,
        width: out!.info.width,
        height: out!.info.height,
        sha256: createHash('sha256').update(out!.data).digest('hex'),
      });
    }
    const small = await base.clone().resize(100, 100, { fit: 'inside' }).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    const placeholder = Buffer.from(rgbaToThumbHash(small.info.width, small.info.height, small.data)).toString('base64');
    return {
      hash: createHash('sha256').update(bytes).digest('hex'),
      format: meta.format,
      width: turned ? h : w,
      height: turned ? w : h,
      placeholder,
      variants,
    };
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw new AppError('unprocessable', `the image cannot be decoded: ${(err as Error).message}`);
  }
}
