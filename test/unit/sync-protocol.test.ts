import test from 'ava';
import { CursorCodec } from '../../src/protocol/cursor.js';
import type { BucketDef, Model } from '../../src/model/model.js';
import { parseBucket } from '../../src/model/model.js';
import { fnv1a32, rowHash, sumHashes } from '../../src/sync/checksum.js';

test('FNV-1a 32 matches the reference vectors and the README example', (t) => {
  t.is(fnv1a32(''), 0x811c9dc5);
  t.is(fnv1a32('a'), 0xe40c292c);
  t.is(fnv1a32('foobar'), 0xbf9cf968);
  t.is(rowHash('products', 1, 918), 3324079096);
  t.is(sumHashes([rowHash('products', 1, 918), rowHash('products', 2, 918)]), 1009155957);
  t.is(fnv1a32('عميل'), fnv1a32('عميل'), 'UTF-8 bytes, stable');
  t.not(fnv1a32('عميل'), fnv1a32('عمیل'));
});

test('cursors round-trip, and any change to the bytes or the key is refused', (t) => {
  const codec = new CursorCodec('a-server-secret-that-is-long-enough-32');
  const c = { epoch: 3, userId: '7', app: 'salesman', profile: 'abcd1234', buckets: { catalog: ['918', 'products', '1200'] as const, 'prices:2': ['925', null, null] as const } };
  const s = codec.encode(c);
  t.regex(s, /^[\w-]+\.[\w-]+$/, 'base64url, URL-safe');
  t.deepEqual(codec.decode(s), c);
  const [body, sig] = s.split('.') as [string, string];
  const flipped = body.slice(0, 10) + (body[10] === 'A' ? 'B' : 'A') + body.slice(11);
  t.is(codec.decode(`${flipped}.${sig}`), 'signature');
  t.is(new CursorCodec('another-server-secret-that-is-long-32').decode(s), 'signature');
  t.is(codec.decode('garbage'), 'malformed');
  t.is(codec.decode(''), 'malformed');
});

test('a cursor of an older format is told apart (410, start over), never misread', (t) => {
  const codec = new CursorCodec('a-server-secret-that-is-long-enough-32');
  const current = codec.encode({ epoch: 1, userId: '7', app: 'salesman', profile: 'abcd1234', buckets: {} });
  // the same key signs a format-1 payload (positions were [tx, part, id])
  const body = Buffer.from(JSON.stringify({ f: 1, e: 1, u: 7, a: 'salesman', p: 'abcd1234', b: { catalog: ['918', 3, '1200'] } })).toString('base64url');
  const mac = (codec as unknown as { mac(b: string): Buffer }).mac(body).toString('base64url');
  t.is(codec.decode(`${body}.${mac}`), 'outdated');
  t.not(codec.decode(current), 'outdated');
});

test('bucket names parse strictly against the config', (t) => {
  const def = (name: string, keyed: boolean) => ({ name, keyed, snapshot: false, collections: [], hash: '' }) as BucketDef;
  const model = { buckets: new Map([['catalog', def('catalog', false)], ['prices', def('prices', true)], ['clients', def('clients', true)]]) } as unknown as Model;
  t.like(parseBucket(model, 'catalog'), { def: { name: 'catalog' } });
  t.is(parseBucket(model, 'catalog')!.key, undefined);
  t.like(parseBucket(model, 'prices:12'), { def: { name: 'prices' }, key: '12' });
  t.like(parseBucket(model, 'clients:all'), { key: 'all' });
  t.like(parseBucket(model, 'clients:SO-0001'), { key: 'SO-0001' }, 'keys are text: uuid, codes');
  for (const bad of ['prices', 'catalog:1', 'other:1', 'prices:', 'Prices:1', 'prices:a\u0000b', `prices:${'x'.repeat(201)}`]) {
    t.is(parseBucket(model, bad), undefined, bad);
  }
});
