import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';

/** A built snapshot of one bucket for one app profile. */
export interface SnapshotMeta {
  id: string;
  bucket: string;
  profile: string;
  /** watermark the snapshot was read below: deltas continue from [position, -1, null] */
  position: string;
  pages: number;
  rows: number;
  checksum: number;
  builtAt: number;
}

export type Encoding = 'gzip' | 'br';

/** Where snapshot pages live: Redis (shared by processes) or memory (one process). */
export interface SnapshotStore {
  getMeta(bucket: string, profile: string): Promise<SnapshotMeta | undefined>;
  setMeta(meta: SnapshotMeta, ttlMs: number): Promise<void>;
  putPage(id: string, page: number, bodies: Record<Encoding, Buffer>, ttlMs: number): Promise<void>;
  getPage(id: string, page: number, enc: Encoding): Promise<Buffer | undefined>;
  /** a lock with expiry; returns a token to unlock with, or undefined if someone holds it */
  lock(name: string, ttlMs: number): Promise<string | undefined>;
  unlock(name: string, token: string): Promise<void>;
}

/** Bumped when the page format changes: snapshots of another format are never offered. */
export const SNAPSHOT_FORMAT = 2;
const metaKey = (bucket: string, profile: string) => `snap:v${SNAPSHOT_FORMAT}:meta:${bucket}:${profile}`;
const pageKey = (id: string, page: number, enc: Encoding) => `snap:page:${id}:${page}:${enc}`;

/** Snapshot pages in Redis, shared by every process; keys under `namespace:` (prefix + database). */
export class RedisSnapshotStore implements SnapshotStore {
  constructor(
    private readonly redisClient: Redis,
    private readonly ns: string,
  ) {}

  /** The client, if connected: while Redis is down, fail at once (pull pages from PostgreSQL). */
  private get redis(): Redis {
    if (this.redisClient.status !== 'ready') throw new Error(`redis is ${this.redisClient.status}`);
    return this.redisClient;
  }

  async getMeta(bucket: string, profile: string): Promise<SnapshotMeta | undefined> {
    const raw = await this.redis.get(`${this.ns}:${metaKey(bucket, profile)}`);
    return raw ? (JSON.parse(raw) as SnapshotMeta) : undefined;
  }

  async setMeta(meta: SnapshotMeta, ttlMs: number): Promise<void> {
    await this.redis.set(`${this.ns}:${metaKey(meta.bucket, meta.profile)}`, JSON.stringify(meta), 'PX', ttlMs);
  }

  async putPage(id: string, page: number, bodies: Record<Encoding, Buffer>, ttlMs: number): Promise<void> {
    const m = this.redis.multi();
    for (const enc of Object.keys(bodies) as Encoding[]) m.set(`${this.ns}:${pageKey(id, page, enc)}`, bodies[enc], 'PX', ttlMs);
    await m.exec();
  }

  async getPage(id: string, page: number, enc: Encoding): Promise<Buffer | undefined> {
    return (await this.redis.getBuffer(`${this.ns}:${pageKey(id, page, enc)}`)) ?? undefined;
  }

  async lock(name: string, ttlMs: number): Promise<string | undefined> {
    const token = randomUUID();
    return (await this.redis.set(`${this.ns}:lock:${name}`, token, 'PX', ttlMs, 'NX')) === 'OK' ? token : undefined;
  }

  async unlock(name: string, token: string): Promise<void> {
    // only the holder may unlock: compare and delete in one step
    await this.redis.eval(`if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`, 1, `${this.ns}:lock:${name}`, token);
  }
}

/**
 * The same interface in memory, for one process without Redis (embedded mode). Bounded:
 * past maxBytes the oldest entries are evicted (a missing page falls back to paging from
 * PostgreSQL, never an error). Expiry is checked on read.
 */
export class MemorySnapshotStore implements SnapshotStore {
  private readonly entries = new Map<string, { value: Buffer | SnapshotMeta; bytes: number; expires: number }>();
  private readonly locks = new Map<string, { token: string; expires: number }>();
  private bytes = 0;

  constructor(readonly maxBytes: number) {}

  get size(): number {
    return this.bytes;
  }

  private set(key: string, value: Buffer | SnapshotMeta, bytes: number, ttlMs: number): void {
    this.delete(key);
    this.entries.set(key, { value, bytes, expires: Date.now() + ttlMs });
    this.bytes += bytes;
    for (const [k] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.delete(k);
    }
  }

  private delete(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.bytes -= e.bytes;
    this.entries.delete(key);
  }

  private get(key: string): Buffer | SnapshotMeta | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expires < Date.now()) {
      this.delete(key);
      return undefined;
    }
    return e.value;
  }

  async getMeta(bucket: string, profile: string): Promise<SnapshotMeta | undefined> {
    return this.get(metaKey(bucket, profile)) as SnapshotMeta | undefined;
  }

  async setMeta(meta: SnapshotMeta, ttlMs: number): Promise<void> {
    this.set(metaKey(meta.bucket, meta.profile), meta, 256, ttlMs);
  }

  async putPage(id: string, page: number, bodies: Record<Encoding, Buffer>, ttlMs: number): Promise<void> {
    for (const enc of Object.keys(bodies) as Encoding[]) this.set(pageKey(id, page, enc), bodies[enc], bodies[enc].length, ttlMs);
  }

  async getPage(id: string, page: number, enc: Encoding): Promise<Buffer | undefined> {
    return this.get(pageKey(id, page, enc)) as Buffer | undefined;
  }

  async lock(name: string, ttlMs: number): Promise<string | undefined> {
    const held = this.locks.get(name);
    if (held && held.expires > Date.now()) return undefined;
    const token = randomUUID();
    this.locks.set(name, { token, expires: Date.now() + ttlMs });
    return token;
  }

  async unlock(name: string, token: string): Promise<void> {
    if (this.locks.get(name)?.token === token) this.locks.delete(name);
  }
}
