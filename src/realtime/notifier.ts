import type { Redis } from 'ioredis';
import { pgp, type Db } from '../db/pg.js';
import { keyMatch, s, type Collection, type Model } from '../model/model.js';
import type { Logger } from '../observability/logger.js';
import type { ImageChange } from '../images/service.js';
import { userRoom, type BatchEventPayload, type ConfigEventPayload } from '../protocol/events.js';
import type { BucketSets } from '../sync/bucket-set.js';
import type { Advance, Heads } from '../sync/heads.js';
import { principalOf, type Io, type RtSocket } from './channel.js';
import { Coalescer } from './coalescer.js';

export interface NotifierOptions {
  windowMs: number;
  /** pullWithinMs grows by this per socket in the room, up to maxSpreadMs */
  spreadPerSocketMs: number;
  maxSpreadMs: number;
  /** Redis key prefix of the event leases (deployment and database) */
  namespace: string;
}

export interface NotifierDeps {
  io: Io;
  db: Db;
  model: Model;
  heads: Heads;
  sets: BucketSets;
  /** set: one process per event wins a short lease and broadcasts it */
  redis: Redis | undefined;
  log: Logger;
  options: NotifierOptions;
}

/** Rows one advance reads per config event at most; a bigger burst is left to the pokes. */
const MAX_EVENT_ROWS = 5000;

interface ConfigEvent {
  name: string;
  collection: Collection;
  mode: 'batch' | 'row';
  /** $1 collection, $2 from, $3 to: (bucket, row_key, seq, e) of the live rows written in [from, to) */
  sql: string;
}

interface EventRow {
  bucket: string;
  row_key: string;
  seq: string;
  e: ConfigEventPayload;
}

/**
 * Config events are named by the sync config, so the typed event map cannot list them
 * (src/protocol/events.ts): they go out through this loosely typed view of a room.
 */
interface ConfigEmitter {
  emit(event: string, payload: ConfigEventPayload | BatchEventPayload): boolean;
}
const loosely = (room: object) => room as ConfigEmitter;

/** The fields of a config event, for the rows of `c` written in a window, read through fieldsync's items. */
function eventSql(model: Model, c: Collection, fields: Record<string, string>): string {
  const pairs = Object.entries(fields).map(([field, expr]) => `${pgp.as.text(field)}, (${expr})`);
  return `SELECT i.bucket, i.row_key, i.seq::text AS seq, json_build_object(${pairs.join(', ')}) AS e
  FROM ${s(model, 'items')} i JOIN ${c.table} r ON ${keyMatch(c, 'r', 'i.row_key')}
 WHERE i.coll = $1 AND NOT i.deleted AND i.seq >= $2::bigint AND i.seq < $3::bigint
 LIMIT ${MAX_EVENT_ROWS}`;
}

/**
 * Turns heads advances into push events. A change is announced only once the watermark
 * has passed it, so a poked app never pulls too early. Every process hears the doorbell
 * and keeps its own heads; with Redis, a short lease per event (SET NX) picks the one
 * process that broadcasts it through the adapter (where it is kept for connection-state
 * recovery), so sockets get each event once, and no event depends on one process.
 *
 * Three kinds of events:
 * - `sync:poke` per bucket head, coalesced per bucket (leading edge, then one per window);
 * - the sync config's `events`: fields read from the rows written in the window, through
 *   fieldsync's items (so the rooms are the rows' buckets). 'batch' events are coalesced
 *   per room and keyed by row (the latest fields win); 'row' events go out once per
 *   (row, transaction) to every room of the row;
 * - room moves: when a collection a role's parameter queries read changes, the bucket
 *   sets of that role's sockets are recomputed, and a changed one moves rooms and pokes
 *   the user's room.
 */
export class Notifier {
  private readonly io: Io;
  private readonly db: Db;
  private readonly model: Model;
  private readonly heads: Heads;
  private readonly sets: BucketSets;
  private readonly redis: Redis | undefined;
  private readonly log: Logger;
  private readonly opts: NotifierOptions;

