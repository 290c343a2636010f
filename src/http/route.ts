import type Router from '@koa/router';
import type { Context } from 'koa';
import type { z } from 'zod';
import type { Principal } from '../auth/principal.js';
import type { Tokens } from '../auth/tokens.js';
import { AppError, violations } from '../errors.js';
import type { Permission } from '../model/config.js';
import type { Model } from '../model/model.js';

/**
 * A route is data: method, path, schemas, who may call it, and a handler
 * (PowerSync's endpoint pattern). One executor validates, authenticates, authorizes,
 * then calls the handler, so handlers stay short and never see unchecked input.
 */
export interface Route<B extends z.ZodType = z.ZodType, Q extends z.ZodType = z.ZodType> {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH';
  path: string;
  /**
   * 'public': no token; 'any': any valid token; else a permission the caller's role must
   * have (the sync config's roles.<role>.permissions): role names are the config's, so
   * routes never name them.
   */
  auth: 'public' | 'any' | { permission: Permission };
  body?: B;
  query?: Q;
  handler: (req: RouteRequest<z.output<B>, z.output<Q>>) => Promise<RouteReply> | RouteReply;
}

export interface RouteRequest<B, Q> {
  body: B;
  query: Q;
  params: Record<string, string>;
  principal: Principal | undefined;
  /** the raw Koa context, for headers and client IP only */
  ctx: Context;
}

export interface RouteReply {
  status?: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/** Declares a route with its types inferred from the schemas. */
export function route<B extends z.ZodType = z.ZodUnknown, Q extends z.ZodType = z.ZodUnknown>(r: Route<B, Q>): Route<B, Q> {
  return r;
}

function parse<S extends z.ZodType>(schema: S, value: unknown, where: string): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) {
    throw new AppError('validation-failed', `Invalid ${where}`, { errors: violations(r.error) });
  }
  return r.data;
}

async function authenticate(ctx: Context, tokens: Tokens): Promise<Principal> {
  const header = ctx.get('authorization');
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match?.[1]) {
    throw new AppError('token-missing', undefined, { headers: { 'WWW-Authenticate': 'Bearer' } });
  }
  try {
    return await tokens.verify(match[1]);
  } catch (err) {
    if (err instanceof AppError && err.status === 401) {
      err.extra.headers = { 'WWW-Authenticate': `Bearer error="invalid_token"` };
    }
    throw err;
  }
}

function authorize(r: Route, principal: Principal, model: Pick<Model, 'roles'>): void {
  if (r.auth === 'public' || r.auth === 'any') return;
  if (!model.roles.get(principal.role)?.permissions.has(r.auth.permission)) {
    throw new AppError('forbidden', `role ${principal.role} may not ${r.method} ${r.path} (needs ${r.auth.permission})`);
  }
}

/** Mounts routes on a router through the one executor; `model` says what each role may do. */
export function mount(router: Router, routes: readonly Route[], tokens: Tokens, model: Pick<Model, 'roles'>): void {
  for (const r of routes) {
    router.register(r.path, [r.method], async (ctx: Context) => {
      let principal: Principal | undefined;
      if (r.auth !== 'public') {
        principal = await authenticate(ctx, tokens);
        ctx.state.principal = principal;
        authorize(r, principal, model);
      }
      let body: unknown;
      if (r.body) {
        if (!ctx.request.is('application/json')) throw new AppError('unsupported-media-type');
        body = parse(r.body, (ctx.request as { body?: unknown }).body, 'request body');
      }
      const query = r.query ? parse(r.query, ctx.query, 'query string') : undefined;
      const reply = await r.handler({ body, query, params: (ctx as Context & { params: Record<string, string> }).params ?? {}, principal, ctx });
      for (const [k, v] of Object.entries(reply.headers ?? {})) ctx.set(k, v);
      ctx.status = reply.status ?? (reply.body === undefined ? 204 : 200);
      if (reply.body !== undefined) ctx.body = reply.body;
    });
  }
}
