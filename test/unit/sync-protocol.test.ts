import test from 'ava';
import { CursorCodec } from '../../src/protocol/cursor.js';
import { parseBucket } from '../../src/sync/buckets.js';
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
  const c = { epoch: 3, userId: 7, app: 'salesman', profile: 'abcd1234', buckets: { catalog: ['918', 3, '1200'] as const, 'prices:2': ['925', -1, null] as const } };
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

test('bucket names parse strictly', (t) => {
  t.deepEqual(parseBucket('catalog'), { kind: 'catalog' });
  t.deepEqual(parseBucket('prices:12'), { kind: 'prices', key: 12 });
  t.deepEqual(parseBucket('clients:all'), { kind: 'clients', key: 'all' });
  for (const bad of ['prices:all', 'prices:0', 'prices:-1', 'stock:1 ', 'catalog:1', 'clients:01', 'other:1', "clients:1'"]) {
    t.is(parseBucket(bad), undefined, bad);
  }
});
