import type { Server as HttpServer } from 'node:http';
import { createAdapter } from '@socket.io/redis-streams-adapter';
import type { Redis } from 'ioredis';
import { Server, type Socket } from 'socket.io';
import type { Principal } from '../auth/principal.js';
import type { Tokens } from '../auth/tokens.js';
import { refusal, type MakeLimiter } from '../cache/limiter.js';
import { AppError } from '../errors.js';
import { clientAddress } from '../lib/client-address.js';
import { originAllowed } from '../lib/origins.js';
import type { Logger } from '../observability/logger.js';
import { userRoom, type ClientToServerEvents, type InterServerEvents, type ServerToClientEvents, type SocketData } from '../protocol/events.js';
import type { BucketSets } from '../sync/bucket-set.js';

/** Outgoing packets a socket may have waiting before it is cut off. */
const MAX_BUFFERED = 1000;
/** setTimeout's longest delay (about 24.8 days); a later expiry is reached in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export type Io = Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;
export type RtSocket = Socket<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;

export interface ChannelOptions {
  tokens: Tokens;
  sets: BucketSets;
  log: Logger;
  /** set: rooms shared through the Redis streams adapter (several processes) */
  redis: Redis | undefined;
  /** Redis key prefix (deployment and database) */
  namespace: string;
  connectsPerIpPerMinute: number;
  /** trusted reverse proxies in front of the app (see clientAddress) */
  proxyHops: number;
  /** the connection limit's store (Redis, shared by the processes, or memory) */
  limiter: MakeLimiter;
  /** browser origins answered with CORS headers (`*`: any), as for HTTP; empty or unset: none */
  corsOrigins?: readonly string[];
  /**
   * The app a socket says it is (handshake `auth: {token, app}`) when the role may use it,
   * else the role's default app: the sockets gauge counts by it. Default: none.
   */
  appOf?: (role: string, given: unknown) => string | undefined;
}

/** The principal a socket was authenticated as (its token, kept on the socket). */
export function principalOf(data: SocketData): Principal {
  return { userId: data.userId, role: data.role, claims: data.claims };
}

/**
 * The Socket.IO server on the app's HTTP server (path /socket.io, websocket with polling
 * fallback). The handshake carries the same JWT (`auth: {token}`); a bad one is refused
 * with a connect_error naming the problem; a token that expires while connected ends the
 * session with `session:expired`. Each socket joins the rooms of its bucket set (computed
 * on the server, as for pull) and its user room. Missed events are replayed after a short
 * disconnect (connection-state recovery; across processes through the Redis streams
 * adapter).
 */
export function createChannel(http: HttpServer, opts: ChannelOptions): { io: Io; close(): Promise<void> } {
  // the adapter gets a connection of its own (named, so operators can tell it apart),
  // closed with the channel
  const adapterRedis = opts.redis?.duplicate({ connectionName: `${opts.redis.options.connectionName ?? 'fieldsync'}:adapter` });
  const allowed = opts.corsOrigins?.length ? originAllowed(opts.corsOrigins) : undefined;
  const io: Io = new Server(http, {
    path: '/socket.io',
    // the polling transport from a browser (flutter web); the same allow-list as HTTP,
    // no credentials (the token travels in auth)
    ...(allowed && {
      cors: {
        origin: (origin: string | undefined, done: (err: Error | null, allow?: boolean) => void) => done(null, allowed(origin)),
        methods: ['GET', 'POST'],
        credentials: false,
        maxAge: 600,
      },
    }),
    transports: ['websocket', 'polling'],
    serveClient: false,
    maxHttpBufferSize: 16 * 1024, // clients send nothing big
    pingInterval: 25_000,
    pingTimeout: 20_000,
    connectionStateRecovery: { maxDisconnectionDuration: 2 * 60_000, skipMiddlewares: true },
    // the adapter reads the stream on connections of its own, closed with the adapter
    ...(adapterRedis && {
      adapter: createAdapter(adapterRedis, {
        maxLen: 50_000,
        streamName: `${opts.namespace}:socket.io`,
        channelPrefix: `${opts.namespace}:socket.io`,
        sessionKeyPrefix: `${opts.namespace}:sio:session:`,
      }),
    }),
  });
  const perIp = opts.limiter({ name: 'socket_ip', points: opts.connectsPerIpPerMinute, duration: 60 });

  io.use(async (socket, next) => {
    try {
      const ip = clientAddress(socket.handshake.address, socket.handshake.headers['x-forwarded-for'], opts.proxyHops);
      await perIp.consume(ip).catch((res: unknown) => {
        throw refusal(res, 'connections');
      });
      const token = (socket.handshake.auth as { token?: unknown }).token;
      if (typeof token !== 'string' || token === '') throw new AppError('token-missing', 'connect with auth: {token}');
      const { principal: p, expiresAt } = await opts.tokens.session(token);
      const app = opts.appOf?.(p.role, (socket.handshake.auth as { app?: unknown }).app);
      socket.data = { userId: p.userId, role: p.role, claims: { ...p.claims }, buckets: await opts.sets.get(p), expiresAt, ...(app !== undefined && { app }) };
      next();
    } catch (err) {
      const e = err instanceof AppError ? err : new AppError('internal');
      if (!(err instanceof AppError)) opts.log.error({ err }, 'socket handshake failed');
      next(Object.assign(new Error(e.message), { data: { code: e.code, status: e.status } }));
    }
  });

  // A client that stops reading (a phone in a tunnel with its socket half-open) must not
  // make the server buffer events for it without bound: past MAX_BUFFERED packets it is
  // disconnected, and recovers what it missed when it comes back.
  const sweep = setInterval(() => {
    for (const socket of io.of('/').sockets.values()) {
      const buffered = (socket.conn as unknown as { writeBuffer?: unknown[] }).writeBuffer?.length ?? 0;
      if (buffered > MAX_BUFFERED) {
        opts.log.warn({ userId: socket.data.userId, buffered }, 'push channel: slow client disconnected');
        socket.conn.close();
      }
    }
  }, 5000);
  sweep.unref();
  io.engine.on('close', () => clearInterval(sweep));

  io.on('connection', (socket) => {
    if (!socket.recovered) void socket.join([...socket.data.buckets, userRoom(socket.data.userId)]);
    let timer: NodeJS.Timeout | undefined;
    const expire = () => {
      socket.emit('session:expired', { at: socket.data.expiresAt });
      socket.disconnect(true);
    };
    const arm = () => {
      const left = socket.data.expiresAt - Date.now();
      timer = setTimeout(left > MAX_TIMER_MS ? arm : expire, Math.max(0, Math.min(left, MAX_TIMER_MS)));
    };
    arm();
    socket.on('disconnect', () => clearTimeout(timer));
  });
  return {
    io,
    async close() {
      await io.of('/').adapter.close();
      adapterRedis?.disconnect();
    },
  };
}
