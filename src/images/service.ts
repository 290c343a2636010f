import { createHash } from 'node:crypto';
import pLimit from 'p-limit';
import { pgp, type Db } from '../db/pg.js';
import { AppError } from '../errors.js';
import { keyMatch, keyText, s, wireId, type Collection, type Model } from '../model/model.js';
import type { Logger } from '../observability/logger.js';
import type { Storage } from '../storage/s3.js';
import { isSeqText } from '../protocol/values.js';
import { encodeManifestCursor, type ImageInfo, type ManifestItem, type ManifestPosition, type StoredVariant } from '../protocol/media.js';
import type { Indexer } from '../sync/indexer.js';

export type { ImageInfo, ManifestItem, ManifestPosition, StoredVariant };
import { IMMUTABLE, PRESETS_VERSION } from './presets.js';
import { processImage } from './process.js';

export interface MediaOptions {
  maxPixels: number;
  concurrency: number;
  /** 'cdn': baseUrl + key; 'presigned': short-lived S3 URLs; 'proxy': served by this app at /v1/media/<key> */
  urlMode: 'cdn' | 'presigned' | 'proxy';
  baseUrl: string | undefined;
  presignSeconds: number;
}

/** An upload's answer (POST|PUT /v1/admin/<collection>/:id/image). */
/** A row's image changed (after the commit): what the push channel announces. */
export interface ImageChange {
  collection: string;
  /** wire id */
  id: number | string;
  /** the row's live buckets (the rooms to tell) */
  buckets: string[];
  thumb: string;
}

export interface MediaServiceDeps {
  db: Db;
  model: Model;
  storage: Storage;
  log: Logger;
  options: MediaOptions;
  /** called after an image switch is visible to pull (the push channel's catalog:image) */
  onChange?: (change: ImageChange) => void;
  /** the server's indexer: a switch waits for it, so onChange fires once pull has the row (the CLIs have none: the server indexes) */
  indexer?: Pick<Indexer, 'flush'>;
}

const variantId = (name: string, ext: string) => (ext === 'webp' ? name : `${name}_${ext}`);

// --- keys ------------------------------------------------------------------------------

const SIMPLE_SEGMENT = /^[A-Za-z0-9_-]{1,128}$/;
/** A row key's segment in storage keys: readable when the key is, else a hash (never a '/'). */
export const ROW_SEGMENT = /^(?:[A-Za-z0-9_-]{1,128}|~[A-Za-z0-9_-]{22})$/;

function rowSegment(rowKey: string): string {
  return SIMPLE_SEGMENT.test(rowKey) ? rowKey : `~${createHash('sha256').update(rowKey).digest('base64url').slice(0, 22)}`;
}

// --- the service -----------------------------------------------------------------------

/**
 * Images of the media collection's rows (the sync config's `media`): bytes -> validated
 * -> variants on S3 -> fieldsync's images table, in that order. fieldsync keeps images
 * itself (never in the ERP's table); pull joins them into the row's media columns.
 *
 * The row switches to the new image only after every variant is stored; if a write fails,
 * whatever was written is removed and the old image stays. The switch puts the row in the
 * outbox in the same transaction, so devices pull the row again with its new image.
 * The same bytes again are a no-op (content-addressed keys). Image work runs with a
 * concurrency limit so uploads cannot starve sync requests of CPU.
 */
export class MediaService {
  private readonly limit;
  private readonly db: Db;
  private readonly model: Model;
  private readonly storage: Storage;
  private readonly log: Logger;
  private readonly opts: MediaOptions;
  private readonly onChange: (change: ImageChange) => void;
  private readonly indexer: Pick<Indexer, 'flush'> | undefined;
  /** the media collection; undefined when the config keeps no images */
  readonly collection: Collection | undefined;
  /** SQL over r: what media:import matches file names against */
  private readonly nameSql: string | undefined;

