import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { createDocument, type ZodOpenApiOperationObject, type ZodOpenApiPathsObject, type ZodOpenApiResponsesObject } from 'zod-openapi';
import { errorCatalogue, type ErrorCode } from '../errors.js';
import type { EventConfig } from '../model/config.js';
import { builtInEvents, connectRefusal } from '../protocol/events.js';
import { problem, PROBLEM_CONTENT_TYPE } from '../protocol/problem.js';
import { problemCodes, type Route, type RouteTag } from './route.js';

/**
 * The OpenAPI 3.1 document, made from the route table and the protocol's zod schemas
 * (zod-openapi): nothing in it is written twice. Examples are real answers, captured by
 * `npm run docs:examples` into docs/examples.json (a test fails when they drift).
 */

export interface CapturedExample {
  /** what the README and the document call it */
  summary: string;
  method: string;
  /** the route's path, as in the route table (`/v1/admin/products/:id/image`) */
  route: string;
  status: number;
  request?: unknown;
  answer: unknown;
}

const EXAMPLES_FILE = new URL('../../docs/examples.json', import.meta.url);

/** docs/examples.json, or none (a build without docs). */
export function readExamples(): Record<string, CapturedExample> {
  try {
    return JSON.parse(readFileSync(EXAMPLES_FILE, 'utf8')) as Record<string, CapturedExample>;
  } catch {
    return {};
  }
}

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const TAGS: Record<RouteTag, string> = {
  auth: 'Logins and the caller',
  sync: 'Pull: buckets, cursors, snapshots',
  push: 'Offline writes, exactly once',
  media: 'Product images',
  admin: 'Administration',
  system: 'Health, readiness, metrics, this document',
};

const HEADERS: Record<string, { description: string }> = {
  ETag: { description: 'strong validator of the answer: send it as If-None-Match' },
  'Cache-Control': { description: 'private, no-cache for pulls; public, immutable for snapshot pages and images' },
  'Retry-After': { description: 'seconds to wait before trying again' },
  'WWW-Authenticate': { description: 'Bearer, with error="invalid_token" for a bad token' },
  'X-Request-Id': { description: 'the request id (yours from X-Request-Id when sane, else a UUID); every answer carries it' },
};

const headers = (names: readonly string[]) =>
  Object.fromEntries(['X-Request-Id', ...names].map((n) => [n, { $ref: `#/components/headers/${n}` }]));

/** `/v1/admin/:x/image` -> `/v1/admin/{x}/image` */
export const openApiPath = (path: string) => path.replace(/:(\w+)/g, '{$1}');

function operationId(r: Route): string {
  const words = r.path
    .split('/')
    .filter((s) => s !== '' && s !== 'v1')
    .map((s) => (s.startsWith(':') ? `By-${s.slice(1)}` : s))
    .flatMap((s) => s.split(/[^A-Za-z0-9]+/))
    .filter(Boolean);
  return r.method.toLowerCase() + words.map((w) => w[0]!.toUpperCase() + w.slice(1)).join('');
}

/** Error answers of a route, one response per status, `code` limited to the route's codes. */
function problemResponses(r: Route): ZodOpenApiResponsesObject {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of problemCodes(r)) {
    const status = errorCatalogue[code].status;
    if (r.responses[status]) continue; // the route answers that status with its own body (/ready's 503)
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const out: ZodOpenApiResponsesObject = {};
  for (const [status, codes] of [...byStatus].sort(([a], [b]) => a - b)) {
    out[`${status}` as `4${string}`] = {
      description: codes.map((c) => `\`${c}\`: ${errorCatalogue[c].title}`).join('; '),
      headers: headers(status === 401 ? ['WWW-Authenticate'] : status === 429 || status === 503 ? ['Retry-After'] : []),
      content: {
        [PROBLEM_CONTENT_TYPE]: { schema: { allOf: [{ $ref: '#/components/schemas/Problem' }, { type: 'object', properties: { code: { enum: codes } } }] } },
      },
    };
  }
  return out;
}

function operation(r: Route, examples: readonly [string, CapturedExample][]): ZodOpenApiOperationObject {
  const responses: ZodOpenApiResponsesObject = {};
  for (const [status, res] of Object.entries(r.responses)) {
    const mine = examples.filter(([, e]) => String(e.status) === status);
    const contentType = res.contentType ?? 'application/json';
    responses[status as `2${string}`] = {
      description: res.description,
      headers: headers(res.headers ?? []),
      ...((res.schema || res.contentType) && {
        content: {
          [contentType]: {
            ...(res.schema && { schema: res.schema }),
            ...(mine.length > 0 && { examples: Object.fromEntries(mine.map(([name, e]) => [name, { summary: e.summary, value: e.answer }])) }),
          },
        },
      }),
    };
  }
  // the request of an error example is meant not to fit its schema: only those answered 2xx are request examples
  const requests = examples.filter(([, e]) => e.request !== undefined && e.status < 300);
  return {
    operationId: operationId(r),
    tags: [r.tag],
    summary: r.summary,
    ...(r.description && { description: r.description }),
    security: r.auth === 'public' ? [] : [{ bearer: [] }],
    ...(typeof r.auth === 'object' && { 'x-permission': r.auth.permission }),
    ...((r.params || r.query || r.headers) && {
      requestParams: {
        ...(r.params && { path: r.params as z.ZodObject }),
        ...(r.query && { query: r.query as z.ZodObject }),
        ...(r.headers && { header: r.headers }),
      },
    }),
    ...(r.body && {
      requestBody: {
        required: true,
        content: {
          'application/json': {
            schema: r.body,
            ...(requests.length > 0 && { examples: Object.fromEntries(requests.map(([name, e]) => [name, { summary: e.summary, value: e.request }])) }),
          },
        },
      },
    }),
    ...(r.rawBody && { requestBody: { required: true, description: r.rawBody.description, content: r.rawBody.content } }),
    responses: { ...responses, ...problemResponses(r) },
  };
}

