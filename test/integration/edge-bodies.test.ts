import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { brotliCompressSync, gzipSync } from 'node:zlib';
import test, { type ExecutionContext } from 'ava';
import sharp from 'sharp';
import { errorCatalogue } from '../../src/errors.js';
import { s as fs } from '../../src/model/model.js';
import { FIXTURE_PASSWORD, loadFixture } from '../helpers/fixture.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/**
 * Request bodies that cannot be read (issue 12, items 1, 6 and 7): bytes that are not
 * valid in their Content-Encoding, malformed multipart forms, a JSON body on the image
 * route, and bodies over the limit sent chunked. Each is a 4xx problem+json with a
 * catalogue code, nothing is written, and a connection whose body was left unread is
 * closed instead of hanging the next request.
 */
const BODY_LIMIT = 64 * 1024;
const MEDIA_LIMIT = 256 * 1024;
let s: TestServer;
const tokens: Record<string, string> = {};
let jpeg: Buffer;

test.before(async () => {
  s = await startTestServer({ BODY_LIMIT_BYTES: String(BODY_LIMIT), MEDIA_MAX_BYTES: String(MEDIA_LIMIT) });
  await loadFixture(s.db);
  await s.settle();
  for (const who of ['admin', 'salesman1']) {
    const res = await s.post('/v1/auth/login', { email: `${who}@fixture.test`, password: FIXTURE_PASSWORD });
    tokens[who] = ((await res.json()) as { token: string }).token;
  }
  jpeg = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#2c3e50' } }).jpeg().toBuffer();
});
test.after.always(async () => {
  await s?.close();
});

const bearer = (who: string) => ({ authorization: `Bearer ${tokens[who]}` });

/** The answer is problem+json with a code from the catalogue, of the status expected. */
async function isProblem(t: ExecutionContext, res: Response, status: number, code: string, name: string): Promise<Record<string, unknown>> {
  const body = (await res.json()) as Record<string, unknown>;
  t.is(res.status, status, `${name}: ${JSON.stringify(body)}`);
  t.is(res.headers.get('content-type'), 'application/problem+json', name);
  t.is(body.code, code, name);
  t.true(Object.hasOwn(errorCatalogue, body.code as string), `${name}: ${String(body.code)} is in the catalogue`);
  return body;
}

/** The same JSON, sent with each encoding in a way that cannot be decoded. */
function undecodable(value: unknown): [string, string, Buffer][] {
  const json = Buffer.from(JSON.stringify(value));
  const gzip = gzipSync(json);
  const br = brotliCompressSync(json);
  return [
    ['plain JSON labelled gzip', 'gzip', json],
    ['plain JSON labelled deflate', 'deflate', json],
    ['plain JSON labelled br', 'br', json],
    ['truncated gzip', 'gzip', gzip.subarray(0, Math.floor(gzip.length / 2))],
    ['truncated br', 'br', br.subarray(0, Math.floor(br.length / 2))],
  ];
}

const send = (method: string, path: string, body: Buffer | string, headers: Record<string, string>) =>
  s.fetch(path, { method, headers, body });

/** Every undecodable form of `value` is 400 body-encoding-invalid; an unknown coding is 415. */
async function refusesUndecodable(t: ExecutionContext, path: string, value: unknown, headers: Record<string, string>): Promise<void> {
  for (const [name, coding, bytes] of undecodable(value)) {
    const res = await send('POST', path, bytes, { 'content-type': 'application/json', 'content-encoding': coding, ...headers });
    await isProblem(t, res, 400, 'body-encoding-invalid', `${path}: ${name}`);
  }
  const unknown = await send('POST', path, JSON.stringify(value), { 'content-type': 'application/json', 'content-encoding': 'compress', ...headers });
  const body = await isProblem(t, unknown, 415, 'unsupported-content-encoding', `${path}: compress`);
  t.regex(String(body.detail), /gzip, deflate or br/);
}

