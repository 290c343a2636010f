import type { Db } from '../db/pg.js';
import { parseBucket, type App, type Model } from '../model/model.js';
import { rowHash, sumHashes } from './checksum.js';
import type { Heads } from './heads.js';
import { collectionsFor, contentSql } from './pull-sql.js';

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
    private readonly model: Model,
    private readonly heads: Heads,
    private readonly maxEntries = 20_000,
  ) {}

  /** The checksum at the bucket's current head if cached; no query. */
  peek(bucket: string, app: App): number | undefined {
    const e = this.cache.get(`${bucket}|${app.name}`);
    return e && e.head === this.heads.head(bucket) ? e.sum : undefined;
  }

  /** The checksum at the bucket's current head, computing it if needed; undefined if the bucket moved meanwhile. */
  get(bucket: string, app: App): Promise<number | undefined> {
    const cached = this.peek(bucket, app);
    if (cached !== undefined) return Promise.resolve(cached);
    const key = `${bucket}|${app.name}`;
    let p = this.pending.get(key);
    if (!p) {
      p = this.compute(bucket, app).finally(() => this.pending.delete(key));
      this.pending.set(key, p);
    }
    return p;
  }

  private async compute(bucket: string, app: App): Promise<number | undefined> {
    const parsed = parseBucket(this.model, bucket);
    if (!parsed) return undefined;
    const head = this.heads.head(bucket);
    const rows = await this.db.task('bg:checksum', (t) =>
      t.any<{ c: string; id: string; v: string; deleted: boolean }>(contentSql(this.model, bucket, collectionsFor(parsed.def, app))),
    );
    const hashes: number[] = [];
    for (const r of rows) {
      if (BigInt(r.v) > head) return undefined; // changed after the heads: not the device's state
      if (!r.deleted) hashes.push(rowHash(r.c, r.id, r.v));
    }
    const sum = sumHashes(hashes);
    if (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(`${bucket}|${app.name}`, { head, sum });
    this.version++;
    return sum;
  }
}
