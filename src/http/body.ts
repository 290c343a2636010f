import busboy from 'busboy';
import coBody from 'co-body';
import type { Context } from 'koa';

/**
 * The one way request bodies are read: JSON with co-body, uploads as raw bytes with
 * co-body or as a multipart file with busboy. Every failure leaves here in the shape
 * raw-body and Koa's ctx.throw already use (`status`, `type`, `message`), so
 * problem.ts maps each `type` to a catalogue code in one place.
 */

/** The content codings co-body decodes (through inflation); anything else is refused (415). */
const CODINGS = new Set(['identity', 'gzip', 'deflate', 'br']);

/** Room for multipart boundaries, part headers and small fields around the file itself. */
const MULTIPART_OVERHEAD = 64 * 1024;

export type BodyErrorType =
  | 'content.encoding.invalid'
  | 'content.encoding.unsupported'
  | 'content.type.unsupported'
  | 'multipart.malformed'
  | 'multipart.fields'
  | 'entity.too.large';

/** An error in http-errors' shape (as raw-body throws them), for problem.ts to map by `type`. */
function bodyError(status: number, type: BodyErrorType, message: string, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(message), { ...extra, status, type, expose: true });
}

function contentCoding(ctx: Context): string {
  const coding = ctx.get('content-encoding') || 'identity';
  if (!CODINGS.has(coding)) throw bodyError(415, 'content.encoding.unsupported', `Content-Encoding ${coding} is not supported: send identity, gzip, deflate or br`);
  return coding;
}

/**
 * co-body's own errors carry a status (raw-body's limit, JSON.parse's SyntaxError); one
 * without a status comes from the decoder: the bytes are not valid gzip, deflate or br.
 */
function decodeFailed(coding: string) {
  return (err: unknown): never => {
    if (typeof (err as { status?: unknown }).status === 'number' || coding === 'identity') throw err;
    throw bodyError(400, 'content.encoding.invalid', `The body is not valid ${coding}: ${(err as Error).message}`);
  };
}

/**
 * The JSON body, read once: a body read before (by the pull fast lane) is in
 * ctx.request.body and is returned as it is. `limit` bounds the decoded bytes.
 */
export async function readJson(ctx: Context, limit: number): Promise<unknown> {
  const request = ctx.request as { body?: unknown };
  if (request.body !== undefined) return request.body;
  const coding = contentCoding(ctx);
  request.body = await coBody.json(ctx, { limit, strict: true }).catch(decodeFailed(coding));
  return request.body;
}

// co-body's text parser returns the bytes with `encoding: false` (since co-body 5.2); its
// types only know strings
const readBytes = coBody.text as unknown as (ctx: Context, opts: { limit: number; encoding: false }) => Promise<Buffer>;

/**
 * An uploaded file: multipart/form-data's file in `field` (browsers, curl -F), otherwise
 * the raw body (curl --data-binary, scripts), whatever its type: the bytes decide what
 * they are. A JSON body is refused (415): it is a request meant for another route.
 */
export async function readUpload(ctx: Context, limit: number, field: string): Promise<Buffer> {
  if (ctx.is('multipart/form-data')) return readMultipartFile(ctx, limit, field);
  if (ctx.is('application/json', '+json')) {
    throw bodyError(415, 'content.type.unsupported', `send the file as multipart/form-data (field "${field}") or as the raw bytes, not JSON`);
  }
  const coding = contentCoding(ctx);
  return readBytes(ctx, { limit, encoding: false }).catch(decodeFailed(coding));
}

/**
 * The one file in `field` of a multipart body. Anything else is refused as soon as it is
 * seen (another file, too many fields, more than limit plus room for the form's framing),
 * so a refused upload is never read to its end.
 */
function readMultipartFile(ctx: Context, limit: number, field: string): Promise<Buffer> {
  const req = ctx.req;
  if (contentCoding(ctx) !== 'identity') throw bodyError(415, 'content.encoding.unsupported', 'multipart/form-data is taken without a Content-Encoding');
  if (Number(req.headers['content-length'] ?? 0) > limit + MULTIPART_OVERHEAD) throw bodyError(413, 'entity.too.large', 'request entity too large', { limit });
  let parser: busboy.Busboy;
  try {
    parser = busboy({ headers: req.headers, limits: { fileSize: limit, files: 1, fields: 10, fieldSize: 1024, parts: 11, headerPairs: 20 } });
  } catch (err) {
    throw bodyError(400, 'multipart.malformed', `The multipart body cannot be read: ${(err as Error).message}`); // no boundary, say
  }
  return new Promise<Buffer>((resolve, reject) => {
    let settled = false;
    let file: Promise<Buffer> | undefined;
    let received = 0;
    const finish = (err: Error | undefined, bytes?: Buffer) => {
      if (settled) return;
      settled = true;
      req.off('data', count);
      req.off('close', aborted);
      if (err) {
        // stop reading: the problem middleware closes the connection on the unread rest
        req.unpipe(parser);
        parser.destroy();
        reject(err);
      } else {
        resolve(bytes!);
      }
    };
    const tooLarge = () => finish(bodyError(413, 'entity.too.large', 'request entity too large', { limit }));
    const fields = (detail: string) => finish(bodyError(400, 'multipart.fields', `${detail}: send one file, in the field "${field}"`));
    const count = (chunk: Buffer) => {
      received += chunk.length;
      if (received > limit + MULTIPART_OVERHEAD) tooLarge();
    };
    const aborted = () => {
      if (!req.complete) finish(bodyError(400, 'multipart.malformed', 'The request ended before the multipart body'));
    };
    parser.on('file', (name, stream) => {
      stream.on('error', () => {}); // a truncated form fails the parser too, reported below
      if (name !== field) {
        stream.resume();
        return fields(`a file in the field "${name}"`);
      }
      stream.on('limit', tooLarge);
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      file = new Promise((done) => stream.on('end', () => done(Buffer.concat(chunks))));
    });
    parser.on('filesLimit', () => fields('more than one file'));
    parser.on('fieldsLimit', () => fields('more than 10 fields'));
    parser.on('partsLimit', () => fields('more than 11 parts'));
    parser.on('error', (err: Error) => finish(bodyError(400, 'multipart.malformed', `The multipart body is malformed: ${err.message}`)));
    parser.on('close', () => {
      if (!file) return fields('no file');
      void file.then((bytes) => finish(undefined, bytes));
    });
    req.on('data', count);
    req.on('close', aborted);
    req.pipe(parser);
  });
}
