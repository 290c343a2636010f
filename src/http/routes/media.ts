import type { Readable } from 'node:stream';
import type { Context } from 'koa';
import { AppError } from '../../errors.js';
import { presets } from '../../images/presets.js';
import { ROW_SEGMENT, type MediaService } from '../../images/service.js';
import { conditionalHeaders } from '../../protocol/system.js';
import { imageParams, manifestAnswer, manifestQuery, mediaFileParams, uploadAnswer } from '../../protocol/media.js';
import type { Model } from '../../model/model.js';
import type { Storage } from '../../storage/s3.js';
import type { Heads } from '../../sync/heads.js';
import { readUpload } from '../body.js';
import { route, type Route } from '../route.js';

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
  const uploaded = {
    200: { description: 'the row already had these exact bytes: nothing changed', schema: uploadAnswer },
    201: { description: "the image is stored, its variants made, and the row's image switched (it syncs like any change)", schema: uploadAnswer },
  };
  const uploadErrors = ['unsupported-image', 'unprocessable', 'not-found', 'multipart-malformed'] as const;
  const image = { type: 'string', contentMediaType: 'image/*' };
  return [
    route({
      method: 'POST',
      path: `/v1/admin/${collection}/:id/image`,
      tag: 'media',
      summary: `Upload a ${collection} row's image (multipart)`,
      description: `JPEG, PNG, WebP (HEIC/AVIF where sharp supports them; the bytes decide, not the name or Content-Type) up to MEDIA_MAX_BYTES and MEDIA_MAX_PIXELS, in the multipart field \`image\`. The variants (${presets.map((p) => p.name).join(', ')}) are made with sharp and stored; the row's media columns switch to them and sync like any change; sockets in the row's bucket rooms get \`catalog:image\`.`,
      auth: { permission: 'media:write' },
      params: imageParams,
      rawBody: {
        description: 'the image in the field `image`',
        content: { 'multipart/form-data': { schema: { type: 'object', properties: { image: { type: 'string', contentMediaType: 'application/octet-stream' } }, required: ['image'] } } },
      },
      responses: uploaded,
      errors: uploadErrors,
      async handler({ params, ctx }) {
        if (!ctx.is('multipart/form-data')) throw new AppError('unsupported-media-type', 'send multipart/form-data with the image in the field "image" (or PUT the raw bytes)');
        return upload(ctx, params.id);
      },
    }),
    route({
      method: 'PUT',
      path: `/v1/admin/${collection}/:id/image`,
      tag: 'media',
      summary: `Upload a ${collection} row's image (raw bytes)`,
      description: 'The same as the POST form, with the image as the whole body (any Content-Type; the bytes decide the format).',
      auth: { permission: 'media:write' },
      params: imageParams,
      rawBody: { description: 'the image bytes', content: { 'application/octet-stream': { schema: image }, 'image/*': { schema: image } } },
      responses: uploaded,
      errors: uploadErrors,
      async handler({ params, ctx }) {
        return upload(ctx, params.id);
      },
    }),
    route({
      method: 'GET',
      path: '/v1/media/manifest',
      tag: 'media',
      summary: 'Images to prefetch for offline use',
      description: 'Every image in (batch, row) order, keyset-paginated: keep the last `cursor` and ask again later for new images only.',
      auth: 'any',
      query: manifestQuery,
      responses: { 200: { description: 'a page of images', schema: manifestAnswer } },
      async handler({ query }) {
        const page = await media.manifest({ after: query.cursor, limit: query.limit, below: heads.watermark });
        return { body: page, headers: { 'Cache-Control': 'private, no-cache' } };
      },
    }),
    route({
      method: 'GET',
      path: `/v1/media/${collection}/:row/:version/:file`,
      tag: 'media',
      summary: 'An image file (public, immutable)',
      description: `Content-addressed (a new image is a new URL), for deployments without a CDN; the URLs come from the pull rows' media columns, \`catalog:image\` and the manifest. Files: ${[...FILES].join(', ')}.`,
      auth: 'public',
      params: mediaFileParams,
      headers: conditionalHeaders,
      responses: {
        200: { description: 'the image bytes', contentType: 'image/*', headers: ['ETag', 'Cache-Control'] },
        304: { description: 'the cached file is current', headers: ['ETag'] },
      },
      errors: ['not-found'],
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
