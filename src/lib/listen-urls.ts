import type { NetworkInterfaceInfo } from 'node:os';

/** What os.networkInterfaces() returns. */
export type Interfaces = NodeJS.Dict<NetworkInterfaceInfo[]>;

const WILDCARD = new Set(['0.0.0.0', '::']);

const url = (address: string, port: number) => `http://${address.includes(':') ? `[${address}]` : address}:${port}`;

/**
 * The URLs a server bound to `address` (server.address().address) answers at, for the
 * start banner: on a wildcard address, localhost and every non-internal interface address
 * (IPv4; IPv6 too on `::`, which Node binds dual-stack), else the bound address alone.
 * Link-local IPv6 addresses (fe80::/10) are left out: they need a zone id no browser or
 * phone takes in a URL.
 */
export function listenUrls(address: string, port: number, interfaces: Interfaces): string[] {
  if (!WILDCARD.has(address)) return [url(address, port)];
  const urls = [`http://localhost:${port}`];
  for (const infos of Object.values(interfaces)) {
    for (const info of infos ?? []) {
      if (info.internal) continue;
      if (info.family === 'IPv6' && (address !== '::' || /^fe[89ab]/i.test(info.address))) continue;
      const u = url(info.address, port);
      if (!urls.includes(u)) urls.push(u);
    }
  }
  return urls;
}

/**
 * Where an emulator finds this server, when it listens on the host's loopback (a wildcard
 * or a loopback address): the Android emulator reaches the host's 127.0.0.1 as 10.0.2.2,
 * the iOS simulator shares the host's network. undefined when bound elsewhere.
 */
export function emulatorHint(address: string, port: number): string | undefined {
  if (!WILDCARD.has(address) && !address.startsWith('127.')) return undefined;
  return `Android emulator: http://10.0.2.2:${port}   iOS simulator: http://localhost:${port}`;
}
