import { createHash } from 'node:crypto';
import { z } from 'zod';
import { appNames } from '../../sync/profiles.js';
import type { PullService } from '../../sync/pull.js';
import { route, type RouteReply, type RouteRequest } from '../route.js';

export interface PullLimits {
  defaultLimit: number;
  maxLimit: number;
}

function pullInput(limits: PullLimits) {
  return {
    cursor: z.string().min(1).max(16_384).optional(),
    app: z.enum(appNames as [string, ...string[]], { message: `unknown app; one of: ${appNames.join(', ')}` }).optional(),
    limit: z.coerce.number().int().min(1).max(limits.maxLimit).default(limits.defaultLimit),
  };
}

/**
 * POST /v1/sync/pull {cursor?, app?, limit?} and the same as GET with a query string,
 * which an HTTP cache can keep: both carry an ETag; GET answers 304 to If-None-Match.
 */
export function syncRoutes(pulls: PullService, limits: PullLimits) {
  const input = pullInput(limits);
  const handle = async ({ principal, ctx }: RouteRequest<unknown, unknown>, args: { cursor?: string | undefined; app?: string | undefined; limit: number }): Promise<RouteReply> => {
    const answer = await pulls.pull({ principal: principal!, cursor: args.cursor, app: args.app as never, limit: args.limit });
    const etag = `"${createHash('sha256').update(answer.body).digest('base64url').slice(0, 27)}"`;
    const headers = {
      ETag: etag,
      'Cache-Control': 'private, no-cache',
      Vary: 'Authorization, Accept-Encoding',
      'Content-Type': 'application/json; charset=utf-8',
    };
    if (ctx.method === 'GET' && ctx.get('if-none-match').split(/\s*,\s*/).includes(etag)) return { status: 304, headers };
    return { body: answer.body, headers };
  };
  return [
    route({
      method: 'POST',
      path: '/v1/sync/pull',
      auth: 'any',
      body: z.strictObject(input),
      handler: (req) => handle(req, req.body),
    }),
    route({
      method: 'GET',
      path: '/v1/sync/pull',
      auth: 'any',
      query: z.strictObject(input),
      handler: (req) => handle(req, req.query),
    }),
  ];
}
