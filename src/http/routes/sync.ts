import type { z } from 'zod';
import type { SnapshotService } from '../../cache/snapshots.js';
import { AppError } from '../../errors.js';
import { pullAnswer, pullInput, snapshotPage, snapshotPageParams, snapshotPageQuery, type PullLimits } from '../../protocol/sync.js';
import type { PullAnswer, PullService } from '../../sync/pull.js';
import { conditionalHeaders } from '../../protocol/system.js';
import { route, type RouteReply } from '../route.js';

export type { PullLimits };

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

const PULL_ERRORS = ['cursor-invalid', 'cursor-expired', 'forbidden', 'config-drift'] as const;
const PULL_DESCRIPTION =
  'One page of the caller\'s buckets since the cursor. Apply it in one local transaction (drop `buckets.removed`, apply the `snapshots` pages, then per collection `deleted` and `rows`, then store `cursor`) and pull again while `hasMore`. 410 `cursor-expired`: drop the named `buckets` and continue with `resetCursor` (null: drop everything, pull without a cursor). 400 `cursor-invalid`: drop local data, start without a cursor. 403: the app is not meant for the caller\'s role.';

/**
 * POST /v1/sync/pull {cursor?, app?, limit?} and the same as GET with a query string,
 * which an HTTP cache can keep: both carry an ETag; GET answers 304 to If-None-Match.
 */
export function syncRoutes(pulls: PullService, limits: PullLimits, snapshots?: SnapshotService) {
  const input = pullInput(limits);
  const handle = async (
    principal: Parameters<PullService['pull']>[0]['principal'],
    args: z.output<typeof input>,
    method: string,
    ifNoneMatch: string,
    state: Record<string, unknown>,
  ): Promise<RouteReply> => {
    const answer = await pulls.pull({ principal, ...args });
    if (answer.fast) state.quiet = true; // nothing new, from memory: the access log keeps it at debug
    return pullReply(answer, method, ifNoneMatch);
  };
  const page = { description: 'a page of changes', schema: pullAnswer, headers: ['ETag', 'Cache-Control'] };
  return [
    route({
      method: 'POST',
      path: '/v1/sync/pull',
      tag: 'sync',
      summary: 'Pull a page of changes',
      description: PULL_DESCRIPTION,
      auth: 'any',
      body: input,
      idempotent: true, // a read, though a POST
      responses: { 200: page },
      errors: PULL_ERRORS,
      handler: ({ principal, body, ctx }) => handle(principal!, body, 'POST', '', ctx.state),
    }),
    route({
      method: 'GET',
      path: '/v1/sync/pull',
      tag: 'sync',
      summary: 'Pull a page of changes (cacheable)',
      description: `${PULL_DESCRIPTION} The GET form carries an ETag and answers 304 to If-None-Match; a poll with nothing new is answered from the server's memory.`,
      auth: 'any',
      query: input,
      headers: conditionalHeaders,
      responses: { 200: page, 304: { description: 'nothing new since the ETag sent in If-None-Match', headers: ['ETag'] } },
      errors: PULL_ERRORS,
      handler: ({ principal, query, ctx }) => handle(principal!, query, 'GET', ctx.get('if-none-match'), ctx.state),
    }),
    route({
      // The exact stored bytes (gzip, or br for clients that ask): no JSON work, no
      // recompression. Authorized by the signed URL from the pull answer, so a CDN can
      // hold the pages without the bearer token.
      method: 'GET',
      path: '/v1/sync/snapshots/:bucket/:id/:page',
      tag: 'sync',
      summary: 'A bootstrap snapshot page (signed URL)',
      description:
        'The URLs come from a pull answer\'s `snapshots[].pages`, signed and short-lived (`exp`, `sig`): no bearer token, so a CDN can cache them (immutable). Always compressed: gzip, or br when asked. 410 `snapshot-gone` or 403 (the URL expired or was altered): discard the pull answer and pull again from the previous cursor.',
      auth: 'public',
      query: snapshotPageQuery,
      params: snapshotPageParams,
      headers: conditionalHeaders,
      responses: {
        200: { description: 'a columnar page (Content-Encoding gzip or br)', schema: snapshotPage, headers: ['ETag', 'Cache-Control'] },
        304: { description: 'the cached page is current', headers: ['ETag'] },
      },
      errors: ['forbidden', 'snapshot-gone', 'not-found'],
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