test.serial('bodies not valid in their Content-Encoding: 400 body-encoding-invalid on login, pull, push and admin users; nothing written', async (t) => {
  const login = { email: 'salesman1@fixture.test', password: FIXTURE_PASSWORD };
  await refusesUndecodable(t, '/v1/auth/login', login, {});
  const ok = await send('POST', '/v1/auth/login', gzipSync(JSON.stringify(login)), { 'content-type': 'application/json', 'content-encoding': 'gzip' });
  t.is(ok.status, 200, 'a valid gzip body is read');

  // a token the fast lane has not seen yet (the full route reads the body), then one it
  // knows (the fast lane reads the body itself)
  const fresh = await s.post('/v1/auth/login', { email: 'salesman2@fixture.test', password: FIXTURE_PASSWORD });
  const first = { authorization: `Bearer ${((await fresh.json()) as { token: string }).token}` };
  await refusesUndecodable(t, '/v1/sync/pull', { limit: 10 }, first);
  const pulled = await s.post('/v1/sync/pull', { limit: 10 }, bearer('salesman1'));
  t.is(pulled.status, 200);
  const { cursor } = (await pulled.json()) as { cursor: string };
  await refusesUndecodable(t, '/v1/sync/pull', { cursor, limit: 10 }, bearer('salesman1'));
  t.is((await s.post('/v1/sync/pull', { cursor, limit: 10 }, bearer('salesman1'))).status, 200, 'the fast lane still answers');

  const orders = async () => (await s.db.one<{ n: number }>('SELECT count(*)::int AS n FROM orders')).n;
  const before = await orders();
  const push = { deviceId: 'edge-phone', mutations: [{ id: randomUUID(), type: 'order.create', payload: { orderId: randomUUID(), clientId: 4, lines: [{ productId: 1, qty: 1 }] } }] };
  await refusesUndecodable(t, '/v1/sync/push', push, bearer('salesman1'));
  t.is(await orders(), before, 'no order written');

  const users = async () => (await s.db.one<{ n: number }>(`SELECT count(*)::int AS n FROM ${fs(s.model, 'users')} WHERE email = 'edge@test.example'`)).n;
  const user = { email: 'edge@test.example', password: 'long enough', role: 'warehouse', displayName: 'Edge' };
  await refusesUndecodable(t, '/v1/admin/users', user, bearer('admin'));
  t.is(await users(), 0, 'no user created');
});

/** A multipart form with one part, framed by `boundary`. */
const form = (boundary: string, headers: string, content: Buffer) =>
  Buffer.concat([Buffer.from(`--${boundary}\r\n${headers}\r\n\r\n`), content, Buffer.from(`\r\n--${boundary}--\r\n`)]);
const imagePart = 'Content-Disposition: form-data; name="image"; filename="p.jpg"\r\nContent-Type: image/jpeg';

test.serial('malformed multipart and a JSON body on the image route: 4xx problem+json, never 500; nothing stored', async (t) => {
  const path = '/v1/admin/products/1/image';
  const imageKey = async () => (await s.db.oneOrNone<{ key: string }>(`SELECT key FROM ${fs(s.model, 'images')} WHERE row_key = '1'`))?.key ?? null;
  const valid = form('b0und', imagePart, jpeg);
  const cases: [string, string, Buffer, number, string][] = [
    ['no boundary', 'multipart/form-data', valid, 400, 'multipart-malformed'],
    ['truncated', 'multipart/form-data; boundary=b0und', valid.subarray(0, Math.floor(valid.length / 2)), 400, 'multipart-malformed'],
    ['boundary mismatch', 'multipart/form-data; boundary=other', valid, 400, 'multipart-malformed'],
    ['empty body', 'multipart/form-data; boundary=b0und', Buffer.alloc(0), 400, 'multipart-malformed'],
    ['bad part header', 'multipart/form-data; boundary=b0und', form('b0und', 'Content Disposition: form-data; name="image"', jpeg), 400, 'multipart-malformed'],
    ['the file in another field', 'multipart/form-data; boundary=b0und', form('b0und', imagePart.replace('"image"', '"photo"'), jpeg), 400, 'validation-failed'],
    ['no file at all', 'multipart/form-data; boundary=b0und', Buffer.from('--b0und--\r\n'), 400, 'validation-failed'],
  ];
  for (const method of ['POST', 'PUT']) {
    for (const [name, type, body, status, code] of cases) {
      await isProblem(t, await send(method, path, body, { ...bearer('admin'), 'content-type': type }), status, code, `${method} ${name}`);
    }
  }
  const json = await isProblem(t, await s.fetch(path, { method: 'PUT', headers: { ...bearer('admin'), 'content-type': 'application/json' }, body: '{"image":"x"}' }), 415, 'unsupported-media-type', 'PUT JSON');
  t.regex(String(json.detail), /multipart\/form-data.*raw bytes/, 'the detail says what is accepted');
  await isProblem(t, await s.post(path, { image: 'x' }, bearer('admin')), 415, 'unsupported-media-type', 'POST JSON');
  t.is(await imageKey(), null, 'nothing stored');

  t.is((await send('POST', path, valid, { ...bearer('admin'), 'content-type': 'multipart/form-data; boundary=b0und' })).status, 201, 'a valid form is stored');
  t.not(await imageKey(), null);
});