  private readonly pokes: Coalescer<bigint>;
  /** one per 'batch' event: room -> row key -> fields */
  private readonly batches = new Map<string, Coalescer<Map<string, ConfigEventPayload>>>();
  private readonly events: ConfigEvent[] = [];
  /** the newest watermark announced (part of batch leases) */
  private watermark: bigint;
  private readonly sockets = new Map<string, Set<RtSocket>>(); // by role, this process only
  /** roles whose sockets' bucket sets need a look; drained by one refresh at a time */
  private readonly staleRoles = new Set<string>();
  private refreshing: Promise<void> | undefined;

  constructor(deps: NotifierDeps) {
    this.io = deps.io;
    this.db = deps.db;
    this.model = deps.model;
    this.heads = deps.heads;
    this.sets = deps.sets;
    this.redis = deps.redis;
    this.log = deps.log;
    this.opts = deps.options;
    this.watermark = this.heads.watermark;
    const { windowMs } = this.opts;
    this.pokes = new Coalescer<bigint>(windowMs, (due) => void this.firePokes(due).catch((err: unknown) => this.log.warn({ err }, 'push channel: poke failed')), (a, b) => (b > a ? b : a));
    // names and collections were checked with the config (src/model/config.ts)
    for (const [name, e] of Object.entries(this.model.events)) {
      const collection = this.model.collections.get(e.collection)!;
      this.events.push({ name, collection, mode: e.mode, sql: eventSql(this.model, collection, e.fields) });
      if (e.mode === 'batch') {
        const fire = (due: Map<string, Map<string, ConfigEventPayload>>) => void this.fireBatch(name, due).catch((err: unknown) => this.log.warn({ err, event: name }, 'push channel: event failed'));
        this.batches.set(name, new Coalescer(windowMs, fire, (a, b) => new Map([...a, ...b])));
      }
    }
    this.heads.on('advanced', (a: Advance) => void this.advanced(a).catch((err: unknown) => this.log.warn({ err }, 'push channel: advance failed')));
    this.io.on('connection', (socket) => {
      const set = this.sockets.get(socket.data.role) ?? new Set();
      this.sockets.set(socket.data.role, set.add(socket));
      socket.on('disconnect', () => set.delete(socket));
    });
  }

  stop(): void {
    this.pokes.stop();
    for (const c of this.batches.values()) c.stop();
    this.staleRoles.clear();
  }

