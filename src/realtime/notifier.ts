import type { Redis } from 'ioredis';
import type { Db } from '../db/pg.js';
import type { Logger } from '../observability/logger.js';
import { userRoom } from '../protocol/events.js';
import type { BucketSets } from '../sync/bucket-set.js';
import type { Advance, Heads } from '../sync/heads.js';
import { principalOf, type Io, type RtSocket } from './channel.js';
import { Coalescer } from './coalescer.js';

export interface NotifierOptions {
  windowMs: number;
  /** pullWithinMs grows by this per socket in the room, up to maxSpreadMs */
  spreadPerSocketMs: number;
  maxSpreadMs: number;
}

type StockItem = { productId: number; warehouseId: number; qty: number; reserved: number };

/**
 * Turns heads advances into push events. A change is announced only once the watermark
 * has passed it, so a poked app never pulls too early. Every process hears the doorbell
 * and keeps its own heads; with Redis, a short lease per event (SET NX) picks the one
 * process that broadcasts it through the adapter (where it is kept for connection-state
 * recovery), so sockets get each event once, and no event depends on one process.
 */
export class Notifier {
  private readonly pokes: Coalescer<bigint>;
  private readonly stock: Coalescer<Map<string, StockItem>>;
  private prev: bigint;
  private readonly sockets = new Map<string, Set<RtSocket>>(); // by role, this process only

  constructor(
    private readonly io: Io,
    private readonly db: Db,
    private readonly heads: Heads,
    private readonly sets: BucketSets,
    private readonly redis: Redis | undefined,
    private readonly log: Logger,
    private readonly opts: NotifierOptions & { namespace: string },
  ) {
    this.prev = heads.watermark;
    this.pokes = new Coalescer<bigint>(opts.windowMs, (due) => void this.firePokes(due), (a, b) => (b > a ? b : a));
    this.stock = new Coalescer<Map<string, StockItem>>(opts.windowMs, (due) => void this.fireStock(due), (a, b) => new Map([...a, ...b]));
    heads.on('advanced', (a) => void this.advanced(a).catch((err: unknown) => log.warn({ err }, 'push channel: advance failed')));
    io.on('connection', (socket) => {
      const set = this.sockets.get(socket.data.role) ?? new Set();
      this.sockets.set(socket.data.role, set.add(socket));
      socket.on('disconnect', () => set.delete(socket));
    });
  }

  stop(): void {
    this.pokes.stop();
    this.stock.stop();
  }

  /** True for exactly one process per key while the lease lasts (always true without Redis). */
  private async claim(key: string, ttlMs: number): Promise<boolean> {
    if (!this.redis) return true;
    try {
      return (await this.redis.set(`${this.opts.namespace}:event:${key}`, '1', 'PX', ttlMs, 'NX')) === 'OK';
    } catch (err) {
      this.log.warn({ err }, 'push channel: Redis lease failed; emitting anyway');
      return true; // a duplicate poke is harmless, a lost one is not
    }
  }

  private async advanced(a: Advance): Promise<void> {
    const from = this.prev;
    this.prev = a.watermark;
    if (a.epochChanged) {
      if (await this.claim(`epoch:${this.heads.epoch}`, 60_000)) this.io.emit('sync:poke', { buckets: ['*'], head: a.watermark.toString(), pullWithinMs: this.opts.maxSpreadMs });
      return;
    }
    for (const b of a.buckets) this.pokes.add(b, this.heads.head(b));
    await this.refreshRooms(a.buckets);
    if (a.buckets.some((b) => b.startsWith('stock:'))) await this.stockChanges(from, a.watermark);
    if (a.buckets.some((b) => b.startsWith('orders:') || b.startsWith('client_orders:'))) await this.orderChanges(from, a.watermark);
  }

  private roomSize(room: string): number {
    return this.io.of('/').adapter.rooms.get(room)?.size ?? 0;
  }

