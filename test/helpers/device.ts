import { rowHash, sumHashes } from '../../src/sync/checksum.js';

/** One section of a pull answer. */
export interface Section {
  cols: string[];
  rows: unknown[][];
  deleted: [number, string | number][];
}

export interface PullBody {
  cursor: string;
  hasMore: boolean;
  watermark: string;
  checksums: Record<string, number>;
  buckets: { current: string[]; added: string[]; removed: string[] };
  changes: Record<string, Section>;
}

export interface LocalRow {
  bucket: string;
  v: number;
  /** wire columns by name (without b) */
  row: Record<string, unknown>;
}

/**
 * A device's local replica, applying pull answers the way the README tells Flutter
 * developers to: removed buckets first, then per collection the deletes (only where the
 * local row is in that bucket), then the rows; all of one page at once.
 */
export class Device {
  readonly tables = new Map<string, Map<string, LocalRow>>();
  cursor: string | undefined;
  last: PullBody | undefined;
  pulls = 0;

  constructor(
    readonly name: string,
    private readonly send: (cursor: string | undefined, limit: number) => Promise<Response>,
  ) {}

  table(name: string): Map<string, LocalRow> {
    let t = this.tables.get(name);
    if (!t) this.tables.set(name, (t = new Map()));
    return t;
  }

  apply(body: PullBody): void {
    for (const b of body.buckets.removed) this.dropBucket(b);
    for (const [name, section] of Object.entries(body.changes)) {
      const t = this.table(name);
      for (const [bi, id] of section.deleted) {
        const local = t.get(String(id));
        if (local && local.bucket === body.buckets.current[bi]) t.delete(String(id));
      }
      for (const values of section.rows) {
        const row: Record<string, unknown> = {};
        section.cols.forEach((c, i) => (row[c] = values[i]));
        t.set(String(row.id), { bucket: body.buckets.current[row.b as number]!, v: row.v as number, row });
      }
    }
    this.cursor = body.cursor;
    this.last = body;
  }

  dropBucket(bucket: string): void {
    for (const t of this.tables.values()) for (const [id, r] of t) if (r.bucket === bucket) t.delete(id);
  }

  /** One page; returns the answer (status other than 200 is returned as is, not applied). */
  async pullOnce(limit: number): Promise<{ status: number; body: PullBody | Record<string, unknown> }> {
    const res = await this.send(this.cursor, limit);
    this.pulls++;
    const body = (await res.json()) as PullBody;
    if (res.status === 200) this.apply(body);
    else if (res.status === 410) {
      // the documented reaction: drop the named buckets, continue with resetCursor (or restart)
      const p = body as unknown as { buckets: string[]; resetCursor: string | null };
      for (const b of p.buckets) this.dropBucket(b);
      if (p.resetCursor === null) this.tables.clear();
      this.cursor = p.resetCursor ?? undefined;
    }
    return { status: res.status, body };
  }

  /** Pulls until hasMore is false; returns the number of pages. */
  async catchUp(limit: number, maxPages = 10_000): Promise<number> {
    for (let i = 1; i <= maxPages; i++) {
      const { status, body } = await this.pullOnce(limit);
      if (status === 410) continue;
      if (status !== 200) throw new Error(`${this.name}: pull answered ${status} ${JSON.stringify(body)}`);
      if (!(body as PullBody).hasMore) return i;
    }
    throw new Error(`${this.name}: still hasMore after ${maxPages} pages`);
  }

  /** The checksum of a bucket over the local rows, as the README's Dart code computes it. */
  checksum(bucket: string): number {
    const hashes: number[] = [];
    for (const [name, t] of this.tables) for (const [id, r] of t) if (r.bucket === bucket) hashes.push(rowHash(name, id, r.v));
    return sumHashes(hashes);
  }
}