  /**
   * A row's new image, to the rooms of its live buckets (sent by the uploading process
   * only: no lease). A row in no bucket is seen by nobody: nothing is sent.
   */
  announceImage(a: ImageChange): void {
    // an empty room list would broadcast to every socket
    if (a.buckets.length === 0) return;
    this.io.to(a.buckets).emit('catalog:image', { collection: a.collection, id: a.id, thumb: a.thumb });
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
    this.watermark = a.watermark;
    if (a.epochChanged) {
      if (await this.claim(`epoch:${this.heads.epoch}`, 60_000)) this.io.emit('sync:poke', { buckets: ['*'], head: a.watermark.toString(), pullWithinMs: this.opts.maxSpreadMs });
      return;
    }
    for (const b of a.buckets) this.pokes.add(b, this.heads.head(b));
    const changed = new Set(a.collections);
    // rooms first, so a socket that just gained a bucket gets that bucket's events
    await this.refreshRooms(changed).catch((err: unknown) => this.log.warn({ err }, 'push channel: room refresh failed'));
    for (const e of this.events) {
      if (!changed.has(e.collection.name)) continue;
      await this.configEvent(e, a.from, a.watermark).catch((err: unknown) => this.log.warn({ err, event: e.name }, 'push channel: event failed'));
    }
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

  /** The fields of the event's rows written in [from, to): coalesced ('batch') or sent ('row'). */
  private async configEvent(e: ConfigEvent, from: bigint, to: bigint): Promise<void> {
    // formatted here (the simple protocol, like every other query): the embedded PGlite's
    // socket server interleaves other connections' messages between the Parse and Bind of
    // a server-side parameterized query, which fails or hangs both
    const query = pgp.as.format(e.sql, [e.collection.name, from.toString(), to.toString()]);
    const rows = await this.db.task(`bg:event:${e.name}`, (t) => t.any<EventRow>(query));
    if (rows.length === MAX_EVENT_ROWS) this.log.warn({ event: e.name, rows: rows.length }, 'push channel: event rows capped; pokes carry the rest');
    if (e.mode === 'batch') {
      const byRoom = new Map<string, Map<string, ConfigEventPayload>>();
      for (const r of rows) {
        const items = byRoom.get(r.bucket) ?? new Map<string, ConfigEventPayload>();
        byRoom.set(r.bucket, items.set(r.row_key, r.e));
      }
      const batch = this.batches.get(e.name)!;
      for (const [room, items] of byRoom) batch.add(room, items);
      return;
    }
    const byRow = new Map<string, { rooms: string[]; fields: ConfigEventPayload }>();
    for (const r of rows) {
      const key = `${e.name}:${r.row_key}:${r.seq}`;
      const row = byRow.get(key);
      if (row) row.rooms.push(r.bucket);
      else byRow.set(key, { rooms: [r.bucket], fields: r.e });
    }
    for (const [key, row] of byRow) {
      if (!(await this.claim(key, 60_000))) continue;
      loosely(this.io.to(row.rooms)).emit(e.name, row.fields);
    }
  }

  private async fireBatch(name: string, due: Map<string, Map<string, ConfigEventPayload>>): Promise<void> {
    for (const [room, items] of due) {
      if (!(await this.claim(`${name}:${room}:${this.watermark}`, this.opts.windowMs))) continue;
      // Not volatile: Socket.IO drops a volatile packet whenever the socket's transport is
      // still writing the previous one, so a socket in several rooms (a warehouse app in
      // every stock:<warehouse>) lost all but one room's batch of a multi-room change, and
      // any batch right behind a poke. Coalescing bounds these to one per room per window;
      // a client that stops reading is cut off by the channel's buffer sweep.
      loosely(this.io.to(room)).emit(name, { items: [...items.values()] });
    }
  }

  /**
   * Sockets whose bucket set may have changed: those of every role whose parameter
   * queries read a changed collection (a salesman's client moved, a new pricelist or
   * warehouse). Their sets are recomputed (BucketSets answers from its cache while the
   * collections it depends on are unchanged); a socket whose set changed moves rooms, and
   * its user's room is poked so the device pulls (new buckets start from zero, lost ones
   * are announced by pull). One refresh at a time: roles marked meanwhile are taken by
   * the same run.
   */
  private refreshRooms(changed: ReadonlySet<string>): Promise<void> {
    for (const role of this.model.roles.values()) {
      if (role.dependsOn.some((c) => changed.has(c)) && this.sockets.get(role.name)?.size) this.staleRoles.add(role.name);
    }
    if (this.staleRoles.size > 0) this.refreshing ??= this.drainStaleRoles().finally(() => (this.refreshing = undefined));
    return this.refreshing ?? Promise.resolve();
  }

  private async drainStaleRoles(): Promise<void> {
    while (this.staleRoles.size > 0) {
      const roles = [...this.staleRoles];
      this.staleRoles.clear();
      const poked = new Set<string>();
      for (const role of roles) {
        for (const socket of [...(this.sockets.get(role) ?? [])]) {
          if (!socket.connected) continue;
          const moved = await this.moveRooms(socket);
          if (moved.length === 0 || poked.has(socket.data.userId)) continue;
          poked.add(socket.data.userId);
          this.io.to(userRoom(socket.data.userId)).emit('sync:poke', { buckets: moved, head: this.heads.watermark.toString(), pullWithinMs: 0 });
        }
      }
    }
  }

  /** Brings a socket's rooms to its current bucket set; the buckets added and removed. */
  private async moveRooms(socket: RtSocket): Promise<string[]> {
    const p = principalOf(socket.data);
    const next = await this.sets.get(p);
    const before = new Set(socket.data.buckets);
    const after = new Set(next);
    const added = next.filter((b) => !before.has(b));
    const removed = socket.data.buckets.filter((b) => !after.has(b));
    if (added.length === 0 && removed.length === 0) return [];
    for (const b of removed) void socket.leave(b);
    if (added.length > 0) void socket.join(added);
    socket.data.buckets = next;
    return [...added, ...removed];
  }
}