  constructor(deps: MediaServiceDeps) {
    this.db = deps.db;
    this.model = deps.model;
    this.storage = deps.storage;
    this.log = deps.log;
    this.opts = deps.options;
    this.onChange = deps.onChange ?? (() => undefined);
    this.indexer = deps.indexer;
    this.limit = pLimit(this.opts.concurrency);
    const media = deps.model.media; // a single-column key: checked with the config
    this.collection = media?.collection;
    this.nameSql = media?.name;
  }

  private target(): Collection {
    if (!this.collection) throw new AppError('not-found', 'this server keeps no images (the sync config has no media)');
    return this.collection;
  }

  /**
   * The row key (as the items table holds it) of an id from a URL: a positive integer for
   * an integer key, a UUID for a uuid key, up to 200 characters for a text key.
   */
  parseId(param: string): string {
    const c = this.target();
    const type = c.key[0]!.type;
    const bad = (message: string) => new AppError('validation-failed', `Invalid ${c.name} id`, { errors: [{ path: 'id', message }] });
    if (type === 'int') {
      if (!isSeqText(param) || param === '0') throw bad('a positive integer');
      return param;
    }
    if (type === 'uuid') {
      if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(param)) throw bad('a UUID');
      return param.toLowerCase();
    }
    if (param.length === 0 || [...param].length > 200 || param.includes('\u0000')) throw bad('1 to 200 characters');
    return param;
  }

  /** Stores an image for the row with this key (text, as in the items table). */
  upload(rowKey: string, bytes: Buffer): Promise<ImageInfo> {
    return this.limit(async () => {
      const c = this.target();
      const id = wireId(c, rowKey);
      const images = s(this.model, 'images');
      // the row must exist in the ERP's table; its current image, if any
      const current = await this.db.oneOrNone<{ key: string | null; width: number; height: number; placeholder: string; variants: Record<string, StoredVariant> }>(
        `SELECT im.key, im.width, im.height, im.placeholder, im.variants
           FROM ${c.table} r LEFT JOIN ${images} im ON im.coll = $2 AND im.row_key = $1
          WHERE ${keyMatch(c, 'r', '$1')} LIMIT 1`,
        [rowKey, c.name],
      );
      if (!current) throw new AppError('not-found', `no ${c.name} ${id}`);
      const img = await processImage(bytes, this.opts.maxPixels);
      const prefix = `${c.name}/${rowSegment(rowKey)}/${img.hash.slice(0, 16)}-${PRESETS_VERSION}`;
      if (current.key === prefix) {
        return { collection: c.name, id, key: prefix, width: current.width, height: current.height, placeholder: current.placeholder, variants: current.variants, unchanged: true };
      }

      const writes = [
        ...img.variants.map((v) => ({ key: `${prefix}/${v.name}.${v.ext}`, body: v.body, type: v.contentType, cache: IMMUTABLE })),
        { key: `${prefix}/original`, body: bytes, type: `image/${img.format}`, cache: 'private, no-store' },
      ];
      const settled = await Promise.allSettled(writes.map((w) => this.storage.put(w.key, w.body, w.type, w.cache)));
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) {
        await this.storage.remove(writes.map((w) => w.key)).catch((err: unknown) => this.log.warn({ err, prefix }, 'could not remove a half-written image'));
        this.log.warn({ err: failed.reason, collection: c.name, id }, 'image upload failed at the store');
        throw new AppError('unavailable', 'the image store is unavailable; nothing was changed');
      }

      const variants: Record<string, StoredVariant> = {};
      for (const v of img.variants) {
        variants[variantId(v.name, v.ext)] = { key: `${prefix}/${v.name}.${v.ext}`, type: v.contentType, bytes: v.body.length, sha256: v.sha256, width: v.width, height: v.height };
      }
      const buckets = await this.db.tx('image switch', async (t) => {
        const old = await t.oneOrNone<{ key: string }>(`SELECT key FROM ${images} WHERE coll = $1 AND row_key = $2 FOR UPDATE`, [c.name, rowKey]);
        // seq NULL: published (numbered) by the next indexing batch, which re-sends the row
        await t.none(
          `INSERT INTO ${images} (coll, row_key, key, width, height, placeholder, variants, seq, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, now())
           ON CONFLICT (coll, row_key) DO UPDATE
             SET key = EXCLUDED.key, width = EXCLUDED.width, height = EXCLUDED.height, placeholder = EXCLUDED.placeholder,
                 variants = EXCLUDED.variants, seq = NULL, updated_at = EXCLUDED.updated_at`,
          [c.name, rowKey, prefix, img.width, img.height, img.placeholder, variants],
        );
        const garbage = s(this.model, 'media_garbage');
        if (old && old.key !== prefix) {
          await t.none(`INSERT INTO ${garbage} (prefix, coll, row_key) VALUES ($1, $2, $3) ON CONFLICT (prefix) DO UPDATE SET replaced_at = now()`, [old.key, c.name, rowKey]);
        }
        await t.none(`DELETE FROM ${garbage} WHERE prefix = $1`, [prefix]); // an old image uploaded again
        // the row's media columns changed: it goes out again, like any changed row
        await t.none(`INSERT INTO ${s(this.model, 'changes')} (coll, row_key) VALUES ($1, $2)`, [c.name, rowKey]);
        // the rooms the catalog:image event goes to: the row's buckets (an image moves none)
        return t.map(`SELECT bucket FROM ${s(this.model, 'items')} WHERE coll = $1 AND row_key = $2 AND NOT deleted`, [c.name, rowKey], (r: { bucket: string }) => r.bucket);
      });
      // published by this batch; the switch is committed, so a failing indexer (it logs) must
      // not fail the upload: a later batch publishes it
      await this.indexer?.flush().catch(() => undefined);
      this.onChange({ collection: c.name, id, buckets, thumb: await this.url(variants.thumb!.key) });
      return { collection: c.name, id, key: prefix, width: img.width, height: img.height, placeholder: img.placeholder, variants, unchanged: false };
    });
  }

  /** Where a phone fetches a key from. */
  url(key: string): Promise<string> | string {
    if (this.opts.urlMode === 'cdn') return `${this.opts.baseUrl!.replace(/\/$/, '')}/${key}`;
    if (this.opts.urlMode === 'presigned') return this.storage.presign(key, this.opts.presignSeconds);
    return `/v1/media/${key}`;
  }

  /**
   * The offline prefetch manifest: images changed after `after`, in (batch, row key) order,
   * below `below` (the heads' watermark: every batch under it has committed, and later
   * batches get higher numbers, so no image published later can land behind a served position).
   */
  async manifest(q: { after: ManifestPosition | undefined; limit: number; below: bigint }): Promise<{ items: ManifestItem[]; cursor: string; hasMore: boolean }> {
    const c = this.target();
    const after = q.after ?? { seq: '0', rowKey: '' };
    const rows = await this.db.any<{ row_key: string; seq: string; placeholder: string; variants: Record<string, StoredVariant> }>(
      `SELECT row_key, seq::text AS seq, placeholder, variants FROM ${s(this.model, 'images')}
        WHERE coll = $1 AND (seq, row_key) > ($2::bigint, $3) AND seq < $4::bigint
        ORDER BY images.seq, row_key LIMIT $5`,
      [c.name, after.seq, after.rowKey, q.below.toString(), q.limit],
    );
    const items = await Promise.all(
      rows.map(async (r) => ({
        id: wireId(c, r.row_key),
        placeholder: r.placeholder,
        variants: Object.fromEntries(
          await Promise.all(Object.entries(r.variants).map(async ([name, v]) => [name, { url: await this.url(v.key), type: v.type, bytes: v.bytes, sha256: v.sha256, width: v.width, height: v.height }] as const)),
        ),
      })),
    );
    const last = rows.at(-1);
    // nothing new: keep the position (or, for a first call, start just below the watermark)
    const next = last ? { seq: last.seq, rowKey: last.row_key } : (q.after ?? { seq: (q.below > 0n ? q.below - 1n : 0n).toString(), rowKey: '' });
    return { items, cursor: encodeManifestCursor(next), hasMore: rows.length === q.limit };
  }

  /**
   * Deletes replaced images once their grace period is over and no row points at them
   * any more (a device that synced the old row can still fetch it meanwhile).
   */
  async cleanup(graceHours: number): Promise<number> {
    const due = await this.db.task('bg:media-cleanup', (t) =>
      t.any<{ prefix: string }>(
        `SELECT g.prefix FROM ${s(this.model, 'media_garbage')} g
          WHERE g.replaced_at < now() - make_interval(hours => $1)
            AND NOT EXISTS (SELECT 1 FROM ${s(this.model, 'images')} i WHERE i.coll = g.coll AND i.row_key = g.row_key AND i.key = g.prefix)
          LIMIT 500`,
        [graceHours],
      ),
    );
    for (const { prefix } of due) {
      await this.storage.removePrefix(`${prefix}/`);
      await this.db.none(`DELETE FROM ${s(this.model, 'media_garbage')} WHERE prefix = $1`, [prefix]);
    }
    return due.length;
  }

  /**
   * Rebuilds every image's variants from its stored original (after a preset change:
   * new keys; the old ones become garbage). Images of rows the ERP has deleted since are
   * skipped and listed.
   */
  async regenerate(onProgress: (done: number, total: number) => void = () => undefined): Promise<{ regenerated: number; gone: (number | string)[] }> {
    const c = this.collection;
    if (!c) return { regenerated: 0, gone: [] };
    const rows = await this.db.any<{ row_key: string; key: string }>(`SELECT row_key, key FROM ${s(this.model, 'images')} WHERE coll = $1 ORDER BY row_key`, [c.name]);
    const reads = pLimit(this.opts.concurrency); // originals are read no faster than they are processed
    const gone: (number | string)[] = [];
    let done = 0;
    await Promise.all(
      rows.map((r) =>
        reads(async () => {
          const original = await this.storage.get(`${r.key}/original`);
          const bytes = Buffer.from(await original.Body!.transformToByteArray());
          try {
            await this.upload(r.row_key, bytes);
          } catch (err) {
            if (!(err instanceof AppError && err.code === 'not-found')) throw err;
            gone.push(wireId(c, r.row_key));
          }
          onProgress(++done, rows.length);
        }),
      ),
    );
    return { regenerated: rows.length - gone.length, gone };
  }

  /** media:import: the row keys of the rows whose media name is one of `names` (name -> row keys). */
  async rowsByName(names: readonly string[]): Promise<Map<string, string[]>> {
    const c = this.target();
    const rows = await this.db.any<{ name: string; row_key: string }>(
      `SELECT (${this.nameSql})::text AS name, ${keyText(c)} AS row_key FROM ${c.table} r WHERE (${this.nameSql})::text = ANY($1::text[])`,
      [names],
    );
    const out = new Map<string, string[]>();
    for (const r of rows) out.set(r.name, [...(out.get(r.name) ?? []), r.row_key]);
    return out;
  }

  /** Row keys of up to `limit` rows with no image yet, in key order (the demo's images). */
  async rowsWithoutImage(limit: number): Promise<string[]> {
    const c = this.collection;
    if (!c) return [];
    return this.db.map(
      `SELECT ${keyText(c)} AS row_key FROM ${c.table} r
        WHERE NOT EXISTS (SELECT 1 FROM ${s(this.model, 'images')} im WHERE im.coll = $1 AND im.row_key = ${keyText(c)})
        ORDER BY ${c.key.map((k) => `r.${pgp.as.name(k.column)}`).join(', ')} LIMIT $2`,
      [c.name, limit],
      (r: { row_key: string }) => r.row_key,
    );
  }
}
