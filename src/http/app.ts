import { randomUUID } from 'node:crypto';
import { constants as zlib } from 'node:zlib';
import cors from '@koa/cors';
import Router from '@koa/router';
import Koa, { type Context, type Next } from 'koa';
import compress from 'koa-compress';
import type { Tokens } from '../auth/tokens.js';
import { clientAddress } from '../lib/client-address.js';
import { originAllowed } from '../lib/origins.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { problems } from './problem.js';
import type { Model } from '../model/model.js';
import { mount, type Route } from './route.js';

export interface AppOptions {
  /** the compiled sync config: roles and their permissions */
  model: Pick<Model, 'roles'>;
  log: Logger;
  metrics: Metrics;
  tokens: Tokens;
  routes: readonly Route[];
  /** middleware run before compression, body parsing and routing (the pull fast lane) */
  early?: readonly Koa.Middleware[];
  bodyLimitBytes: number;
  /** trusted reverse proxies in front of the app (see clientAddress) */
  proxyHops: number;
  /** browser origins answered with CORS headers (`*`: any); empty or unset: no CORS middleware */
  corsOrigins?: readonly string[];
}

/** A request id we accept from X-Request-Id; anything else is replaced by a UUID. */
export const REQUEST_ID = /^[\w.:-]{1,128}$/;

/**
 * Request id (taken from X-Request-Id when sane), a latency metric, and one access-log line:
 * at info, or at debug for a pull answered with nothing new (a 304, or an answer from
 * memory: handlers set `ctx.state.quiet`). The raw fast lane (server.ts) logs nothing.
 */
function requestContext(log: Logger, metrics: Metrics) {
  return async (ctx: Context, next: Next) => {
    const given = ctx.get('x-request-id');
    const requestId = REQUEST_ID.test(given) ? given : randomUUID();
    ctx.state.requestId = requestId;
    ctx.set('X-Request-Id', requestId);
    const started = performance.now();
    try {
      await next();
    } finally {
      const ms = Math.round((performance.now() - started) * 10) / 10;
      const route = (ctx as Context & { _matchedRoute?: string })._matchedRoute ?? 'unmatched';
      metrics.httpDuration.observe({ method: ctx.method, route, status: ctx.status }, ms / 1000);
      // polls that found nothing new (304, the fast lane) are most of the traffic: debug only
      const level = ctx.status === 304 || ctx.state.quiet === true ? 'debug' : 'info';
      if (log.isLevelEnabled(level)) log[level]({ requestId, method: ctx.method, path: ctx.path, status: ctx.status, ms }, 'request');
    }
  };
}

/**
 * CORS for the configured browser origins (flutter web, an admin page). An allowed
 * Origin is echoed in Access-Control-Allow-Origin; any other gets no CORS header, and its
 * preflight goes on to the router like any OPTIONS request. No credentials: the API takes
 * bearer tokens, not cookies. The headers are set on ctx before anything downstream runs,
 * so problem answers keep them; keepHeadersOnError also carries them on an error that
 * escapes the problem middleware (Koa's own error answer).
 */
function corsFor(origins: readonly string[]): Koa.Middleware {
  const allowed = originAllowed(origins);
  const middleware = cors({
    origin: (ctx) => {
      const origin = ctx.get('origin');
      return allowed(origin) ? origin : '';
    },
    allowMethods: ['GET', 'POST', 'PUT', 'OPTIONS'],
    allowHeaders: ['authorization', 'content-type', 'content-encoding', 'if-none-match', 'x-request-id'],
    exposeHeaders: ['ETag', 'X-Request-Id', 'Retry-After', 'WWW-Authenticate', 'Content-Encoding'],
    maxAge: 600,
    credentials: false,
    keepHeadersOnError: true,
  });
  return async (ctx, next) => {
    await middleware(ctx, next);
    // the answer depends on the Origin: a route that sets Vary itself (pull's
    // `Authorization, Accept-Encoding`) replaced the one set above
    ctx.vary('Origin');
  };
}

/**
 * Builds the Koa application: the only code that knows Koa. Tests drive
 * `app.callback()` or listen on port 0; nothing here opens ports or connections.
 */
export function createApp(opts: AppOptions): Koa {
  // nothing reads the forwarded protocol or host, so Koa trusts no X-Forwarded-* header
  const app = new Koa();
  app.silent = true; // errors are logged once, by the problem middleware
  // the client IP (login limits) as the Socket.IO handshake sees it, one function for both;
  // a getter, so only the requests that ask (login) pay for it
  Object.defineProperty(app.request, 'ip', {
    get(this: Koa.Request) {
      return clientAddress(this.req.socket.remoteAddress, this.req.headers['x-forwarded-for'], opts.proxyHops);
    },
  });

  const router = new Router();
  mount(router, opts.routes, opts.tokens, opts.model, opts.bodyLimitBytes);

  app.use(requestContext(opts.log, opts.metrics));
  // before the problem middleware, the fast lane and compression: every answer, errors included
  if (opts.corsOrigins?.length) app.use(corsFor(opts.corsOrigins));
  app.use(problems(opts.log));
  for (const mw of opts.early ?? []) app.use(mw);
  app.use(
    compress({
      threshold: 1024,
      // dart:io decodes gzip by itself; br only for clients that ask (browsers, curl --compressed)
      gzip: { flush: zlib.Z_SYNC_FLUSH, level: 6 },
      br: { params: { [zlib.BROTLI_PARAM_QUALITY]: 4 } },
      deflate: false,
    }),
  );
  app.use(router.routes());
  app.use(router.allowedMethods({ throw: true }));
  return app;
}
