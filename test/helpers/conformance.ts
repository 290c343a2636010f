import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

/**
 * Checks every answer a test server sends against its own OpenAPI document (the route
 * table's schemas), so the document cannot drift from what the server does: the status
 * must be documented for the path and method, the Content-Type one the document names,
 * and a JSON body valid against the schema given for that status. Answers of paths the
 * document does not name (404s, /socket.io) are checked against the Problem schema when
 * they are problems. Violations are collected and reported when the server closes.
 */
export interface AnswerWatch {
  /** what did not match, one line each */
  readonly violations: string[];
  /** answers checked */
  readonly checked: () => number;
}

type Json = Record<string, unknown>;
interface Operation {
  responses: Record<string, { content?: Record<string, { schema?: unknown }> }>;
}

const pointer = (...parts: string[]) => parts.map((p) => p.replace(/~/g, '~0').replace(/\//g, '~1')).join('/');

function decode(body: Buffer, encoding: string | undefined): Buffer {
  if (encoding === 'gzip') return gunzipSync(body);
  if (encoding === 'br') return brotliDecompressSync(body);
  if (encoding === 'deflate') return inflateSync(body);
  return body;
}

function mediaMatch(documented: string, given: string): boolean {
  if (documented === given || documented === '*/*') return true;
  return documented.endsWith('/*') && given.startsWith(documented.slice(0, -1));
}

export function watchAnswers(http: Server, document: () => Json): AnswerWatch {
  const violations: string[] = [];
  let checked = 0;
  let compiled: { routes: { re: RegExp; path: string; item: Record<string, Operation> }[]; validator: (ref: string) => ValidateFunction } | undefined;
  const setup = () => {
    if (compiled) return compiled;
    const doc = document();
    const ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: false });
    addFormats.default(ajv);
    ajv.addSchema(doc, 'openapi');
    const validators = new Map<string, ValidateFunction>();
    const paths = doc.paths as Record<string, Record<string, Operation>>;
    compiled = {
      routes: Object.entries(paths).map(([path, item]) => ({
        path,
        item,
        re: new RegExp(`^${path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{\w+\}/g, '[^/]+')}$`),
      })),
      validator(ref) {
        let v = validators.get(ref);
        if (!v) validators.set(ref, (v = ajv.compile({ $ref: `openapi#${ref}` })));
        return v;
      },
    };
    return compiled;
  };

  const check = (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
    const method = (req.method ?? 'GET').toLowerCase();
    const path = (req.url ?? '/').split('?')[0]!;
    if (method === 'options' || path.startsWith('/socket.io')) return; // CORS preflights, Engine.IO
    checked++;
    const status = String(res.statusCode);
    const header = (name: string) => (res.getHeader(name) as string | undefined) ?? (res as ServerResponse & { fieldsyncHeaders?: Map<string, string> }).fieldsyncHeaders?.get(name);
    const type = String(header('content-type') ?? '').split(';')[0]!.trim();
    const where = `${req.method} ${req.url?.slice(0, 120)} -> ${status} ${type}`;
    const { routes, validator } = setup();
    const match = routes.find((r) => r.re.test(path) && r.item[method === 'head' ? 'get' : method]);
    const json = () => {
      try {
        return { value: JSON.parse(decode(body, header('content-encoding')).toString('utf8')) as unknown };
      } catch (err) {
        violations.push(`${where}: the body is not JSON (${(err as Error).message})`);
        return undefined;
      }
    };
    const validate = (ref: string) => {
      if (method === 'head') return;
      const parsed = json();
      if (!parsed) return;
      const v = validator(ref);
      if (!v(parsed.value)) violations.push(`${where}: ${ajvErrors(v)} in ${JSON.stringify(parsed.value).slice(0, 300)}`);
    };
    if (!match) {
      if (type === 'application/problem+json') validate('/components/schemas/Problem');
      return;
    }
    const opKey = method === 'head' ? 'get' : method;
    const response = match.item[opKey]!.responses[status];
    if (!response) {
      violations.push(`${where}: status ${status} is not documented for ${opKey.toUpperCase()} ${match.path}`);
      return;
    }
    if (!response.content) {
      if (body.length > 0 && method !== 'head') violations.push(`${where}: a body where the document says none`);
      return;
    }
    const media = Object.keys(response.content).find((m) => mediaMatch(m, type));
    if (!media) {
      violations.push(`${where}: Content-Type ${type} is not one of ${Object.keys(response.content).join(', ')}`);
      return;
    }
    if (response.content[media]!.schema !== undefined && (media.endsWith('json'))) {
      validate(`/${pointer('paths', match.path, opKey, 'responses', status, 'content', media, 'schema')}`);
    }
  };

  http.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    const headerOf = new Map<string, string>();
    (res as ServerResponse & { fieldsyncHeaders?: Map<string, string> }).fieldsyncHeaders = headerOf;
    const keep = (chunk: unknown, encoding?: unknown) => {
      if (chunk === undefined || chunk === null || typeof chunk === 'function') return;
      chunks.push(typeof chunk === 'string' ? Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8') : Buffer.from(chunk as Uint8Array));
    };
    const write = res.write.bind(res) as (...args: unknown[]) => boolean;
    const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
    const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => ServerResponse;
    // headers given to writeHead (the raw fast lane) are not kept where getHeader finds them
    res.writeHead = ((...args: unknown[]) => {
      const given = args.find((a, i) => i > 0 && typeof a === 'object' && a !== null) as Record<string, unknown> | undefined;
      if (given && !Array.isArray(given)) for (const [k, v] of Object.entries(given)) headerOf.set(k.toLowerCase(), String(v));
      return writeHead(...args);
    }) as ServerResponse['writeHead'];
    res.write = ((...args: unknown[]) => {
      keep(args[0], args[1]);
      return write(...args);
    }) as ServerResponse['write'];
    res.end = ((...args: unknown[]) => {
      keep(args[0], args[1]);
      return end(...args);
    }) as ServerResponse['end'];
    res.once('finish', () => {
      try {
        check(req, res, Buffer.concat(chunks));
      } catch (err) {
        violations.push(`${req.method} ${req.url}: the check failed: ${(err as Error).stack}`);
      }
    });
  });
  return { violations, checked: () => checked };
}

function ajvErrors(v: ValidateFunction): string {
  return (v.errors ?? [])
    .slice(0, 5)
    .map((e) => `${e.instancePath || '(root)'} ${e.message ?? ''}${e.params && 'additionalProperty' in e.params ? ` (${String(e.params.additionalProperty)})` : ''}`)
    .join('; ');
}

/** Throws (failing the test's after hook) when the watch saw answers the document does not allow. */
export function assertConformant(watch: AnswerWatch, name: string): void {
  if (watch.violations.length === 0) return;
  throw new Error(`${watch.violations.length} answers of ${name} do not match its OpenAPI document:\n${watch.violations.slice(0, 20).join('\n')}`);
}
