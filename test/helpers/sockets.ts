import { SignJWT } from 'jose';
import { io as connect, type Socket } from 'socket.io-client';
import { builtInEvents, connectRefusal, type ClientToServerEvents, type ServerToClientEvents } from '../../src/protocol/events.js';
import { TEST_SECRET } from './server.js';

export { until, wait } from './wait.js';

/** Socket.IO clients for the push-channel tests: opened through one list, closed together. */
export type Client = Socket<ServerToClientEvents, ClientToServerEvents>;

/**
 * Socket.IO clients opened through one list and closed together. Every built-in event
 * they receive, and every refused handshake, is checked against its schema
 * (src/protocol/events.ts); closeAll() throws when one did not match.
 */
export function sockets() {
  const open: Client[] = [];
  const violations: string[] = [];
  return {
    socket(url: string, token: string | undefined, opts: Record<string, unknown> = {}): Client {
      const c: Client = connect(url, { path: '/socket.io', transports: ['websocket'], auth: token ? { token } : {}, reconnection: false, ...opts });
      c.onAny((event: string, data: unknown) => {
        const schema = Object.hasOwn(builtInEvents, event) ? builtInEvents[event as keyof typeof builtInEvents] : undefined;
        const parsed = schema?.safeParse(data);
        if (parsed && !parsed.success) violations.push(`${event} ${JSON.stringify(data)}: ${parsed.error.message}`);
      });
      c.on('connect_error', (err: Error & { data?: unknown }) => {
        // a refusal by fieldsync carries data; a transport error (server gone) does not
        if (err.data === undefined) return;
        const parsed = connectRefusal.safeParse({ message: err.message, data: err.data });
        if (!parsed.success) violations.push(`connect_error ${JSON.stringify(err.data)}: ${parsed.error.message}`);
      });
      open.push(c);
      return c;
    },
    closeAll(): void {
      for (const c of open) c.disconnect();
      if (violations.length > 0) throw new Error(`push channel events off their schemas:\n${violations.slice(0, 10).join('\n')}`);
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