/** The push channel's events as Markdown table rows (event, payload, when): the built-in ones from their schemas, then the config's. */
export function eventTable(configEvents: Readonly<Record<string, Pick<EventConfig, 'mode' | 'fields'>>>): string[] {
  const shape = (s: z.ZodObject) => Object.keys(s.shape).join(', ');
  const rows = Object.entries(builtInEvents).map(([name, s]) => `| \`${name}\` | \`{${shape(s)}}\` | ${String(z.globalRegistry.get(s)?.description ?? '')} |`);
  for (const [name, e] of Object.entries(configEvents)) {
    const fields = Object.keys(e.fields).join(', ');
    rows.push(
      `| \`${name}\` | \`${e.mode === 'batch' ? `{items: [{${fields}}]}` : `{${fields}}`}\` | the sync config's ${e.mode === 'batch' ? 'batch event: the latest fields of each row written over the coalescing window, one message per room and window; a hint (pull is the truth)' : "row event: once per changed row and transaction, to every room of the row"} |`,
    );
  }
  return ['| event | payload | when |', '|---|---|---|', ...rows];
}

/** The push channel, in words and the event table (OpenAPI has no place for it). */
function channelDescription(configEvents: Readonly<Record<string, Pick<EventConfig, 'mode' | 'fields'>>>): string {
  return [
    '## Push channel (Socket.IO)',
    '',
    'Socket.IO 4 on the same port, path `/socket.io`, websocket with polling fallback. Connect with `auth: {token}` (the same JWT); the server joins the socket to the rooms of its buckets. Clients send nothing. Events:',
    '',
    ...eventTable(configEvents),
    '',
    `A refused handshake arrives as \`connect_error\` with \`{message, data: {code, status}}\`: ${String(z.globalRegistry.get(connectRefusal)?.description ?? '')}.`,
  ].join('\n');
}

export interface DocumentOptions {
  /** the sync config's events (names and fields), for the push channel's description */
  events?: Readonly<Record<string, Pick<EventConfig, 'mode' | 'fields'>>>;
  examples?: Readonly<Record<string, CapturedExample>>;
}

/** The OpenAPI 3.1 document of these routes. */
export function openApiDocument(routes: readonly Route[], opts: DocumentOptions = {}): Record<string, unknown> {
  const examples = Object.entries(opts.examples ?? {});
  const paths: ZodOpenApiPathsObject = {};
  for (const r of routes) {
    const item = (paths[openApiPath(r.path)] ??= {});
    const mine = examples.filter(([, e]) => e.route === r.path && e.method === r.method);
    item[r.method.toLowerCase() as 'get'] = operation(r, mine);
  }
  const used = new Set(routes.map((r) => r.tag));
  return createDocument(
    {
      openapi: '3.1.0',
      info: {
        title: 'fieldsync',
        version: VERSION,
        description: [
          'Offline-first sync server for mobile apps beside a PostgreSQL ERP database.',
          '',
          'Every error is `application/problem+json` (RFC 9457) with a machine-readable `code`; `GET /problems/{code}` describes it. Every answer carries `X-Request-Id`. Answers over 1 KiB are gzip-compressed (br when asked); request bodies may be sent gzip, deflate or br. JSON fields are camelCase; the column names inside pull answers are the sync config\'s (data, not API). Money is a string with two decimals, timestamps epoch milliseconds, dates `YYYY-MM-DD`.',
          '',
          channelDescription(opts.events ?? {}),
        ].join('\n'),
        license: { name: 'Proprietary', identifier: 'LicenseRef-Proprietary' },
      },
      servers: [{ url: '/', description: 'this server' }],
      tags: (Object.keys(TAGS) as RouteTag[]).filter((t) => used.has(t)).map((name) => ({ name, description: TAGS[name] })),
      paths,
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: "POST /v1/auth/login's token, or one issued by the ERP (JWT_JWKS_URL)" },
        },
        schemas: { Problem: problem },
        headers: Object.fromEntries(Object.entries(HEADERS).map(([n, h]) => [n, { ...h, schema: { type: 'string' } }])),
      },
    },
    { allowEmptySchema: { custom: true } },
  ) as unknown as Record<string, unknown>;
}