  private async firePokes(due: Map<string, bigint>): Promise<void> {
    // no skipping empty rooms: a phone away for a few seconds is in no room, and the
    // event must still be buffered for its connection-state recovery
    for (const [bucket, head] of due) {
      if (!(await this.claim(`poke:${bucket}:${head}`, this.opts.windowMs))) continue;
      const pullWithinMs = Math.min(this.opts.maxSpreadMs, this.roomSize(bucket) * this.opts.spreadPerSocketMs);
      this.io.to(bucket).emit('sync:poke', { buckets: [bucket], head: head.toString(), pullWithinMs });
    }
  }

  /** Latest quantities of the stock rows written between two watermarks, coalesced per row. */
  private async stockChanges(from: bigint, to: bigint): Promise<void> {
    const rows = await this.db.any<StockItem>(
      `SELECT product_id AS "productId", warehouse_id AS "warehouseId", qty, reserved FROM stock
        WHERE _tx >= $1::xid8 AND _tx < $2::xid8 ORDER BY _tx LIMIT 5000`,
      [from.toString(), to.toString()],
    );
    const byWarehouse = new Map<string, Map<string, StockItem>>();
    for (const r of rows) {
      const room = `stock:${r.warehouseId}`;
      const m = byWarehouse.get(room) ?? new Map<string, StockItem>();
      byWarehouse.set(room, m.set(`${r.productId}`, r));
    }
    for (const [room, items] of byWarehouse) this.stock.add(room, items);
  }

  private async fireStock(due: Map<string, Map<string, StockItem>>): Promise<void> {
    for (const [room, items] of due) {
      if (!(await this.claim(`stock:${room}:${this.prev}`, this.opts.windowMs))) continue;
      this.io.to(room).volatile.emit('stock:changed', { items: [...items.values()] });
    }
  }

  private async orderChanges(from: bigint, to: bigint): Promise<void> {
    const rows = await this.db.any<{ id: string; status: string; updated: number; salesman_id: number | null; client_id: number }>(
      `SELECT id, status::text, (extract(epoch FROM updated_at) * 1000)::bigint AS updated, salesman_id, client_id
         FROM orders WHERE _tx >= $1::xid8 AND _tx < $2::xid8 LIMIT 5000`,
      [from.toString(), to.toString()],
    );
    for (const o of rows) {
      if (!(await this.claim(`order:${o.id}:${o.updated}`, 60_000))) continue;
      const rooms = ['orders:all', `client_orders:${o.client_id}`, ...(o.salesman_id ? [`orders:${o.salesman_id}`] : [])];
      this.io.to(rooms).emit('order:status', { orderId: o.id, status: o.status, updatedAt: Number(o.updated) });
    }
  }

  /**
   * Sockets whose bucket set may have changed (a salesman's client moved, a new
   * pricelist or warehouse): recompute, move rooms, and poke the user's room so the
   * device pulls (new buckets start from zero, lost ones are announced by pull).
   */
  private async refreshRooms(changed: string[]): Promise<void> {
    const candidates = new Set<RtSocket>();
    for (const b of changed) {
      if (b.startsWith('clients:') && b !== 'clients:all') {
        for (const s of this.sockets.get('salesman') ?? []) if (s.data.salesmanId === Number(b.slice(8))) candidates.add(s);
      }
      if (b === 'clients:all') for (const s of this.sockets.get('client_app') ?? []) candidates.add(s);
      if (b === 'catalog') for (const role of ['admin', 'manager', 'warehouse']) for (const s of this.sockets.get(role) ?? []) candidates.add(s);
    }
    for (const socket of candidates) {
      const p = principalOf(socket.data);
      if (this.sets.peek(p)) continue; // unchanged
      const next = await this.sets.get(p);
      const before = new Set(socket.data.buckets);
      const added = next.filter((b) => !before.has(b));
      const removed = socket.data.buckets.filter((b) => !next.includes(b));
      if (added.length === 0 && removed.length === 0) continue;
      for (const b of removed) void socket.leave(b);
      void socket.join(added);
      socket.data.buckets = next;
      this.io.to(userRoom(p.userId)).emit('sync:poke', { buckets: [...added, ...removed], head: this.heads.watermark.toString(), pullWithinMs: 0 });
    }
  }
}
