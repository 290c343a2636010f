import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import multer from 'multer';
import getRawBody from 'raw-body';
import { z } from 'zod';
import type { Db } from '../../db/pg.js';
import { AppError } from '../../errors.js';
import type { MediaService, StoredVariant } from '../../images/service.js';
import type { Storage } from '../../storage/s3.js';
import type { Heads } from '../../sync/heads.js';
import { route } from '../route.js';

const productId = z.coerce.number().int().positive();

/** The uploaded bytes: multipart field `image` (browsers) or the raw body (PUT, scripts). */
async function readMultipart(req: IncomingMessage, res: ServerResponse, maxBytes: number): Promise<Buffer> {
  const upload = multer({ storage: multer.memoryStorage(), limits: { fileSize: maxBytes, files: 1, fields: 10, fieldSize: 1024 } }).single('image');
  await new Promise<void>((resolve, reject) => upload(req as never, res as never, (err?: unknown) => (err ? reject(err) : resolve())));
  const file = (req as IncomingMessage & { file?: { buffer: Buffer } }).file;
  if (!file) throw new AppError('validation-failed', 'send multipart/form-data with the image in the field "image"');
  return file.buffer;
}

function uploadError(err: unknown): never {
  const code = (err as { code?: string; type?: string }).code ?? (err as { type?: string }).type;
  if (code === 'LIMIT_FILE_SIZE' || code === 'entity.too.large') throw new AppError('payload-too-large');
  if (err instanceof AppError) throw err;
  if (typeof code === 'string' && code.startsWith('LIMIT_')) throw new AppError('validation-failed', (err as Error).message);
  throw err;
}

const manifestQuery = z.strictObject({
  cursor: z.string().regex(/^\d{1,20}\.\d{1,19}$/, 'a cursor from an earlier answer').optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(500),
});

/**
 * Images: upload (admins and managers), the offline prefetch manifest, and the images
 * themselves (immutable, content-addressed) for deployments without a CDN.
 */
export function mediaRoutes(db: Db, media: MediaService, storage: Storage, heads: Heads, maxBytes: number) {
  const upload = async (id: number, read: () => Promise<Buffer>) => {
    const bytes = await read().catch(uploadError);
    const info = await media.upload(id, bytes);
    return { status: info.unchanged ? 200 : 201, body: { image: info } };
  };
  return [
    route({
      method: 'POST',
      path: '/v1/admin/products/:id/image',
      auth: ['admin', 'manager'],
      async handler({ params, ctx }) {
        const id = productId.parse(params.id);
        if (!ctx.is('multipart/form-data')) throw new AppError('unsupported-media-type', 'send multipart/form-data (or PUT the raw bytes)');
        if (Number(ctx.get('content-length') || 0) > maxBytes + 64 * 1024) throw new AppError('payload-too-large');
        return upload(id, () => readMultipart(ctx.req, ctx.res, maxBytes));
      },
    }),
    route({
      method: 'PUT',
      path: '/v1/admin/products/:id/image',
      auth: ['admin', 'manager'],
      async handler({ params, ctx }) {
        const id = productId.parse(params.id);
        return upload(id, () => getRawBody(ctx.req, { limit: maxBytes, length: ctx.get('content-length') || undefined }));
      },
    }),
    route({
      method: 'GET',
      path: '/v1/media/manifest',
      auth: 'any',
      query: manifestQuery,
      async handler({ query }) {
        // keyset over (transaction, id) below the watermark, like pull: no image change is skipped
        const [tx, after] = query.cursor ? query.cursor.split('.') : ['0', '0'];
        const rows = await db.any<{ id: number; tx: string; image_key: string | null; image_placeholder: string | null; image_variants: Record<string, StoredVariant> | null }>(
          `SELECT id, _tx::text AS tx, image_key, image_placeholder, image_variants FROM products
            WHERE (_tx, id) > ($1::xid8, $2) AND _tx < $3::xid8 AND image_updated_at IS NOT NULL
            ORDER BY _tx, id LIMIT $4`,
          [tx, after, heads.watermark.toString(), query.limit],
        );
        const items = await Promise.all(
          rows.map(async (r) =>
            !r.image_key || !r.image_variants
              ? { productId: r.id, removed: true }
              : {
                  productId: r.id,
                  placeholder: r.image_placeholder,
                  variants: Object.fromEntries(
                    await Promise.all(Object.entries(r.image_variants).map(async ([name, v]) => [name, { url: await media.url(v.key), type: v.type, bytes: v.bytes, sha256: v.sha256, width: v.width, height: v.height }])),
                  ),
                },
          ),
        );
        const last = rows.at(-1);
        const hasMore = rows.length === query.limit;
        const cursor = last ? `${last.tx}.${last.id}` : (query.cursor ?? `${heads.watermark > 0n ? heads.watermark - 1n : 0n}.0`);
        return { body: { items, cursor, hasMore }, headers: { 'Cache-Control': 'private, no-cache' } };
      },
    }),
    route({
      method: 'GET',
      path: '/v1/media/products/:product/:version/:file',
      auth: 'public',
      async handler({ params, ctx }) {
        const key = `products/${params.product}/${params.version}/${params.file}`;
        if (!/^products\/\d+\/[0-9a-f]{16}-[0-9a-f]{6}\/(thumb\.webp|thumb\.jpg|detail\.webp|zoom\.webp)$/.test(key)) throw new AppError('not-found');
        const object = await storage.get(key).catch((err: { name?: string; $metadata?: { httpStatusCode?: number } }) => {
          if (err.name === 'NoSuchKey' || err.$metadata?.httpStatusCode === 404) throw new AppError('not-found');
          throw new AppError('unavailable', 'the image store is unavailable');
        });
        ctx.set('ETag', `"${params.version}-${params.file}"`);
        if (ctx.get('if-none-match') === `"${params.version}-${params.file}"`) return { status: 304 };
        return {
          body: object.Body as Readable,
          headers: { 'Content-Type': object.ContentType ?? 'application/octet-stream', 'Cache-Control': 'public, max-age=31536000, immutable', ...(object.ContentLength !== undefined && { 'Content-Length': String(object.ContentLength) }) },
        };
      },
    }),
  ];
}
