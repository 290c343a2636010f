/**
 * The push channel's events (Socket.IO 4, path /socket.io), declared once so every emit
 * is type-checked (socket.io's typed events). Connect with `auth: {token}` (the same JWT
 * as HTTP). The server joins each socket to the rooms of its buckets and `user:<id>`.
 */
export interface ServerToClientEvents {
  /** these buckets changed (visible to pull now): pull within pullWithinMs (randomly spread) */
  'sync:poke': (e: { buckets: string[]; head: string; pullWithinMs: number }) => void;
  /** latest quantities, coalesced over the window; may be dropped under load (volatile) */
  'stock:changed': (e: { items: { productId: number; warehouseId: number; qty: number; reserved: number }[] }) => void;
  /** an order's status as the ERP or a push left it */
  'order:status': (e: { orderId: string; status: string; updatedAt: number }) => void;
  /** a product's image changed (to the catalog room): fetch the new thumb */
  'catalog:image': (e: { productId: number; thumb: string }) => void;
  /** the token expired: the server closes the connection; log in and reconnect */
  'session:expired': (e: { at: number }) => void;
}

export type ClientToServerEvents = Record<string, never>;

export interface InterServerEvents {
  ping: () => void;
}

/** What the server keeps on each socket (restored with the connection state). */
export interface SocketData {
  userId: number;
  role: string;
  salesmanId?: number;
  clientId?: number;
  buckets: string[];
  /** token expiry, epoch ms */
  expiresAt: number;
}

/** Rooms other than buckets. */
export const userRoom = (userId: number) => `user:${userId}`;
