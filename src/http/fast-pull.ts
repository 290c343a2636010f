import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Context, Next } from 'koa';
import type { Tokens } from '../auth/tokens.js';
import type { PullService } from '../sync/pull.js';
import { REQUEST_ID } from './app.js';
import { bearerToken } from './route.js';
import { readJson } from './body.js';
import { pullInput, type PullLimits } from '../protocol/sync.js';
import { pullReply } from './routes/sync.js';


/**
 * The fast lane for the most common request: a device polling with a cursor that is
 * already at every bucket's head. It runs before compression, body parsing and routing,
 * answers from memory when PullService.tryFast can (a token verified before, a cached
 * bucket set, nothing new), and otherwise hands the request on unchanged to the full
 * /v1/sync/pull route, which authenticates, validates and reports errors as usual.
 * A POST body it has read is left in ctx.request.body, so it is not read twice.
 */
export function fastPull(pulls: PullService, tokens: Tokens, limits: PullLimits & { bodyLimitBytes: number }) {
  const input = pullInput(limits);
  return async function fastPullMiddleware(ctx: Context, next: Next): Promise<void> {
    if (ctx.path !== '/v1/sync/pull' || (ctx.method !== 'GET' && ctx.method !== 'POST')) return next();
    const token = bearerToken(ctx.get('authorization'));
    const principal = token === undefined ? undefined : tokens.peek(token);
    if (!principal) return next();
    let raw: unknown;
    if (ctx.method === 'GET') {
      raw = ctx.query;
    } else {
      if (!ctx.request.is('application/json')) return next();
      raw = await readJson(ctx, limits.bodyLimitBytes);
    }
    const args = input.safeParse(raw);
    if (!args.success || args.data.cursor === undefined) return next();
    const answer = pulls.tryFast(principal, args.data.app, args.data.cursor);
    if (!answer) return next();
    const reply = pullReply(answer, ctx.method, ctx.get('if-none-match'));
    ctx.state.quiet = true; // nothing new: not worth an access-log line at info
    ctx.set(reply.headers!);
    ctx.status = reply.status ?? 200;
    if (reply.body !== undefined) ctx.body = reply.body;
  };
}

/**
 * The same fast lane for GET /v1/sync/pull?cursor=…, ahead of Koa itself: a polling
 * device's no-change pull costs a URL split, two map lookups, the head comparisons and
 * one write. Returns false, touching nothing, for any request it does not answer; Koa
 * then handles it in full. Sets the same headers as the route (X-Request-Id included)
 * and records the same latency metric. With `cors` (CORS_ORIGINS set), a browser's
 * request (one with an Origin header) is left to Koa, whose CORS middleware answers it.
 */
export function rawFastPull(
  pulls: PullService,
  tokens: Tokens,
  limits: PullLimits,
  observe: (seconds: number, status: number) => void,
  cors = false,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  const input = pullInput(limits);
  const prefix = '/v1/sync/pull?';
  return (req, res) => {
    const started = performance.now();
    if (req.method !== 'GET' || !req.url?.startsWith(prefix)) return false;
    if (cors && req.headers.origin !== undefined) return false;
    const token = bearerToken(req.headers.authorization ?? '');
    const principal = token === undefined ? undefined : tokens.peek(token);
    if (!principal) return false;
    const params = new URLSearchParams(req.url.slice(prefix.length));
    const query: Record<string, string> = {};
    for (const [k, v] of params) {
      if (k in query) return false; // repeated parameter: let the route reject it
      query[k] = v;
    }
    const args = input.safeParse(query);
    if (!args.success || args.data.cursor === undefined) return false;
    const answer = pulls.tryFast(principal, args.data.app, args.data.cursor);
    if (!answer) return false;
    const reply = pullReply(answer, 'GET', req.headers['if-none-match'] ?? '');
    const status = reply.status ?? 200;
    const given = req.headers['x-request-id'];
    res.writeHead(status, {
      ...reply.headers,
      'X-Request-Id': typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID(),
      ...(reply.body !== undefined && { 'Content-Length': Buffer.byteLength(reply.body as string) }),
    });
    res.end(reply.body as string | undefined);
    observe((performance.now() - started) / 1000, status);
    return true;
  };
}
