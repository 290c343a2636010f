import type { NetworkInterfaceInfo } from 'node:os';
import test from 'ava';
import { emulatorHint, listenUrls, type Interfaces } from '../../src/lib/listen-urls.js';

const v4 = (address: string, internal = false): NetworkInterfaceInfo =>
  ({ address, family: 'IPv4', internal, netmask: '255.255.255.0', mac: '00:00:00:00:00:00', cidr: `${address}/24` }) as NetworkInterfaceInfo;
const v6 = (address: string, internal = false, scopeid = 0): NetworkInterfaceInfo =>
  ({ address, family: 'IPv6', internal, netmask: 'ffff:ffff:ffff:ffff::', mac: '00:00:00:00:00:00', cidr: `${address}/64`, scopeid }) as NetworkInterfaceInfo;

/** A laptop: loopback, Wi-Fi with IPv4, global and link-local IPv6, a Docker bridge. */
const laptop: Interfaces = {
  lo: [v4('127.0.0.1', true), v6('::1', true)],
  wlan0: [v4('192.168.1.20'), v6('2001:db8::20'), v6('fe80::1c2d:3eff:fe4f:5a6b', false, 3)],
  docker0: [v4('172.17.0.1')],
  down: undefined,
};

test('on 0.0.0.0: localhost and every non-internal IPv4 address', (t) => {
  t.deepEqual(listenUrls('0.0.0.0', 3000, laptop), ['http://localhost:3000', 'http://192.168.1.20:3000', 'http://172.17.0.1:3000']);
});

test('on :: (dual stack): IPv6 addresses too, in brackets, without link-local ones', (t) => {
  t.deepEqual(listenUrls('::', 3000, laptop), ['http://localhost:3000', 'http://192.168.1.20:3000', 'http://[2001:db8::20]:3000', 'http://172.17.0.1:3000']);
});

test('on one address: that address only', (t) => {
  t.deepEqual(listenUrls('127.0.0.1', 8080, laptop), ['http://127.0.0.1:8080']);
  t.deepEqual(listenUrls('192.168.1.20', 8080, laptop), ['http://192.168.1.20:8080']);
  t.deepEqual(listenUrls('::1', 8080, laptop), ['http://[::1]:8080']);
});

test('no network: localhost alone', (t) => {
  t.deepEqual(listenUrls('0.0.0.0', 3000, { lo: [v4('127.0.0.1', true)] }), ['http://localhost:3000']);
  t.deepEqual(listenUrls('0.0.0.0', 3000, {}), ['http://localhost:3000']);
});

test('the emulator hint when the host loopback reaches the server', (t) => {
  t.is(emulatorHint('0.0.0.0', 3000), 'Android emulator: http://10.0.2.2:3000   iOS simulator: http://localhost:3000');
  t.truthy(emulatorHint('::', 3000));
  t.truthy(emulatorHint('127.0.0.1', 3000));
  t.is(emulatorHint('192.168.1.20', 3000), undefined, 'bound to a LAN address only: 10.0.2.2 (the host loopback) does not reach it');
});
