import type { z } from 'zod';
import type { PullAnswerBody, snapshotPage, wireId } from '../../src/protocol/sync.js';
import { rowHash, sumHashes } from '../../src/sync/checksum.js';

/** The wire shapes, from the protocol's schemas (src/protocol/sync.ts): never declared twice. */
export type WireId = z.output<typeof wireId>;
/** One section of a pull answer: rows are [b, id, v, ...columns], deletes [bucket index, id]. */
export type Section = PullAnswerBody['changes'][string];
export type PullBody = PullAnswerBody;

export interface LocalRow {
  bucket: string;
  v: number;
  /** wire columns by name (without b) */
  row: Record<string, unknown>;
}

/**
 * A device's local replica, applying pull answers the way the README tells Flutter
 * developers to: local rows keyed by (collection, bucket, id); removed buckets first,
 * snapshot pages, then per collection the deletes and the rows; all of one page at once.
 */
export class Device {
  /** collection -> "<bucket>|<id>" -> row (a delete names the same id, of the same type, as the row) */
  readonly tables = new Map<string, Map<string, LocalRow>>();
  cursor: string | undefined;
  last: PullBody | undefined;
  pulls = 0;

  /** snapshot pages fetched, by page URL path */
  snapshotPages = 0;

  /**
   * Audit every answer (the convergence runs): a row version this copy already holds
   * delivered again, or a checksum that differs from the device's own sum after applying
   * the page it came with, is recorded in `problems`.
   */
  audit = false;
  readonly problems: string[] = [];

  /** one pull at a time, as an app does: answers are applied in the order they were asked for */
  private inFlight: Promise<unknown> = Promise.resolve();

  constructor(
    readonly name: string,
    private readonly send: (cursor: string | undefined, limit: number) => Promise<Response>,
    /** base URL snapshot page paths are fetched from (the server's) */
    private readonly pageBase?: string,
  ) {}

  private stored(name: string): Map<string, LocalRow> {
    let t = this.tables.get(name);
    if (!t) this.tables.set(name, (t = new Map()));
    return t;
  }

  /** A collection's rows by String(id) (for assertions); throws if an id is held in two buckets. */
  table(name: string): Map<string, LocalRow> {
    const out = new Map<string, LocalRow>();
    for (const r of this.stored(name).values()) {
      const id = String(r.row.id);
      if (out.has(id)) throw new Error(`${this.name}: ${name} ${id} is held in ${out.get(id)!.bucket} and ${r.bucket}`);
      out.set(id, r);
    }
    return out;
  }

  /** Applies an answer's changes and keeps its cursor (removed buckets are dropped before, by pullOnce). */
  apply(body: PullBody): void {
    this.applyChanges(body.buckets.current, body.changes);
    this.cursor = body.cursor;
    this.last = body;
  }

  private applyChanges(current: string[], changes: Record<string, Section>): void {
    const body = { buckets: { current } };
    for (const [name, section] of Object.entries(changes)) {
      const t = this.stored(name);
      for (const [bi, id] of section.deleted) t.delete(`${body.buckets.current[bi]}|${id}`);
      for (const values of section.rows) {
        const row: Record<string, unknown> = {};
        section.cols.forEach((c, i) => (row[c] = values[i]));
        const bucket = body.buckets.current[row.b as number]!;
        if (this.audit && t.get(`${bucket}|${row.id as WireId}`)?.v === row.v) this.problems.push(`${name} ${String(row.id)} v${String(row.v)} delivered twice to ${bucket}`);
        t.set(`${bucket}|${row.id as WireId}`, { bucket, v: row.v as number, row });
      }
    }
  }

  /** Downloads and applies an answer's snapshot pages (before the answer's own changes). */
  private async applySnapshots(body: PullBody): Promise<void> {
    for (const snap of body.snapshots ?? []) {
      for (const url of snap.pages) {
        const res = await fetch(`${this.pageBase}${url}`, { headers: { 'accept-encoding': 'gzip' } });
        if (res.status !== 200) throw new Error(`${this.name}: snapshot page answered ${res.status}`);
        const page = (await res.json()) as z.output<typeof snapshotPage>;
        // snapshot pages are columnar: turn the columns back into rows
        const changes: Record<string, Section> = {};
        for (const [name, c] of Object.entries(page.changes)) {
          changes[name] = { cols: c.cols, rows: (c.columns[0] ?? []).map((_, i) => c.columns.map((col) => col[i]) as Section['rows'][number]), deleted: [] };
        }
        this.applyChanges(page.buckets.current, changes);
        this.snapshotPages++;
      }
    }
  }

  dropBucket(bucket: string): void {
    for (const t of this.tables.values()) for (const [id, r] of t) if (r.bucket === bucket) t.delete(id);
  }

  /** One page; returns the answer (status other than 200 is returned as is, not applied). */
  pullOnce(limit: number): Promise<{ status: number; body: PullBody | Record<string, unknown> }> {
    const next = this.inFlight.then(() => this.pullNow(limit));
    this.inFlight = next.catch(() => undefined);
    return next;
  }

  private async pullNow(limit: number): Promise<{ status: number; body: PullBody | Record<string, unknown> }> {
    const res = await this.send(this.cursor, limit);
    this.pulls++;
    const body = (await res.json()) as PullBody;
    if (res.status === 200) {
      for (const b of body.buckets.removed) this.dropBucket(b);
      await this.applySnapshots(body);
      this.apply(body);
      if (this.audit) {
        for (const [b, sum] of Object.entries(body.checksums)) {
          const mine = this.checksum(b);
          if (mine !== sum) this.problems.push(`checksum of ${b}: server ${sum}, device ${mine} (watermark ${body.watermark})`);
        }
      }
    }
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
    for (const [name, t] of this.tables) for (const r of t.values()) if (r.bucket === bucket) hashes.push(rowHash(name, String(r.row.id), r.v));
    return sumHashes(hashes);
  }
}
