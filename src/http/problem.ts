import type { Context, Next } from 'koa';
import { fromDatabase } from '../db/errors.js';
import { AppError, errorCatalogue, type ErrorCode } from '../errors.js';
import type { BodyErrorType } from './body.js';
import type { Logger } from '../observability/logger.js';

export const PROBLEM_TYPE = 'application/problem+json';

/** The body module's own error types, each with its catalogue code. */
const BODY_ERRORS: Partial<Record<string, ErrorCode>> = {
  'content.encoding.invalid': 'body-encoding-invalid',
  'content.encoding.unsupported': 'unsupported-content-encoding',
  'content.type.unsupported': 'unsupported-media-type',
  'multipart.malformed': 'multipart-malformed',
} satisfies Partial<Record<BodyErrorType, ErrorCode>>;

/**
 * Maps errors thrown by Koa's own middleware and the body module (src/http/body.ts:
 * co-body, raw-body, zlib, busboy), all in http-errors' shape, onto our codes.
 */
function fromHttpError(err: { status?: unknown; type?: unknown; message?: string; limit?: unknown }): AppError | undefined {
  const status = typeof err.status === 'number' ? err.status : undefined;
  if (status === undefined || status < 400 || status >= 500) return undefined;
  const code = typeof err.type === 'string' ? BODY_ERRORS[err.type] : undefined;
  if (code) return new AppError(code, err.message);
  // co-body throws the JSON.parse SyntaxError (also for __proto__ keys) with status 400
  if (err instanceof SyntaxError || err.type === 'entity.parse.failed') return new AppError('malformed-json', `The request body is not valid JSON: ${err.message}`);
  if (status === 413) return new AppError('payload-too-large', typeof err.limit === 'number' ? `The body is larger than ${err.limit} bytes` : undefined);
  if (status === 415) return new AppError('unsupported-media-type');
  if (status === 404) return new AppError('not-found');
  if (status === 405) return new AppError('method-not-allowed');
  return new AppError('validation-failed', err.message);
}

/**
 * An error answered before the request body was read to its end (refused for its size,
 * its encoding, its type, or before it was looked at): the rest of the body is still on
 * the connection, and nothing would read it. Keeping the connection would leave the next
 * request waiting behind it, so the answer says `Connection: close` and Node ends the
 * socket after it; meanwhile what arrives is read and dropped, so the close does not
 * reset the connection under the answer.
 */
function closeAfterUnreadBody(ctx: Context): void {
  if (ctx.req.complete) return;
  ctx.set('Connection', 'close');
  ctx.req.unpipe();
  ctx.req.resume();
}

/**
 * The one exit for errors (Koa's error-handling guide): any throw becomes an
 * application/problem+json answer. 4xx show their detail; 5xx say only "internal" and
 * are logged with the request id, which the answer carries so a user can quote it.
 */
export function problems(log: Logger) {
  return async function problemMiddleware(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) throw new AppError('not-found');
    } catch (thrown) {
      const err = thrown instanceof AppError ? thrown : (fromHttpError(thrown as object) ?? fromDatabase(thrown) ?? thrown);
      const app = err instanceof AppError ? err : new AppError('internal');
      if (!(err instanceof AppError) || app.code === 'internal') {
        log.error({ err: thrown, requestId: ctx.state.requestId }, 'request failed');
      } else if (app.status >= 500) {
        // a known state (a backing service down, config drift), logged where it changes: one
        // line per request at warn, no stack
        log.warn({ code: app.code, detail: app.message, requestId: ctx.state.requestId }, 'request refused');
      }
      const code: ErrorCode = app.code;
      closeAfterUnreadBody(ctx);
      ctx.status = app.status;
      for (const [k, v] of Object.entries(app.extra.headers ?? {})) ctx.set(k, v);
      ctx.type = PROBLEM_TYPE;
      ctx.body = {
        type: `/problems/${code}`,
        title: errorCatalogue[code].title,
        status: app.status,
        code,
        ...(app.expose && app.message !== errorCatalogue[code].title && { detail: app.message }),
        ...(app.extra.errors && { errors: app.extra.errors }),
        ...(app.expose && app.extra.body),
        requestId: ctx.state.requestId,
      };
    }
  };
}
