import { createHash, createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import type { SnapshotOffer } from '../protocol/sync.js';
import type { Keyring } from '../lib/keyring.js';
import { promisify } from 'node:util';
import { brotliCompress, constants as zlib, gzip } from 'node:zlib';
import pgPromise from 'pg-promise';
import type { Db } from '../db/pg.js';
import { within } from '../lib/within.js';
import { parseBucket, s, wireColumns, type App, type Model } from '../model/model.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { rowHash } from '../sync/checksum.js';
import type { Heads } from '../sync/heads.js';
import { collectionsFor, deltaCountSql, snapshotSql } from '../sync/pull-sql.js';
import type { Encoding, SnapshotMeta, SnapshotStore } from './store.js';

const gzipAsync = promisify(gzip);

const brotliAsync = promisify(brotliCompress);

export interface SnapshotOptions {
  pageRows: number;
  maxAgeMs: number;
  maxDeltaRows: number;
  graceMs: number;
  urlTtlSeconds: number;
}

/** What a pull answer offers for a bucket starting from zero. */
export type { SnapshotOffer };

/** How often a snapshot's delta since its build is counted (rebuild decision). */
const DELTA_CHECK_MS = 5000;

/** Bytes of recently served pages kept in process memory. */
const HOT_BYTES = 64 * 1024 * 1024;

const readOnlySnapshot = new pgPromise.txMode.TransactionMode({ tiLevel: pgPromise.txMode.isolationLevel.repeatableRead, readOnly: true });

/**
 * Bootstrap snapshots (DESIGN §5): a shared bucket's rows below a watermark, built once,
 * split into pages of `pageRows`, each stored gzip- and brotli-compressed, so a thousand
 * phones starting at once download the same bytes and PostgreSQL barely notices. The
 * phone continues with ordinary deltas from the snapshot's watermark, which is correct
 * however old the snapshot is; age and the delta since only decide when to rebuild.
 * One builder at a time across processes (a lock in the store); others keep offering the
 * previous snapshot. Any store failure means "no snapshot": pull pages from PostgreSQL.
 */
export class SnapshotService {
  private readonly key: Buffer;
  private readonly previous: { key: Buffer; until: number } | undefined;
  private readonly building = new Map<string, Promise<SnapshotMeta | undefined>>();
  /** when each snapshot's delta since was last counted */
  private readonly deltaChecked = new Map<string, number>();
  /** pages served recently: immutable by id, so a small in-process cache spares Redis a thousand identical reads */
  private readonly hot = new Map<string, Buffer>();
  private hotBytes = 0;

  constructor(
    private readonly db: Db,
    private readonly model: Model,
    private readonly heads: Heads,
    private readonly store: SnapshotStore,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly opts: SnapshotOptions,
    keys: Keyring,
  ) {
    const derive = (secret: string) => Buffer.from(hkdfSync('sha256', secret, 'fieldsync', 'snapshot page url v1', 32));
    this.key = derive(keys.current);
    this.previous = keys.previous && { key: derive(keys.previous.secret), until: keys.previous.until };
  }

  /** Buckets shared by many users are worth a snapshot (the config's `snapshot: true`). */
  eligible(bucket: string): boolean {
    return parseBucket(this.model, bucket)?.def.snapshot === true;
  }

  /** A snapshot to start this bucket from, or undefined (page from PostgreSQL instead). */
  async offer(bucket: string, profile: App, waitMs = 15_000): Promise<SnapshotOffer | undefined> {
    if (!this.eligible(bucket)) return undefined;
    try {
      let meta = await within(2000, this.store.getMeta(bucket, profile.name), 'snapshot store');
      // an empty snapshot (built before the data arrived) is worth nothing once there is data
      const useless = meta !== undefined && meta.rows === 0 && this.heads.head(bucket) >= BigInt(meta.position);
      if (!meta || useless) meta = await this.build(bucket, profile, waitMs);
      else if (await this.stale(meta)) void this.build(bucket, profile, 0).catch(() => undefined); // keep serving this one meanwhile
      if (!meta) {
        this.metrics.snapshots.inc({ result: 'miss' });
        return undefined;
      }
      this.metrics.snapshots.inc({ result: 'hit' });
      this.metrics.snapshotAge.set({ bucket }, (Date.now() - meta.builtAt) / 1000);
      const exp = Math.floor(Date.now() / 1000) + this.opts.urlTtlSeconds;
      return {
        bucket,
        id: meta.id,
        position: meta.position,
        rows: meta.rows,
        checksum: meta.checksum,
        pages: Array.from({ length: meta.pages }, (_, i) => this.pageUrl(bucket, meta!.id, i, exp)),
      };
    } catch (err) {
      this.metrics.snapshots.inc({ result: 'fallback' });
      this.log.warn({ err: (err as Error).message, bucket }, 'snapshot store unavailable: paging from PostgreSQL');
      return undefined;
    }
  }

  private async stale(meta: SnapshotMeta): Promise<boolean> {
    if (Date.now() - meta.builtAt > this.opts.maxAgeMs) return true;
    // a bootstrap storm offers the same snapshot a thousand times: count its delta at most
    // once per interval, not once per device
    const checked = this.deltaChecked.get(meta.id);
    if (checked !== undefined && Date.now() - checked < DELTA_CHECK_MS) return false;
    this.deltaChecked.set(meta.id, Date.now());
    if (this.deltaChecked.size > 1000) this.deltaChecked.delete(this.deltaChecked.keys().next().value!);
    if (this.heads.head(meta.bucket) < BigInt(meta.position)) return false; // nothing since
    const { n } = await this.db.task('bg:snapshot', (t) => t.one<{ n: number }>(deltaCountSql(this.model, meta.bucket, meta.position)));
    return n > this.opts.maxDeltaRows;
  }

  /**
   * Builds (or waits for another process's build, up to waitMs) and returns the current
   * snapshot. Single-flight in this process; one builder across processes.
   */
  build(bucket: string, profile: App, waitMs: number): Promise<SnapshotMeta | undefined> {
    const name = `${bucket}:${profile.name}`;
    let running = this.building.get(name);
    if (!running) {
      running = this.buildOnce(bucket, profile, waitMs).finally(() => this.building.delete(name));
      this.building.set(name, running);
    }
    return running;
  }

  private async buildOnce(bucket: string, profile: App, waitMs: number): Promise<SnapshotMeta | undefined> {
    const lockName = `snapshot:${bucket}:${profile.name}`;
    const token = await within(2000, this.store.lock(lockName, 120_000), 'snapshot store');
    if (!token) {
      // someone else builds: wait for their result (or give up and page from PostgreSQL)
      const until = Date.now() + waitMs;
      while (Date.now() < until) {
        await new Promise((r) => setTimeout(r, 100));
        const meta = await this.store.getMeta(bucket, profile.name);
        if (meta) return meta;
      }
      return this.store.getMeta(bucket, profile.name);
    }
    const started = performance.now();
    try {
      const meta = await this.write(bucket, profile);
      this.metrics.snapshotBuildSeconds.observe({ kind: parseBucket(this.model, bucket)!.def.name }, (performance.now() - started) / 1000);
      this.log.info({ bucket, profile: profile.name, rows: meta.rows, pages: meta.pages, ms: Math.round(performance.now() - started) }, 'snapshot built');
      return meta;
    } finally {
      await this.store.unlock(lockName, token).catch(() => undefined);
    }
  }

  /** Streams the bucket below the watermark into pages, then publishes the meta (the switch). */
  private async write(bucket: string, profile: App): Promise<SnapshotMeta> {
    const parsed = parseBucket(this.model, bucket)!;
    const ttl = this.opts.maxAgeMs * 2 + this.opts.graceMs;
    return this.db.tx({ tag: 'bg:snapshot', mode: readOnlySnapshot }, async (t) => {
      // the watermark of this snapshot: batches commit in number order, so it holds every one below
      const { w } = await t.one<{ w: string }>(`SELECT (seq + 1)::text AS w FROM ${s(this.model, 'state')}`);
      const id = createHash('sha256').update(`${bucket}|${profile.name}|${w}|${Date.now()}`).digest('base64url').slice(0, 16);
      let page = 0;
      let rows = 0;
      let sum = 0;
      for (const collection of collectionsFor(parsed.def, profile)) {
        const name = collection.name;
        let after: string | null = null;
        for (;;) {
          const batch: { id: string; v: string; j: string }[] = await t.any(snapshotSql(this.model, collection, profile, bucket, w, after, this.opts.pageRows));
          if (batch.length === 0) break;
          for (const r of batch) sum = (sum + rowHash(name, r.id, r.v)) >>> 0;
          // Columnar: all names together, all prices together... gzip finds far more to
          // share than in row arrays (the scale-10 catalog: 1.47 MB -> 1.08 MB).
          const cols = wireColumns(profile, name);
          const rowsOf = batch.map((r) => JSON.parse(r.j) as unknown[]);
          const columns = cols.map((_, c) => rowsOf.map((row) => row[c]));
          const json = Buffer.from(
            `{"snapshot":"${id}","page":${page},"buckets":{"current":[${JSON.stringify(bucket)}]},"changes":{${JSON.stringify(name)}:{"cols":${JSON.stringify(cols)},"columns":${JSON.stringify(columns)},"deleted":[]}}}`,
          );
          const [gz, br] = await Promise.all([
            gzipAsync(json, { level: 9 }),
            brotliAsync(json, { params: { [zlib.BROTLI_PARAM_QUALITY]: 9, [zlib.BROTLI_PARAM_SIZE_HINT]: json.length } }),
          ]);
          await this.store.putPage(id, page, { gzip: gz, br }, ttl);
          page++;
          rows += batch.length;
          after = batch.at(-1)!.id;
          if (batch.length < this.opts.pageRows) break;
        }
      }
      const meta: SnapshotMeta = { id, bucket, profile: profile.name, position: w, pages: page, rows, checksum: sum, builtAt: Date.now() };
      await this.store.setMeta(meta, ttl);
      return meta;
    });
  }

  private sign(bucket: string, id: string, page: number, exp: number, key = this.key): string {
    return createHmac('sha256', key).update(`${bucket}/${id}/${page}/${exp}`).digest('base64url').slice(0, 22);
  }

  /** The signed URL of a page, valid until exp (epoch seconds). */
  pageUrl(bucket: string, id: string, page: number, exp: number): string {
    return `/v1/sync/snapshots/${encodeURIComponent(bucket)}/${id}/${page}?exp=${exp}&sig=${this.sign(bucket, id, page, exp)}`;
  }

  /** The stored bytes of a page if the signature holds and has not expired. */
  async page(bucket: string, id: string, page: number, exp: number, sig: string, enc: Encoding): Promise<Buffer | 'forbidden' | undefined> {
    const got = Buffer.from(sig);
    // the current key, or during a rotation's overlap the previous one
    const keys = this.previous && Date.now() < this.previous.until ? [this.key, this.previous.key] : [this.key];
    const signed = keys.some((key) => {
      const want = Buffer.from(this.sign(bucket, id, page, exp, key));
      return got.length === want.length && timingSafeEqual(got, want);
    });
    if (!signed || exp < Date.now() / 1000) return 'forbidden';
    const key = `${id}:${page}:${enc}`;
    let bytes = this.hot.get(key);
    if (!bytes) {
      try {
        bytes = await within(2000, this.store.getPage(id, page, enc), 'snapshot store');
      } catch (err) {
        // the store is down or reconnecting: the page is gone for this caller, whose pull
        // from its previous cursor then pages from PostgreSQL (as when Redis is down)
        this.log.warn({ err: (err as Error).message, bucket }, 'snapshot store unavailable: page answered gone');
        return undefined;
      }
      if (bytes) {
        this.hot.set(key, bytes);
        this.hotBytes += bytes.length;
        for (const [k, b] of this.hot) {
          if (this.hotBytes <= HOT_BYTES) break;
          this.hot.delete(k);
          this.hotBytes -= b.length;
        }
      }
    }
    if (bytes) this.metrics.snapshotBytes.inc(bytes.length);
    return bytes;
  }
}
