import { createHash } from 'node:crypto';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import test from 'ava';
import S3rver from 's3rver';
import sharp from 'sharp';
import { s as fs } from '../../src/model/model.js';
import { erpPool } from '../helpers/db.js';
import { Device } from '../helpers/device.js';
import { FIXTURE_PASSWORD, loadFixture } from '../helpers/fixture.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/**
 * Product images against a real S3 API (s3rver) owned by this test, behind a small proxy
 * that can fail the n-th PUT: an S3 failure in the middle of an upload, on purpose.
 * fieldsync keeps images in its own schema (`<schema>.images`, never a column of the
 * ERP's products); pull joins them into the products' media columns.
 */
let s: TestServer;
let s3dir: string;
let s3: S3rver;
let s3port: number;
let proxy: Server;
let failPut = 0; // fail the n-th PUT from now (0: never), and every retry of that object
const failing = new Set<string>();
const tokens: Record<string, string> = {};

test.before(async () => {
  s3dir = await mkdtemp(join(tmpdir(), 'fieldsync-s3-'));
  s3 = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: s3dir, configureBuckets: [{ name: 'media', configs: [] }] });
  s3port = (await s3.run()).port;
  proxy = createServer((req, res) => {
    if (req.method === 'PUT' && ((failPut > 0 && --failPut === 0) || failing.has(req.url!.split('?')[0]!))) {
      failing.add(req.url!.split('?')[0]!);
      req.resume();
      res.writeHead(500).end('<Error><Code>InternalError</Code></Error>');
      return;
    }
    const up = httpRequest({ host: '127.0.0.1', port: s3port, path: req.url, method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.writeHead(502).end());
    req.pipe(up);
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  s = await startTestServer({
    S3_ENDPOINT: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    S3_BUCKET: 'media',
    S3_ACCESS_KEY_ID: 'S3RVER',
    S3_SECRET_ACCESS_KEY: 'S3RVER',
    MEDIA_MAX_BYTES: String(20 * 1024 * 1024),
  });
  await loadFixture(s.db);
  for (const who of ['admin', 'manager', 'salesman1']) {
    const res = await s.post('/v1/auth/login', { email: `${who}@fixture.test`, password: FIXTURE_PASSWORD });
    tokens[who] = ((await res.json()) as { token: string }).token;
  }
});
test.after.always(async () => {
  try {
    await s?.close(); // throws when an answer did not match the OpenAPI document
  } finally {
    proxy?.close();
    await s3?.close();
    await rm(s3dir, { recursive: true, force: true });
  }
});

/** The product's current image prefix (fieldsync's images table), null when it has none. */
const imageKey = async (id: number): Promise<string | null> =>
  (await s.db.oneOrNone<{ key: string }>(`SELECT key FROM ${fs(s.model, 'images')} WHERE coll = 'products' AND row_key = $1`, [String(id)]))?.key ?? null;
/** The transactions of the product's items (what devices pull again when it moves). */
const itemTx = (id: number) =>
  s.db.map(`SELECT bucket || ':' || seq::text || ':' || deleted AS t FROM ${fs(s.model, 'items')} WHERE coll = 'products' AND row_key = $1 ORDER BY bucket`, [String(id)], (r: { t: string }) => r.t);
const keysUnder = async (prefix: string) => {
  const client = new S3Client({ endpoint: `http://127.0.0.1:${s3port}`, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  const r = await client.send(new ListObjectsV2Command({ Bucket: 'media', Prefix: prefix }));
  client.destroy();
  return (r.Contents ?? []).map((o) => o.Key!);
};
const put = (id: number | string, body: Buffer | string, who = 'admin', type = 'application/octet-stream') =>
  s.fetch(`/v1/admin/products/${id}/image`, { method: 'PUT', headers: { authorization: `Bearer ${tokens[who]}`, 'content-type': type }, body });
const post = (id: number, body: Buffer, filename = 'photo.jpg', type = 'image/jpeg', who = 'admin') => {
  const form = new FormData();
  form.append('image', new Blob([body], { type }), filename);
  return s.fetch(`/v1/admin/products/${id}/image`, { method: 'POST', headers: { authorization: `Bearer ${tokens[who]}` }, body: form });
};

// fixtures, made here with sharp
const portrait = () =>
  sharp({ create: { width: 600, height: 400, channels: 3, background: '#c0392b' } })
    .composite([{ input: { create: { width: 200, height: 100, channels: 3, background: '#2c3e50' } }, left: 0, top: 0 }])
    .jpeg()
    .withMetadata({ orientation: 6 }) // the camera was held upright: displayed as 400x600
    .withExif({ IFD0: { Artist: 'field photographer', Copyright: 'GPS 24.7136N 46.6753E' } })
    .toBuffer();
const pngAlpha = () => sharp({ create: { width: 300, height: 300, channels: 4, background: { r: 0, g: 128, b: 0, alpha: 0.3 } } }).png().toBuffer();
const panorama = () => {
  const w = 6000;
  const h = 1500;
  const noise = Buffer.alloc(w * h * 3);
  for (let i = 0; i < noise.length; i++) noise[i] = (i * 2654435761) >>> 24; // cheap deterministic noise: hard to compress
  return sharp(noise, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
};

interface ImageAnswer {
  image: { collection: string; id: number | string; key: string; width: number; height: number; placeholder: string; unchanged: boolean; variants: Record<string, { key: string; bytes: number; width: number; height: number; type: string; sha256: string }> };
}

test.serial('a portrait with EXIF rotation: every variant stored, rotated, stripped, thumb ≤ 20 KB', async (t) => {
  const res = await post(1, await portrait());
  t.is(res.status, 201, await res.clone().text());
  const { image } = (await res.json()) as ImageAnswer;
  t.like(image, { collection: 'products', id: 1, unchanged: false }, 'the row, by its wire id');
  t.is(await imageKey(1), image.key, 'recorded in fieldsync\'s images table');
  t.deepEqual([image.width, image.height], [400, 600], 'auto-rotated');
  t.deepEqual(Object.keys(image.variants).sort(), ['detail', 'thumb', 'thumb_jpg', 'zoom']);
  t.like(image.variants.thumb, { width: 200, height: 200, type: 'image/webp' });
  t.like(image.variants.thumb_jpg, { width: 200, height: 200, type: 'image/jpeg' });
  t.like(image.variants.detail, { width: 400, height: 600 }, 'inside 800x800, never enlarged');
  t.true(image.variants.thumb!.bytes <= 20_000);
  t.true(Buffer.byteLength(image.placeholder) < 40, `placeholder ${image.placeholder.length} bytes`);
  t.regex(image.key, /^products\/1\/[0-9a-f]{16}-[0-9a-f]{6}$/);
  for (const v of Object.values(image.variants)) {
    const got = await s.fetch(`/v1/media/${v.key}`);
    t.is(got.status, 200);
    t.is(got.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    t.is(got.headers.get('content-type'), v.type);
    const bytes = Buffer.from(await got.arrayBuffer());
    t.is(bytes.length, v.bytes);
    const meta = await sharp(bytes).metadata();
    t.is(meta.exif, undefined, `${v.key}: EXIF (and GPS) stripped`);
    t.true(meta.orientation === undefined || meta.orientation === 1);
  }
  t.is((await keysUnder(image.key)).length, 5, 'four variants and the original');
});

test.serial('a PNG with alpha and a large panorama give the right sizes; the thumb stays ≤ 20 KB', async (t) => {
  const a = ((await (await put(2, await pngAlpha())).json()) as ImageAnswer).image;
  t.like(a.variants.detail, { width: 300, height: 300, type: 'image/webp' });
  t.is((await sharp(Buffer.from(await (await s.fetch(`/v1/media/${a.variants.thumb!.key}`)).arrayBuffer())).metadata()).hasAlpha, true, 'WebP keeps the alpha');
  const res = await put(3, await panorama());
  t.is(res.status, 201);
  const p = ((await res.json()) as ImageAnswer).image;
  t.deepEqual([p.width, p.height], [6000, 1500]);
  t.like(p.variants.zoom, { width: 1600, height: 400 });
  t.like(p.variants.detail, { width: 800, height: 200 });
  t.true(p.variants.thumb!.bytes <= 20_000, `${p.variants.thumb!.bytes} bytes`);
  t.true(p.variants.thumb_jpg!.bytes <= 20_000, `${p.variants.thumb_jpg!.bytes} bytes`);
});

test.serial('the same bytes again are a no-op; the pull that follows carries the new image fields', async (t) => {
  const bytes = await portrait();
  const first = ((await (await put(4, bytes)).json()) as ImageAnswer).image;
  const again = await put(4, bytes);
  t.is(again.status, 200);
  t.like(await again.json(), { image: { collection: 'products', id: 4, key: first.key, unchanged: true } });
  const device = new Device('salesman1', (cursor, limit) => s.post('/v1/sync/pull', { ...(cursor && { cursor }), limit }, { authorization: `Bearer ${tokens.salesman1}` }), s.url);
  await s.settle();
  await device.catchUp(1000);
  const row = device.table('products').get('4')!.row;
  t.like(row, { image: first.key, image_w: 400, image_h: 600, placeholder: first.placeholder });
});

test.serial('an S3 failure midway leaves the old image and no half-written keys', async (t) => {
  const before = await imageKey(1);
  t.truthy(before);
  await s.settle();
  const txBefore = await itemTx(1);
  const other = await sharp({ create: { width: 500, height: 500, channels: 3, background: '#16a085' } }).jpeg().toBuffer();
  failPut = 3; // the third variant write fails
  const res = await put(1, other);
  t.is(res.status, 503);
  t.like(await res.json(), { code: 'unavailable' });
  t.is(await imageKey(1), before, 'the old image stays');
  t.deepEqual(await itemTx(1), txBefore, 'the row is not re-sent to devices');
  const prefixes = (await keysUnder('products/1/')).map((k) => k.split('/').slice(0, 3).join('/'));
  t.deepEqual([...new Set(prefixes)], [before], 'nothing of the failed upload remains');
  failPut = 0;
  failing.clear();
  t.is((await put(1, other)).status, 201, 'and it works once S3 does');
});

test.serial('bad input: 413 for size, 415 for format, 422 for undecodable; nothing stored, still serving', async (t) => {
  const jpeg = await portrait();
  const sof = jpeg.indexOf(Buffer.from([0xff, 0xc0]));
  const bomb = Buffer.from(jpeg);
  bomb.writeUInt16BE(60_000, sof + 5); // height
  bomb.writeUInt16BE(60_000, sof + 7); // width: 3.6 gigapixels claimed by a small file
  const gif = await sharp({ create: { width: 10, height: 10, channels: 3, background: '#fff' } }).gif().toBuffer();
  const svg = '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"><image xlink:href="http://169.254.169.254/latest/meta-data" width="10" height="10"/></svg>';
  const keys = (await keysUnder('products/5/')).length;
  await s.settle();
  const txBefore = await itemTx(5);
  const cases: [string, Promise<Response>, number, string][] = [
    ['not an image', put(5, 'hello, I am text'), 415, 'unsupported-image'],
    ['zero bytes', put(5, Buffer.alloc(0)), 422, 'unprocessable'],
    ['truncated JPEG', put(5, jpeg.subarray(0, Math.floor(jpeg.length / 2))), 422, 'unprocessable'],
    ['decompression bomb', put(5, bomb), 422, 'unprocessable'],
    ['GIF', put(5, gif), 415, 'unsupported-image'],
    ['SVG with external references', put(5, svg, 'admin', 'image/svg+xml'), 415, 'unsupported-image'],
    ['30 MB body', put(5, Buffer.alloc(30 * 1024 * 1024, 1)), 413, 'payload-too-large'],
    ['30 MB multipart', post(5, Buffer.alloc(30 * 1024 * 1024, 1)), 413, 'payload-too-large'],
    ['no such product', put(99_999, jpeg), 404, 'not-found'],
    ['a salesman', put(5, jpeg, 'salesman1'), 403, 'forbidden'],
    ['a JSON body on the multipart route', s.post('/v1/admin/products/5/image', { image: 'x' }, { authorization: `Bearer ${tokens.admin}` }), 415, 'unsupported-media-type'],
  ];
  for (const [name, pending, status, code] of cases) {
    const res = await pending;
    t.is(res.status, status, name);
    t.is(res.headers.get('content-type'), 'application/problem+json', name);
    t.like(await res.json(), { code }, name);
  }
  t.is((await keysUnder('products/5/')).length, keys, 'nothing stored');
  t.is(await imageKey(5), null, 'no image recorded');
  t.deepEqual(await itemTx(5), txBefore, 'nor the row re-sent to devices');
  t.is((await post(5, jpeg, 'photo.gif', 'image/gif', 'manager')).status, 201, 'the bytes decide, not the name; managers may upload');
});

test.serial('the manifest pages through image changes with URLs, sizes and hashes', async (t) => {
  await s.settle();
  const seen: number[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < 20; page++) {
    const res = await s.fetch(`/v1/media/manifest?limit=2${cursor ? `&cursor=${cursor}` : ''}`, { headers: { authorization: `Bearer ${tokens.salesman1}` } });
    t.is(res.status, 200);
    const body = (await res.json()) as { items: { id: number; placeholder: string; variants: Record<string, { url: string; bytes: number; sha256: string }> }[]; cursor: string; hasMore: boolean };
    t.true(body.items.length <= 2);
    t.regex(body.cursor, /^[0-9]+\.[A-Za-z0-9_-]*$/, '<batch>.<row key as base64url>');
    for (const it of body.items) {
      seen.push(it.id);
      t.is(typeof it.placeholder, 'string');
      t.is(createHash('sha256').update(Buffer.from(await (await s.fetch(it.variants.detail!.url)).arrayBuffer())).digest('hex'), it.variants.detail!.sha256);
      const thumb = await s.fetch(it.variants.thumb!.url);
      t.is(Buffer.from(await thumb.arrayBuffer()).length, it.variants.thumb!.bytes);
    }
    cursor = body.cursor;
    if (!body.hasMore) break;
  }
  t.deepEqual([...new Set(seen)].sort((a, b) => a - b), [1, 2, 3, 4, 5]);
  const res = await s.fetch(`/v1/media/manifest?cursor=${cursor}`, { headers: { authorization: `Bearer ${tokens.salesman1}` } });
  t.deepEqual(((await res.json()) as { items: unknown[] }).items, [], 'nothing new since');
  for (const bad of ['garbage', '12.x=', '12.YR', '99999999999999999999999.', `${cursor!}!`]) {
    t.is((await s.fetch(`/v1/media/manifest?cursor=${encodeURIComponent(bad)}`, { headers: { authorization: `Bearer ${tokens.salesman1}` } })).status, 400, bad);
  }
  t.is((await s.fetch('/v1/media/manifest')).status, 401, 'for signed-in users only');
});

test.serial('replaced images are deleted after the grace period, never while a product points at them', async (t) => {
  const garbage = fs(s.model, 'media_garbage');
  const old = (await imageKey(2))!;
  t.is((await put(2, await portrait())).status, 201);
  t.deepEqual(await s.db.any(`SELECT prefix, coll, row_key FROM ${garbage} WHERE prefix = $1`, [old]), [{ prefix: old, coll: 'products', row_key: '2' }]);
  t.is(await s.media.cleanup(1), 0, 'within the grace period');
  t.is((await keysUnder(`${old}/`)).length, 5, 'still there for devices that synced the old row');
  const current = (await imageKey(2))!;
  t.not(current, old);
  // a prefix in the garbage that a row points at again (an old image uploaded anew while
  // the cleanup ran): never deleted, however old its entry
  await s.db.none(`INSERT INTO ${garbage} (prefix, coll, row_key) VALUES ($1, 'products', '2')`, [current]);
  await s.db.none(`UPDATE ${garbage} SET replaced_at = now() - interval '2 hours'`);
  t.true((await s.media.cleanup(1)) >= 1);
  t.deepEqual(await keysUnder(`${old}/`), []);
  t.is((await s.db.one<{ n: number }>(`SELECT count(*)::int AS n FROM ${garbage} WHERE prefix = $1`, [old])).n, 0, 'its entry done');
  t.is(await imageKey(2), current);
  t.is((await keysUnder(`${current}/`)).length, 5, 'the current image untouched');
  await s.db.none(`DELETE FROM ${garbage} WHERE prefix = $1`, [current]);
});

test.serial('an ERP delete of a product (plain SQL) moves its image to the garbage, deleted after the grace period', async (t) => {
  const garbage = fs(s.model, 'media_garbage');
  const res = await put(6, await pngAlpha());
  t.is(res.status, 201);
  const { key } = ((await res.json()) as ImageAnswer).image;
  t.is((await keysUnder(`${key}/`)).length, 5);
  const erp = erpPool(s.tdb.url, 1); // the ERP's own connection: no fieldsync code in the way
  try {
    await erp.none('DELETE FROM products WHERE id = 6'); // prices and stock cascade
  } finally {
    await erp.$pool.end();
  }
  t.is(await imageKey(6), null, 'the capture trigger removed the image with the row');
  t.like(await s.db.one(`SELECT prefix, coll, row_key FROM ${garbage} WHERE prefix = $1`, [key]), { prefix: key, coll: 'products', row_key: '6' });
  await s.settle();
  const items = await itemTx(6);
  t.true(items.length > 0 && items.every((i) => i.endsWith(':true')), `the row is a delete in each of its buckets: ${items.join(', ')}`);
  t.is(await s.media.cleanup(1), 0, 'within the grace period');
  t.is((await keysUnder(`${key}/`)).length, 5, 'devices that still show it can fetch it meanwhile');
  await s.db.none(`UPDATE ${garbage} SET replaced_at = now() - interval '2 hours' WHERE prefix = $1`, [key]);
  t.is(await s.media.cleanup(1), 1);
  t.deepEqual(await keysUnder(`${key}/`), []);
  t.deepEqual(await s.db.any(`SELECT prefix FROM ${garbage} WHERE prefix = $1`, [key]), []);
  t.is((await put(6, await pngAlpha())).status, 404, 'no row, no upload');
});

test.serial('npm run media:import stores images named by SKU (the demo’s media.name) and lists the unknown names', async (t) => {
  const { execFile } = await import('node:child_process');
  const { writeFile } = await import('node:fs/promises');
  const dir = await mkdtemp(join(tmpdir(), 'fieldsync-import-'));
  try {
    await writeFile(join(dir, 'SKU-7.jpg'), await portrait());
    await writeFile(join(dir, 'SKU-8.png'), await pngAlpha());
    await writeFile(join(dir, 'NOPE-1.jpg'), await portrait());
    await writeFile(join(dir, 'notes.txt'), 'not an image, not imported');
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        ['--import', 'tsx', 'src/cli/media.ts', 'import', dir],
        {
          env: {
            ...process.env,
            DATABASE_URL: s.tdb.url,
            S3_ENDPOINT: `http://127.0.0.1:${s3port}`,
            S3_BUCKET: 'media',
            S3_ACCESS_KEY_ID: 'S3RVER',
            S3_SECRET_ACCESS_KEY: 'S3RVER',
          },
        },
        (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)),
      ),
    );
    // the demo config's media.name is the SKU: the file name without its extension
    t.regex(out, /2 images stored, 0 unchanged, 1 unknown names, 0 failed/);
    t.regex(out, /unknown names: NOPE-1\n/);
    t.regex(await imageKey(7) ?? '', /^products\/7\/[0-9a-f]{16}-[0-9a-f]{6}$/);
    t.regex(await imageKey(8) ?? '', /^products\/8\/[0-9a-f]{16}-[0-9a-f]{6}$/);
    t.is((await keysUnder((await imageKey(7))!)).length, 5, 'every variant and the original stored');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test.serial('connected apps get catalog:image with the new thumb', async (t) => {
  const { io } = await import('socket.io-client');
  const c = io(s.url, { path: '/socket.io', transports: ['websocket'], auth: { token: tokens.salesman1 }, reconnection: false });
  try {
    await new Promise<void>((resolve, reject) => {
      c.once('connect', () => resolve());
      c.once('connect_error', reject);
    });
    const events: { collection: string; id: number | string; thumb: string }[] = [];
    c.on('catalog:image', (e: (typeof events)[number]) => events.push(e));
    const event = new Promise<(typeof events)[number]>((resolve) => c.once('catalog:image', resolve));
    const img = await sharp({ create: { width: 300, height: 300, channels: 3, background: '#8e44ad' } }).jpeg().toBuffer();
    t.is((await put(9, img)).status, 201);
    const e = await event;
    t.like(e, { collection: 'products', id: 9 });
    t.regex(e.thumb, /^\/v1\/media\/products\/9\/[0-9a-f]{16}-[0-9a-f]{6}\/thumb\.webp$/);
    t.is((await s.fetch(e.thumb)).status, 200);
    t.is((await put(9, img)).status, 200, 'the same bytes again');
    await new Promise((r) => setTimeout(r, 300));
    t.is(events.length, 1, 'a no-op upload announces nothing');
  } finally {
    c.disconnect();
  }
});

test.serial('with MEDIA_PRESIGN, image URLs are short-lived presigned S3 URLs', async (t) => {
  const { MediaService } = await import('../../src/images/service.js');
  const { Storage } = await import('../../src/storage/s3.js');
  const storage = new Storage({ endpoint: `http://127.0.0.1:${s3port}`, region: 'us-east-1', bucket: 'media', accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER', forcePathStyle: true });
  const log = (await import('pino')).pino({ level: 'silent' });
  const deps = { db: s.db, model: s.model, storage, log };
  const presigned = new MediaService({ ...deps, options: { maxPixels: 50e6, concurrency: 1, urlMode: 'presigned', baseUrl: undefined, presignSeconds: 60 } });
  const cdn = new MediaService({ ...deps, options: { maxPixels: 50e6, concurrency: 1, urlMode: 'cdn', baseUrl: 'https://cdn.example/', presignSeconds: 60 } });
  const uploaded = await put(10, await sharp({ create: { width: 320, height: 240, channels: 3, background: '#d35400' } }).jpeg().toBuffer());
  const key = ((await uploaded.json()) as ImageAnswer).image.variants.thumb!.key;
  const url = await presigned.url(key);
  t.regex(url, /X-Amz-Signature=.*/);
  t.regex(url, /X-Amz-Expires=60/);
  const res = await fetch(url);
  t.is(res.status, 200);
  t.is(res.headers.get('content-type'), 'image/webp');
  t.is(await cdn.url(key), `https://cdn.example/${key}`);
  storage.close();
});
