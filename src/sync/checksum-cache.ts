import type { Db } from '../db/pg.js';
import { parseBucket } from './buckets.js';
import { rowHash, sumHashes } from './checksum.js';
import type { Heads } from './heads.js';
import { contentSql } from './pull-sql.js';
import type { Profile } from './profiles.js';

interface Entry {
  head: bigint;
  sum: number;
}

/**
 * Bucket checksums, computed from the bucket's current content and cached until the
 * bucket's head moves. A computation that sees an item newer than the head it was
 * asked for (a change the heads have not caught up with) is thrown away: the device's
 * copy is at the head, not at whatever the table holds now. Single-flight per key.
 */
export class ChecksumCache {
  private readonly cache = new Map<string, Entry>();
  private readonly pending = new Map<string, Promise<number | undefined>>();
  /** bumped when a checksum is added */
  version = 0;

  constructor(
    private readonly db: Db,
    private readonly heads: Heads,
    private readonly maxEntries = 20_000,
  ) {}

  /** The checksum at the bucket's current head if cached; no query. */
  peek(bucket: string, profile: Profile): number | undefined {
    const e = this.cache.get(`${bucket}|${profile.name}`);
    return e && e.head === this.heads.head(bucket) ? e.sum : undefined;
  }

  /** The checksum at the bucket's current head, computing it if needed; undefined if the bucket moved meanwhile. */
  get(bucket: string, profile: Profile): Promise<number | undefined> {
    const cached = this.peek(bucket, profile);
    if (cached !== undefined) return Promise.resolve(cached);
    const key = `${bucket}|${profile.name}`;
    let p = this.pending.get(key);
    if (!p) {
      p = this.compute(bucket, profile).finally(() => this.pending.delete(key));
      this.pending.set(key, p);
    }
    return p;
  }

  private async compute(bucket: string, profile: Profile): Promise<number | undefined> {
    const parsed = parseBucket(bucket);
    if (!parsed) return undefined;
    const head = this.heads.head(bucket);
    const rows = await this.db.task('bg:checksum', (t) => t.any<{ c: string; id: string | null; v: string | null }>(contentSql(bucket, parsed, profile)));
    const hashes: number[] = [];
    for (const r of rows) {
      if (r.v !== null && BigInt(r.v) > head) return undefined; // changed after the heads: not the device's state
      if (r.c !== '#t') hashes.push(rowHash(r.c, r.id!, r.v!));
    }
    const sum = sumHashes(hashes);
    if (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(`${bucket}|${profile.name}`, { head, sum });
    this.version++;
    return sum;
  }
}