type Outcome = { status: number; headers: Record<string, string>; body: Record<string, unknown>; next: 'answered' | 'closed' | 'hung' };

/** Resolves true once `check` holds (checked on every read and on close), false after `ms`. */
function until(socket: Socket, check: () => boolean, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.off('data', test);
      socket.off('close', test);
      resolve(ok);
    };
    const test = () => check() && done(true);
    const timer = setTimeout(() => done(false), ms);
    socket.on('data', test);
    socket.on('close', test);
    test();
  });
}

/**
 * On one raw connection: a chunked body of `bytes` to `path`, its answer, then a second
 * request on the same socket, which must be answered or see the socket closed: never left
 * waiting (bounded at 5 s).
 */
async function overLimitThenNext(method: string, path: string, headers: Record<string, string>, bytes: number): Promise<Outcome> {
  const { hostname, port } = new URL(s.url);
  const socket = connect(Number(port), hostname);
  socket.on('error', () => {}); // the server may close while we still write: that is an allowed end
  await once(socket, 'connect');
  let received = Buffer.alloc(0);
  let closed = false;
  socket.on('data', (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
  socket.on('close', () => (closed = true));
  const head = Object.entries({ host: hostname, ...headers, 'transfer-encoding': 'chunked' }).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  socket.write(`${method} ${path} HTTP/1.1\r\n${head}\r\n`);
  const chunk = Buffer.alloc(16 * 1024, 'a');
  for (let sent = 0; sent < bytes; sent += chunk.length) socket.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
  socket.write('0\r\n\r\n');

  let end = -1;
  const answered = await until(socket, () => {
    const at = received.indexOf('\r\n\r\n');
    const length = /content-length: (\d+)/i.exec(received.subarray(0, at).toString('latin1'))?.[1];
    if (at >= 0 && length !== undefined && received.length >= at + 4 + Number(length)) end = at + 4 + Number(length);
    return end >= 0;
  }, 10_000);
  if (!answered) {
    socket.destroy();
    throw new Error(`no answer to the over-limit ${method} ${path}`);
  }
  const [statusLine, ...lines] = received.subarray(0, received.indexOf('\r\n\r\n')).toString('latin1').split('\r\n');
  const headersIn = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
  const body = JSON.parse(received.subarray(received.indexOf('\r\n\r\n') + 4, end).toString()) as Record<string, unknown>;

  if (!closed) socket.write(`GET /health HTTP/1.1\r\nhost: ${hostname}\r\n\r\n`);
  const settled = await until(socket, () => closed || received.indexOf('HTTP/1.1 ', end) >= 0, 5_000);
  const next = !settled ? 'hung' : received.indexOf('HTTP/1.1 ', end) >= 0 ? 'answered' : 'closed';
  socket.destroy();
  return { status: Number(statusLine!.split(' ')[1]), headers: headersIn, body, next };
}

test.serial('a chunked body over the limit: 413, and the connection answers its next request or closes (never hangs)', async (t) => {
  const json = { 'content-type': 'application/json' };
  const cases: [string, string, Record<string, string>, number][] = [
    ['/v1/auth/login', 'POST', json, BODY_LIMIT * 4],
    ['/v1/sync/pull', 'POST', { ...json, ...bearer('salesman1') }, BODY_LIMIT * 4], // a known token: the fast lane reads it
    ['/v1/sync/push', 'POST', { ...json, ...bearer('salesman1') }, BODY_LIMIT * 4],
    ['/v1/admin/users', 'POST', { ...json, ...bearer('admin') }, BODY_LIMIT * 4],
    ['/v1/admin/products/2/image', 'PUT', { 'content-type': 'application/octet-stream', ...bearer('admin') }, MEDIA_LIMIT * 4],
    ['/v1/admin/products/2/image', 'POST', { 'content-type': 'multipart/form-data; boundary=b0und', ...bearer('admin') }, MEDIA_LIMIT * 4],
  ];
  for (const [path, method, headers, bytes] of cases) {
    const got = await overLimitThenNext(method, path, headers, bytes);
    const name = `${method} ${path}`;
    t.is(got.status, 413, name);
    t.is(got.headers['content-type'], 'application/problem+json', name);
    t.is(got.body.code, 'payload-too-large', name);
    t.is(got.headers.connection, 'close', `${name}: the unread rest of the body ends the connection`);
    t.not(got.next, 'hung', `${name}: the next request on that connection`);
  }
  t.is((await s.fetch('/health')).status, 200, 'still serving');
});
