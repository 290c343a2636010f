import { z } from 'zod';
import type { SnapshotService } from '../../cache/snapshots.js';
import { AppError } from '../../errors.js';
import type { PullAnswer, PullService } from '../../sync/pull.js';
import { route, type RouteReply } from '../route.js';

export interface PullLimits {
  defaultLimit: number;
  maxLimit: number;
}

/** The pull request, as a POST body or a GET query string. */
export function pullInput(limits: PullLimits) {
  return z.strictObject({
    cursor: z.string().min(1).max(16_384).optional(),
    app: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'an app name of the sync config').optional(),
    limit: z.coerce.number().int().min(1).max(limits.maxLimit).default(limits.defaultLimit),
  });
}

/** Headers, ETag and 304 of a pull answer: shared by the route and the fast lane. */
export function pullReply(answer: PullAnswer, method: string, ifNoneMatch: string): RouteReply {
  const etag = answer.etag;
  const headers = {
    ETag: etag,
    'Cache-Control': 'private, no-cache',
    Vary: 'Authorization, Accept-Encoding',
    'Content-Type': 'application/json; charset=utf-8',
  };
  if (method === 'GET' && ifNoneMatch.split(/\s*,\s*/).includes(etag)) return { status: 304, headers };
  return { body: answer.body, headers };
}

/**
 * POST /v1/sync/pull {cursor?, app?, limit?} and the same as GET with a query string,
 * which an HTTP cache can keep: both carry an ETag; GET answers 304 to If-None-Match.
 */
const pageQuery = z.strictObject({ exp: z.coerce.number().int().positive().max(2 ** 40), sig: z.string().min(1).max(64) });
/** a bucket name, a snapshot id (16 base64url characters) and a page number */
const pageParams = z.strictObject({
  bucket: z.string().min(1).max(240),
  id: z.string().regex(/^[\w-]{1,64}$/, 'a snapshot id'),
  page: z.coerce.number().int().min(0).max(1_000_000),
});

export function syncRoutes(pulls: PullService, limits: PullLimits, snapshots?: SnapshotService) {
  const input = pullInput(limits);
  const handle = async (
    principal: Parameters<PullService['pull']>[0]['principal'],
    args: z.output<typeof input>,
    method: string,
    ifNoneMatch: string,
  ): Promise<RouteReply> => pullReply(await pulls.pull({ principal, ...args }), method, ifNoneMatch);
  return [
    route({
      method: 'POST',
      path: '/v1/sync/pull',
      auth: 'any',
      body: input,
      idempotent: true, // a read, though a POST
      handler: ({ principal, body }) => handle(principal!, body, 'POST', ''),
    }),
    route({
      method: 'GET',
      path: '/v1/sync/pull',
      auth: 'any',
      query: input,
      handler: ({ principal, query, ctx }) => handle(principal!, query, 'GET', ctx.get('if-none-match')),
    }),
    route({
      // The exact stored bytes (gzip, or br for clients that ask): no JSON work, no
      // recompression. Authorized by the signed URL from the pull answer, so a CDN can
      // hold the pages without the bearer token.
      method: 'GET',
      path: '/v1/sync/snapshots/:bucket/:id/:page',
      auth: 'public',
      query: pageQuery,
      params: pageParams,
      async handler({ params, query, ctx }) {
        if (!snapshots) throw new AppError('not-found');
        const enc = ctx.acceptsEncodings('br', 'gzip') === 'br' ? 'br' : 'gzip';
        const { page } = params;
        const bytes = await snapshots.page(params.bucket, params.id, page, query.exp, query.sig, enc);
        if (bytes === 'forbidden') throw new AppError('forbidden', 'the page URL is altered or expired: pull again');
        if (!bytes) throw new AppError('snapshot-gone');
        ctx.compress = false; // already compressed
        const etag = `"${params.id}-${page}-${enc}"`;
        const headers = { ETag: etag, 'Cache-Control': 'public, max-age=31536000, immutable', Vary: 'Accept-Encoding', 'Content-Encoding': enc, 'Content-Type': 'application/json; charset=utf-8' };
        if (ctx.get('if-none-match') === etag) return { status: 304, headers };
        return { body: bytes, headers };
      },
    }),
  ];
}
