import test from 'ava';
import { clientAddress } from '../../src/lib/client-address.js';

const PROXY = '10.0.0.1'; // the load balancer the app sees as its peer

test('no trusted proxy: the peer address, whatever X-Forwarded-For says', (t) => {
  t.is(clientAddress('203.0.113.9', '1.2.3.4', 0), '203.0.113.9');
  t.is(clientAddress('203.0.113.9', undefined, 0), '203.0.113.9');
  t.is(clientAddress('::ffff:203.0.113.9', undefined, 0), '203.0.113.9', 'IPv4-mapped IPv6 is the same client');
});

test('one proxy: the entry it appended (the last), never one the client wrote', (t) => {
  t.is(clientAddress(PROXY, '198.51.100.7', 1), '198.51.100.7');
  t.is(clientAddress(PROXY, '1.2.3.4, 198.51.100.7', 1), '198.51.100.7', 'a forged first entry is ignored');
  t.is(clientAddress(PROXY, '9.9.9.9,8.8.8.8 ,198.51.100.7', 1), '198.51.100.7');
  t.is(clientAddress(PROXY, ['1.2.3.4', '198.51.100.7'], 1), '198.51.100.7', 'repeated headers read as one list');
  t.is(clientAddress(PROXY, '2001:db8::1', 1), '2001:db8::1');
  t.is(clientAddress(PROXY, '198.51.100.7:51234', 1), '198.51.100.7', 'a port some proxies add is dropped');
  t.is(clientAddress(PROXY, '[2001:DB8::1]:443', 1), '2001:db8::1');
});

test('two proxies: the second entry from the right (what the outer proxy appended)', (t) => {
  // client -> outer proxy (appends the client) -> inner proxy (appends the outer one) -> app
  t.is(clientAddress(PROXY, '198.51.100.7, 10.0.0.2', 2), '198.51.100.7');
  t.is(clientAddress(PROXY, '1.2.3.4, 5.6.7.8, 198.51.100.7, 10.0.0.2', 2), '198.51.100.7');
});

test('fewer entries than hops: the leftmost, which a trusted proxy still appended', (t) => {
  t.is(clientAddress(PROXY, '198.51.100.7', 2), '198.51.100.7');
  t.is(clientAddress(PROXY, '198.51.100.7, 10.0.0.2', 3), '198.51.100.7');
});

test('a missing, empty or malformed header: the peer address', (t) => {
  t.is(clientAddress(PROXY, undefined, 1), PROXY);
  t.is(clientAddress(PROXY, '', 1), PROXY);
  t.is(clientAddress(PROXY, ' , ,', 1), PROXY);
  t.is(clientAddress(PROXY, 'unknown', 1), PROXY);
  t.is(clientAddress(PROXY, '1.2.3.4, <script>', 1), PROXY, 'the trusted position holds no address');
  t.is(clientAddress(PROXY, '198.51.100.7, , ', 1), '198.51.100.7', 'empty entries do not count');
  t.is(clientAddress(PROXY, '999.1.1.1', 1), PROXY);
  t.is(clientAddress(undefined, undefined, 1), '', 'a socket already gone');
});
