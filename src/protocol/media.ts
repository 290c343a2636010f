import { z } from 'zod';
import { wireId } from './sync.js';
import { isSeqText } from './values.js';

/**
 * Images of the sync config's media collection: upload answers, the offline prefetch
 * manifest and its cursor, and the image file URLs.
 */

/** the row id in an admin image URL; its form (integer, UUID, text) is checked by the media service */
export const imageParams = z.strictObject({ id: z.string().min(1).max(200).meta({ description: "the row's key: a positive integer, a UUID or text, as the collection's key is" }) });

/** A position in the manifest: the last item served, in (batch, row key) order. */
export interface ManifestPosition {
  /** the indexing batch that published the image */
  seq: string;
  rowKey: string;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** `<batch>.<row key as base64url>`: the position after the last item served. */
export function encodeManifestCursor(p: ManifestPosition): string {
  return `${p.seq}.${Buffer.from(p.rowKey, 'utf8').toString('base64url')}`;
}

/** The position a cursor names, or undefined when it is not one this server made. */
export function decodeManifestCursor(cursor: string): ManifestPosition | undefined {
  const m = /^([0-9]{1,20})\.([A-Za-z0-9_-]{0,1400})$/.exec(cursor);
  if (!m || !isSeqText(m[1]!)) return undefined;
  const bytes = Buffer.from(m[2]!, 'base64url');
  if (bytes.toString('base64url') !== m[2]) return undefined; // not canonical: altered
  let rowKey: string;
  try {
    rowKey = utf8.decode(bytes);
  } catch {
    return undefined;
  }
  return rowKey.includes('\u0000') ? undefined : { seq: m[1]!, rowKey };
}

export const manifestQuery = z.strictObject({
  cursor: z
    .string()
    .transform((cursor, ctx) => {
      const position = decodeManifestCursor(cursor);
      if (!position) ctx.addIssue({ code: 'custom', message: 'a cursor from an earlier answer' });
      return position ?? z.NEVER;
    })
    .optional()
    .meta({ description: 'the `cursor` of the previous answer (absent: from the start)' }),
  limit: z.coerce.number().int().min(1).max(1000).default(500),
});

export const storedVariant = z
  .object({
    key: z.string().meta({ description: 'the object key in the image store' }),
    type: z.string().meta({ example: 'image/webp' }),
    bytes: z.number().int(),
    sha256: z.string(),
    width: z.number().int(),
    height: z.number().int(),
  })
  .meta({ id: 'ImageVariant' });
export type StoredVariant = z.output<typeof storedVariant>;

export const imageInfo = z
  .object({
    collection: z.string(),
    id: wireId.meta({ description: "the row's wire id, as in pull" }),
    key: z.string().meta({ description: 'the image version: <collection>/<row>/<hash>' }),
    width: z.number().int(),
    height: z.number().int(),
    placeholder: z.string().meta({ description: 'ThumbHash, base64: show it until the thumb loads' }),
    variants: z.record(z.string(), storedVariant),
    unchanged: z.boolean().meta({ description: 'the row already had these exact bytes (answered 200, nothing changed)' }),
  })
  .meta({ id: 'ImageInfo' });
export type ImageInfo = z.output<typeof imageInfo>;

export const uploadAnswer = z.object({ image: imageInfo }).meta({ id: 'ImageUploaded' });

export const manifestItem = z
  .object({
    id: wireId,
    placeholder: z.string(),
    variants: z.record(
      z.string(),
      z.object({ url: z.string().meta({ description: 'absolute (a CDN or presigned S3 URL) or relative to the server' }), type: z.string(), bytes: z.number().int(), sha256: z.string(), width: z.number().int(), height: z.number().int() }),
    ),
  })
  .meta({ id: 'ManifestItem' });
export type ManifestItem = z.output<typeof manifestItem>;

export const manifestAnswer = z
  .object({
    items: z.array(manifestItem),
    cursor: z.string().meta({ description: 'pass it back for the next page (also after hasMore false: later images)' }),
    hasMore: z.boolean(),
  })
  .meta({ id: 'MediaManifest' });

/** GET /v1/media/{collection}/{row}/{version}/{file}: public, immutable. */
export const mediaFileParams = z.strictObject({ row: z.string().max(1400), version: z.string().max(64), file: z.string().max(64) });
