import { z } from 'zod';
import { problem } from './problem.js';
import { seqText, wireId } from './sync.js';

/**
 * The push channel's events (Socket.IO 4, path /socket.io), declared once so every emit
 * is type-checked (socket.io's typed events). Connect with `auth: {token}` (the same JWT
 * as HTTP). The server joins each socket to the rooms of its buckets and `#user:<id>`.
 *
 * Two kinds of events reach a client:
 * - the built-in events below, whose shapes are fixed here;
 * - config events, named by the sync config's `events` (the demo's `stock:changed` and
 *   `order:status`). Their names and fields are data, so this map cannot list them: a
 *   'batch' event carries `BatchEventPayload`, a 'row' event one `ConfigEventPayload`,
 *   each object holding the event's configured fields (values as JSON gives them: SQL
 *   numbers as numbers, text as strings). src/realtime/notifier.ts emits them through a
 *   loosely typed view of the server; a config event may not reuse a built-in name.
 */
export const syncPoke = z
  .object({
    buckets: z.array(z.string()).meta({ description: 'the buckets that changed; ["*"]: everything (data reset): pull, expect 410' }),
    head: seqText.meta({ description: "the bucket's head batch (for ['*'], the watermark)" }),
    pullWithinMs: z.number().int().min(0).meta({ description: 'pull after a random delay up to this (it grows with the room, so a thousand phones do not pull at once)' }),
  })
  .meta({
    id: 'SyncPoke',
    description:
      'buckets changed and the change is **already visible to pull** (sent only after the watermark passed it). No row data: pull, after a random delay up to `pullWithinMs` (it grows with the room\'s size, so 1,000 phones do not pull in the same instant). `buckets: ["*"]`: everything changed (data reset): pull, expect 410',
  });

export const catalogImage = z
  .object({
    collection: z.string(),
    id: wireId.meta({ description: "the row's wire id, as in pull (a number for an integer key)" }),
    thumb: z.string().meta({ description: "the new thumb's URL" }),
  })
  .meta({ id: 'CatalogImage', description: "a row of the media collection has a new image (to the rooms of the row's buckets); `id` as in pull, `thumb` the thumb's URL" });

export const sessionExpired = z
  .object({ at: z.number().int().meta({ description: 'when the token expired, epoch ms' }) })
  .meta({ id: 'SessionExpired', description: 'your token expired; the server disconnects you: log in and reconnect' });

/** A refused handshake, as the client's connect_error gets it. */
export const connectRefusal = z
  .object({
    message: z.string(),
    data: z.object({ code: problem.shape.code, status: z.number().int() }),
  })
  .meta({ id: 'ConnectRefusal', description: 'connect_error of a refused handshake: data.code from the problem catalogue (token-missing, token-invalid, token-expired, rate-limited, internal)' });

/** The built-in server-to-client events: name, payload schema, when they are sent (README and docs are made from this). */
export const builtInEvents = {
  'sync:poke': syncPoke,
  'catalog:image': catalogImage,
  'session:expired': sessionExpired,
} as const;

export interface ServerToClientEvents {
  'sync:poke': (e: z.output<typeof syncPoke>) => void;
  'catalog:image': (e: z.output<typeof catalogImage>) => void;
  'session:expired': (e: z.output<typeof sessionExpired>) => void;
}

/** The names config events may not take: the built-in events, and those Socket.IO keeps for itself. */
export const reservedEventNames: readonly string[] = [
  'sync:poke', 'catalog:image', 'session:expired',
  'connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener',
] satisfies readonly (keyof ServerToClientEvents | string)[];

/** One config event's fields (events.<name>.fields), by field name. */
export type ConfigEventPayload = Record<string, unknown>;

/**
 * A 'batch' config event: the latest fields of every row of the room written over the
 * coalescing window, one entry per row; one message per room (a socket in several rooms
 * gets one per room). A hint: the pull after the poke is the truth.
 */
export interface BatchEventPayload {
  items: ConfigEventPayload[];
}

export type ClientToServerEvents = Record<string, never>;

export interface InterServerEvents {
  ping: () => void;
}

/** What the server keeps on each socket (restored with the connection state). */
export interface SocketData {
  /** the principal (src/auth/principal.ts), flattened */
  userId: string;
  role: string;
  claims: Record<string, string | number>;
  buckets: string[];
  /** token expiry, epoch ms */
  expiresAt: number;
  /** the app it said it is (handshake auth.app), else its role's default: for the sockets gauge */
  app?: string;
}

/**
 * A user's own room (pokes about his bucket set). The '#' keeps it apart from every
 * bucket name, which starts with a lower-case letter (a config may name a bucket "user").
 */
export const userRoom = (userId: string) => `#user:${userId}`;
