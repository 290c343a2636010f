import type Router from '@koa/router';
import type { Context } from 'koa';
import type { z } from 'zod';
import type { Principal } from '../auth/principal.js';
import type { Tokens } from '../auth/tokens.js';
import { isConnectionLoss } from '../db/errors.js';
import { AppError, violations, type ErrorCode } from '../errors.js';
import { readJson } from './body.js';
import { inspectInput } from './edge.js';
import type { Permission } from '../model/config.js';
import type { Model } from '../model/model.js';

/**
 * A route is data: method, path, schemas, who may call it, and a handler
 * (PowerSync's endpoint pattern). One executor validates, authenticates, authorizes,
 * then calls the handler, so handlers stay short and never see unchecked input.
 */
export interface Route<B extends z.ZodType = z.ZodType, Q extends z.ZodType = z.ZodType, P extends z.ZodType = z.ZodType> {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH';
  /** the OpenAPI document's tag, summary and description (src/http/openapi.ts) */
  tag: RouteTag;
  summary: string;
  description?: string;
  /**
   * Every answer but the errors, by status: the OpenAPI document is made from these, and
   * the tests check every answer they receive against it.
   */
  responses: Readonly<Record<number, RouteResponse>>;
  /**
   * The problem codes this route answers beyond the ones its kind always may (see
   * problemCodes: authentication, validation, reading a body, 500 and 503).
   */
  errors?: readonly ErrorCode[];
  /** request headers the handler reads (documented; the handler reads them from ctx) */
  headers?: z.ZodObject;
  /** a body that is not JSON (an upload): its media types, as OpenAPI schemas */
  rawBody?: { description: string; content: Readonly<Record<string, { schema: Record<string, unknown> }>> };
  /** a path with `:name` parameters must have a `params` schema (checked at mount) */
  path: string;
  /**
   * 'public': no token; 'any': any valid token; else a permission the caller's role must
   * have (the sync config's roles.<role>.permissions): role names are the config's, so
   * routes never name them.
   */
  auth: 'public' | 'any' | { permission: Permission };
  body?: B;
  query?: Q;
  params?: P;
  /**
   * Safe to run twice: a handler that lost its database connection is run once more on a
   * fresh one before the caller is answered 503. Default: GET routes.
   */
  idempotent?: boolean;
  handler: (req: RouteRequest<z.output<B>, z.output<Q>, z.output<P>>) => Promise<RouteReply> | RouteReply;
}

export type RouteTag = 'auth' | 'sync' | 'push' | 'media' | 'admin' | 'system';

export interface RouteResponse {
  description: string;
  /** the body's schema (absent: no body, as a 304, or not JSON, then `contentType`) */
  schema?: z.ZodType;
  /** default application/json */
  contentType?: string;
  /** headers worth documenting (ETag, Cache-Control, Retry-After) */
  headers?: readonly string[];
}

/**
 * The problem codes a route may answer: its own (`errors`) and those of its kind: every
 * route 500 and 503; one with a token 401 (and 403 with a permission); one with schemas
 * 400 validation-failed; one that reads a JSON body the body's own errors.
 */
export function problemCodes(r: Pick<Route, 'auth' | 'body' | 'query' | 'params' | 'errors' | 'rawBody'>): ErrorCode[] {
  const codes = new Set<ErrorCode>(['internal', 'unavailable']);
  if (r.auth !== 'public') for (const c of ['token-missing', 'token-invalid', 'token-expired'] as const) codes.add(c);
  if (typeof r.auth === 'object') codes.add('forbidden');
  if (r.body || r.query || r.params) codes.add('validation-failed');
  if (r.body) for (const c of ['malformed-json', 'body-encoding-invalid', 'payload-too-large', 'unsupported-media-type', 'unsupported-content-encoding'] as const) codes.add(c);
  if (r.rawBody) for (const c of ['body-encoding-invalid', 'payload-too-large', 'unsupported-media-type', 'unsupported-content-encoding'] as const) codes.add(c);
  for (const c of r.errors ?? []) codes.add(c);
  return [...codes];
}

export interface RouteRequest<B, Q, P = Record<string, string>> {
  body: B;
  query: Q;
  params: P;
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
export function route<B extends z.ZodType = z.ZodUnknown, Q extends z.ZodType = z.ZodUnknown, P extends z.ZodType = z.ZodUnknown>(r: Route<B, Q, P>): Route<B, Q, P> {
  return r;
}

/** The edge's shared checks (NUL, depth), then the route's schema. */
function parse<S extends z.ZodType>(schema: S, value: unknown, where: string): z.output<S> {
  inspectInput(value, where);
  const r = schema.safeParse(value);
  if (!r.success) {
    throw new AppError('validation-failed', `Invalid ${where}`, { errors: violations(r.error) });
  }
  return r.data;
}

/** The token of an `Authorization: Bearer <token>` header (every route and both pull fast lanes read it so). */
export function bearerToken(header: string): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
}

async function authenticate(ctx: Context, tokens: Tokens): Promise<Principal> {
  const header = ctx.get('authorization');
  const token = bearerToken(header);
  if (!token) {
    throw new AppError('token-missing', undefined, { headers: { 'WWW-Authenticate': 'Bearer' } });
  }
  try {
    return await tokens.verify(token);
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

/**
 * Runs a handler. One that is idempotent and lost its database connection (a failover,
 * pg_terminate_backend) runs once more on a fresh one, after a pause: connections killed
 * together are noticed by the pool within milliseconds, and the retry must not take the
 * next dead one. A second loss, or a loss under a write, is thrown (answered 503).
 */
export async function runHandler<T>(run: () => Promise<T> | T, idempotent: boolean): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (!idempotent || !isConnectionLoss(err)) throw err;
    await new Promise((resolve) => setTimeout(resolve, 50));
    return run();
  }
}

/** Mounts routes on a router through the one executor; `model` says what each role may do. */
export function mount(router: Router, routes: readonly Route[], tokens: Tokens, model: Pick<Model, 'roles'>, bodyLimitBytes: number): void {
  for (const r of routes) {
    if (r.path.includes(':') && !r.params) throw new Error(`route ${r.method} ${r.path} has path parameters but no params schema`);
    const idempotent = r.idempotent ?? r.method === 'GET';
    router.register(r.path, [r.method], async (ctx: Context) => {
      let principal: Principal | undefined;
      if (r.auth !== 'public') {
        principal = await authenticate(ctx, tokens);
        ctx.state.principal = principal;
        authorize(r, principal, model);
      }
      let body: unknown;
      if (r.body) {
        if (!ctx.request.is('application/json')) throw new AppError('unsupported-media-type', 'send the body as application/json');
        // read here, after the caller is known and only for a route that takes one (the pull
        // fast lane may have read it already)
        body = parse(r.body, await readJson(ctx, bodyLimitBytes), 'request body');
      }
      const query = r.query ? parse(r.query, ctx.query, 'query string') : undefined;
      const params = r.params ? parse(r.params, (ctx as Context & { params?: Record<string, string> }).params ?? {}, 'path') : {};
      const req = { body, query, params, principal, ctx };
      const reply = await runHandler(() => r.handler(req), idempotent);
      for (const [k, v] of Object.entries(reply.headers ?? {})) ctx.set(k, v);
      ctx.status = reply.status ?? (reply.body === undefined ? 204 : 200);
      if (reply.body !== undefined) ctx.body = reply.body;
    });
  }
}
