/**
 * The one catalogue of HTTP error codes. Every error a client can see is one of these;
 * each answers `application/problem+json` (RFC 9457) with `type: /problems/<code>`,
 * and GET /problems/<code> describes it. 5xx details are never sent to the client.
 */
export const errorCatalogue = {
  'malformed-json': { status: 400, title: 'The request body is not valid JSON' },
  'body-encoding-invalid': { status: 400, title: 'The body is not valid in its Content-Encoding' },
  'multipart-malformed': { status: 400, title: 'The multipart/form-data body is malformed or incomplete' },
  'validation-failed': { status: 400, title: 'The request does not match the schema', },
  'token-missing': { status: 401, title: 'A bearer token is required' },
  'token-invalid': { status: 401, title: 'The token is forged, malformed or not for this server' },
  'token-expired': { status: 401, title: 'The token has expired; log in again' },
  'invalid-credentials': { status: 401, title: 'Unknown e-mail or wrong password' },
  'forbidden': { status: 403, title: 'Your role may not do this' },
  'not-found': { status: 404, title: 'No such resource' },
  'method-not-allowed': { status: 405, title: 'This resource does not accept that method' },
  'conflict': { status: 409, title: 'The request conflicts with existing data' },
  'unprocessable': { status: 422, title: 'The request is well-formed but refers to data that does not fit' },
  'payload-too-large': { status: 413, title: 'The request body is too large' },
  'unsupported-media-type': { status: 415, title: 'This resource does not take a body of that Content-Type' },
  'unsupported-content-encoding': { status: 415, title: 'Send the body as identity, gzip, deflate or br' },
  'unsupported-image': { status: 415, title: 'The bytes are not an accepted image format' },
  'rate-limited': { status: 429, title: 'Too many requests; retry later' },
  'cursor-invalid': { status: 400, title: 'The cursor is malformed, altered, or belongs to another user or app' },
  'cursor-expired': { status: 410, title: 'The cursor can no longer be served; restart the named buckets' },
  'snapshot-gone': { status: 410, title: 'This snapshot page expired: pull again from your previous cursor' },
  'login-disabled': { status: 501, title: 'This server only accepts tokens issued by the ERP' },
  'internal': { status: 500, title: 'Internal server error' },
  'unavailable': { status: 503, title: 'A backing service is unavailable; retry later' },
  'config-drift': { status: 503, title: 'The database no longer matches the sync config; an operator must run sync:install' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof errorCatalogue;

export interface Violation {
  /** JSON path of the offending value, e.g. "mutations.3.payload.lines" */
  path: string;
  message: string;
}

/** A zod error as a list of violations (path and message), for problem+json and rejections. */
export function violations(error: { issues: readonly { path: readonly PropertyKey[]; message: string }[] }): Violation[] {
  return error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message }));
}

/** An error with a catalogued code; 4xx messages are shown to the client, 5xx are not. */
export class AppError extends Error {
  readonly status: number;
  readonly expose: boolean;

  constructor(
    readonly code: ErrorCode,
    detail?: string,
    readonly extra: { errors?: Violation[]; headers?: Record<string, string>; body?: Record<string, unknown> } = {},
  ) {
    super(detail ?? errorCatalogue[code].title);
    this.name = 'AppError';
    this.status = errorCatalogue[code].status;
    this.expose = this.status < 500;
  }
}
