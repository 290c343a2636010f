import { SignJWT } from 'jose';
import { io as connect, type Socket } from 'socket.io-client';
import type { ClientToServerEvents, ServerToClientEvents } from '../../src/protocol/events.js';
import { TEST_SECRET } from './server.js';

export { until, wait } from './wait.js';

/** Socket.IO clients for the push-channel tests: opened through one list, closed together. */
export type Client = Socket<ServerToClientEvents, ClientToServerEvents>;

export function sockets() {
  const open: Client[] = [];
  return {
    socket(url: string, token: string | undefined, opts: Record<string, unknown> = {}): Client {
      const c: Client = connect(url, { path: '/socket.io', transports: ['websocket'], auth: token ? { token } : {}, reconnection: false, ...opts });
      open.push(c);
      return c;
    },
    closeAll(): void {
      for (const c of open) c.disconnect();
    },
  };
}

export const connected = (c: Client) =>
  new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('connect_error', reject);
  });

/** 'connected', or the code (else the message) the handshake was refused with. */
export const refusedWith = (c: Client) => connected(c).then(() => 'connected', (e: Error & { data?: { code: string } }) => e.data?.code ?? e.message);

/** Records every event a socket receives. */
export function record(c: Client) {
  const got: { event: string; data: any; at: number }[] = [];
  c.onAny((event, data) => got.push({ event, data, at: Date.now() }));
  return got;
}

/** A token signed with the test secret: the config's admin unless claims say otherwise; `exp` in epoch seconds or a jose span. */
export function signToken(claims: Record<string, unknown> = { role: 'admin' }, opts: { sub?: string; exp?: number | string; iat?: number } = {}): Promise<string> {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject(opts.sub ?? '1').setIssuer('fieldsync').setAudience('fieldsync');
  if (opts.iat !== undefined) jwt.setIssuedAt(opts.iat);
  if (opts.exp !== undefined) jwt.setExpirationTime(opts.exp);
  return jwt.sign(new TextEncoder().encode(TEST_SECRET));
}
