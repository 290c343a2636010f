import { isIP } from 'node:net';

/**
 * The address of the client behind `hops` trusted reverse proxies, for per-IP limits.
 * HTTP (Koa's ctx.ip) and the Socket.IO handshake both ask this one function.
 *
 * Each proxy appends the address it received the request from to X-Forwarded-For, so
 * only the last `hops` entries were written by proxies we trust; anything left of them
 * is whatever the client chose to send. The client is therefore the hops-th entry from
 * the right, never the first one. With fewer entries than hops (a request that came
 * through fewer proxies) the leftmost entry is still one a trusted proxy appended.
 * With hops = 0, an empty header or an entry that is not an IP address (a broken proxy),
 * the peer's own address is used. This only holds when the app is reachable solely
 * through those proxies.
 */
export function clientAddress(remoteAddress: string | undefined, forwardedFor: string | string[] | undefined, hops: number): string {
  const peer = normalize(remoteAddress ?? '') ?? remoteAddress ?? '';
  if (hops <= 0 || forwardedFor === undefined) return peer;
  const entries = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor)
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
  if (entries.length === 0) return peer;
  return normalize(entries[Math.max(0, entries.length - hops)]!) ?? peer;
}

/**
 * An IP address in one spelling: without a port ("1.2.3.4:5678", "[::1]:80", as some
 * proxies write them) and IPv4-mapped IPv6 as IPv4, so one client is one limiter key.
 * undefined for anything that is not an address.
 */
function normalize(raw: string): string | undefined {
  let ip = raw.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(ip);
  if (bracketed) ip = bracketed[1]!;
  else if (/^[\d.]+:\d+$/.test(ip)) ip = ip.slice(0, ip.lastIndexOf(':'));
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) ip = mapped[1]!;
  return isIP(ip) ? ip.toLowerCase() : undefined;
}
