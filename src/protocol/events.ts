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
export interface ServerToClientEvents {
  /** these buckets changed (visible to pull now): pull within pullWithinMs (randomly spread) */
  'sync:poke': (e: { buckets: string[]; head: string; pullWithinMs: number }) => void;
  /**
   * A row of the media collection has a new image (to the rooms of the row's buckets):
   * fetch the new thumb. `id` is the row's wire id, as in pull (a number for an integer key).
   */
  'catalog:image': (e: { collection: string; id: number | string; thumb: string }) => void;
  /** the token expired: the server closes the connection; log in and reconnect */
  'session:expired': (e: { at: number }) => void;
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
}

/**
 * A user's own room (pokes about his bucket set). The '#' keeps it apart from every
 * bucket name, which starts with a lower-case letter (a config may name a bucket "user").
 */
export const userRoom = (userId: string) => `#user:${userId}`;
