import type { Readable } from 'node:stream';
import type { Context } from 'koa';
import { z } from 'zod';
import { AppError } from '../../errors.js';
import { presets } from '../../images/presets.js';
import { decodeManifestCursor, ROW_SEGMENT, type MediaService } from '../../images/service.js';
import type { Model } from '../../model/model.js';
import type { Storage } from '../../storage/s3.js';
import type { Heads } from '../../sync/heads.js';
import { readUpload } from '../body.js';
import { route, type Route } from '../route.js';

/** the row id in an admin image URL; its form (integer, UUID, text) is checked by the media service */
const idParams = z.strictObject({ id: z.string().min(1).max(200) });

const manifestQuery = z.strictObject({
  cursor: z
    .string()
    .transform((cursor, ctx) => {
      const position = decodeManifestCursor(cursor);
      if (!position) ctx.addIssue({ code: 'custom', message: 'a cursor from an earlier answer' });
      return position ?? z.NEVER;
    })
    .optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(500),
});

/** The variant files served (the original stays private). */
const FILES = new Set(presets.map((p) => `${p.name}.${p.ext}`));
const VERSION = /^[0-9a-f]{16}-[0-9a-f]{6}$/;

export interface MediaRouteDeps {
  model: Model;
  media: MediaService;
  storage: Storage;
  heads: Heads;
  /** largest upload accepted (413 above) */
  maxBytes: number;
}

/**
 * Images of the sync config's media collection: upload (roles with the media:write
 * permission), the offline prefetch manifest, and the images themselves (immutable,
 * content-addressed) for deployments without a CDN. No routes when the config keeps no
 * images.
 */
export function mediaRoutes({ model, media, storage, heads, maxBytes }: MediaRouteDeps): Route[] {
  const collection = model.media?.collection.name;
  if (collection === undefined) return [];
  // multipart field `image` (browsers, curl -F) or the raw body (PUT, scripts)
  const upload = async (ctx: Context, param: string) => {
    const rowKey = media.parseId(param);
    const bytes = await readUpload(ctx, maxBytes, 'image');
    const info = await media.upload(rowKey, bytes);
    return { status: info.unchanged ? 200 : 201, body: { image: info } };
  };
  return [
    route({
      method: 'POST',
      path: `/v1/admin/${collection}/:id/image`,
      auth: { permission: 'media:write' },
      params: idParams,
      async handler({ params, ctx }) {
        if (!ctx.is('multipart/form-data')) throw new AppError('unsupported-media-type', 'send multipart/form-data with the image in the field "image" (or PUT the raw bytes)');
        return upload(ctx, params.id);
      },
    }),
    route({
      method: 'PUT',
      path: `/v1/admin/${collection}/:id/image`,
      auth: { permission: 'media:write' },
      params: idParams,
      async handler({ params, ctx }) {
        return upload(ctx, params.id);
      },
    }),
    route({
      method: 'GET',
      path: '/v1/media/manifest',
      auth: 'any',
      query: manifestQuery,
      async handler({ query }) {
        const page = await media.manifest({ after: query.cursor, limit: query.limit, below: heads.watermark });
        return { body: page, headers: { 'Cache-Control': 'private, no-cache' } };
      },
    }),
    route({
      method: 'GET',
      path: `/v1/media/${collection}/:row/:version/:file`,
      auth: 'public',
      params: z.strictObject({ row: z.string().max(1400), version: z.string().max(64), file: z.string().max(64) }),
      async handler({ params, ctx }) {
        const { row, version, file } = params;
        if (!ROW_SEGMENT.test(row) || !VERSION.test(version) || !FILES.has(file)) throw new AppError('not-found');
        // content-addressed: a client holding this ETag holds these bytes (no store round trip)
        const etag = `"${version}-${file}"`;
        ctx.set('ETag', etag);
        if (ctx.get('if-none-match') === etag) return { status: 304, headers: { 'Cache-Control': 'public, max-age=31536000, immutable' } };
        const object = await storage.get(`${collection}/${row}/${version}/${file}`).catch((err: { name?: string; $metadata?: { httpStatusCode?: number } }) => {
          if (err.name === 'NoSuchKey' || err.$metadata?.httpStatusCode === 404) throw new AppError('not-found');
          throw new AppError('unavailable', 'the image store is unavailable');
        });
        return {
          body: object.Body as Readable,
          headers: { 'Content-Type': object.ContentType ?? 'application/octet-stream', 'Cache-Control': 'public, max-age=31536000, immutable', ...(object.ContentLength !== undefined && { 'Content-Length': String(object.ContentLength) }) },
        };
      },
    }),
  ];
}
