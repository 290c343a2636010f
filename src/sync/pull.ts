import { createHash } from 'node:crypto';
import { principalKey, type Principal } from '../auth/principal.js';
import type { SnapshotOffer, SnapshotService } from '../cache/snapshots.js';
import { type Db } from '../db/pg.js';
import { AppError } from '../errors.js';
import { parseBucket, s, wireColumns, type App, type Model } from '../model/model.js';
import type { Metrics } from '../observability/metrics.js';
import { CursorCodec, type CursorPayload, type Position } from '../protocol/cursor.js';
import type { BucketSets } from './bucket-set.js';
import type { ChecksumCache } from './checksum-cache.js';
import type { Heads } from './heads.js';
import type { Indexer } from './indexer.js';
import { collectionsFor, pageSql } from './pull-sql.js';

export interface PullRequest {
  principal: Principal;
  app?: string | undefined;
  cursor?: string | undefined;
  limit: number;
}

export interface PullAnswer {
  /** the JSON body, assembled as text */
  body: string;
  /** strong ETag of the body, computed once */
  etag: string;
  hasMore: boolean;
  /** answered from memory without a database query */
  fast: boolean;
}

const START: Position = ['0', null, null];

interface Item {
  seq: string;
  /** a live item whose row is gone or left the bucket: committed by the ERP, not indexed yet (or the triggers were bypassed) */
  gone: boolean;
  coll: string;
  id: string;
  deleted: boolean;
  j: string;
}

function answer(body: string, hasMore: boolean, fast: boolean): PullAnswer {
  return { body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`, hasMore, fast };
}

function caughtUp(pos: Position | undefined, head: bigint): boolean {
  return pos !== undefined && pos[1] === null && head < BigInt(pos[0]);
}

/**
 * The delta pull (DESIGN §5). For each bucket of the caller's set, items after the
 * cursor's position and below the watermark, ordered by (batch, collection, key), up to
 * `limit` across all buckets. The watermark is the heads' (the last indexing batch + 1 when
 * read: batches commit in number order, so every one below it is visible), so a batch
 * committed meanwhile is delivered by a later pull, never skipped. A cursor whose every
 * bucket is caught up past its head is answered from memory: no query.
 */
export class PullService {
  private readonly filtered = new WeakMap<string[], Map<string, string[]>>();
  private readonly replies = new Map<string, { version: string; answer: PullAnswer }>();

  constructor(
    private readonly db: Db,
    private readonly model: Model,
    private readonly heads: Heads,
    private readonly sets: BucketSets,
    private readonly checksums: ChecksumCache,
    private readonly codec: CursorCodec,
    private readonly metrics: Metrics,
    private readonly snapshots?: SnapshotService,
    /** set while the database no longer matches the config: answer 503 rather than stale data */
    private readonly drift: { ok: boolean } = { ok: true },
    /** catches up with the outbox when a page meets a row deleted but not indexed yet */
    private readonly indexer?: Pick<Indexer, 'flush'>,
  ) {
    this.outbox = s(model, 'changes');
  }

  /** `<schema>.changes` */
  private readonly outbox: string;

  /**
   * The no-change answer, if this request can have it without any I/O: a valid cursor of
   * this user, app, profile and epoch, a cached bucket set, and every bucket caught up
   * past its head. undefined means "take the full path" (which also reports errors).
   */
  tryFast(p: Principal, app: string | undefined, raw: string): PullAnswer | undefined {
    if (!this.drift.ok) return undefined;
    // The same device polling with the same cursor while nothing changed anywhere gets
    // the very answer it got last time (no JSON, no hashing). Any move of the heads, a new
    // checksum or a recomputed bucket set changes the version and voids these entries.
    const version = `${this.heads.version}.${this.checksums.version}.${this.sets.version}`;
    const key = `${principalKey(p)}|${app ?? ''}|${raw}`;
    const seen = this.replies.get(key);
    if (seen && seen.version === version && this.sets.peek(p)) {
      this.metrics.pulls.inc({ path: 'fast' });
      return seen.answer;
    }
    const answer = this.computeFast(p, app, raw);
    if (answer) {
      if (this.replies.size >= 10_000) this.replies.delete(this.replies.keys().next().value!);
      this.replies.set(key, { version, answer });
    }
    return answer;
  }

  /** The app a request asks for (or the role's default), if the role may use it. */
  private appFor(p: Principal, name: string | undefined): App | undefined {
    const app = this.model.apps.get(name ?? this.model.defaultApp.get(p.role) ?? '');
    return app && app.roles.includes(p.role) ? app : undefined;
  }

  private computeFast(p: Principal, name: string | undefined, raw: string): PullAnswer | undefined {
    const app = this.appFor(p, name);
    if (!app) return undefined;
    const c = this.codec.decode(raw);
    if (typeof c === 'string' || c.userId !== p.userId || c.app !== app.name || c.epoch !== this.heads.epoch || c.profile !== app.hash) return undefined;
    const cached = this.sets.peek(p);
    if (!cached) return undefined;
    const set = this.forApp(cached, app);
    const before = c.buckets;
    for (const b of set) if (!caughtUp(before[b], this.heads.head(b))) return undefined;
    const removed = Object.keys(before).filter((b) => !set.includes(b));
    this.metrics.pulls.inc({ path: 'fast' });
    const out = removed.length === 0 ? raw : this.encode(p, app, c.epoch, set, before);
    return answer(this.body(out, false, this.cachedChecksums(set, before, app), set, [], removed, new Map()), false, true);
  }

  /** The buckets of a set that hold something the app syncs (memoized per set). */
  private forApp(set: string[], app: App): string[] {
    let byApp = this.filtered.get(set);
    if (!byApp) this.filtered.set(set, (byApp = new Map()));
    let out = byApp.get(app.name);
    if (!out) {
      out = set.filter((b) => {
        const parsed = parseBucket(this.model, b);
        return parsed !== undefined && collectionsFor(parsed.def, app).length > 0;
      });
      byApp.set(app.name, out);
    }
    return out;
  }

  async pull(req: PullRequest): Promise<PullAnswer> {
    if (!this.drift.ok) throw new AppError('config-drift', 'the database no longer matches the sync config; retry later');
    if (req.cursor !== undefined) {
      const fast = this.tryFast(req.principal, req.app, req.cursor);
      if (fast) return fast;
    }
    const p = req.principal;
    const app = this.appFor(p, req.app);
    if (!app) {
      if (req.app !== undefined && !this.model.apps.has(req.app)) throw new AppError('validation-failed', `unknown app ${req.app}; one of: ${[...this.model.apps.keys()].join(', ')}`);
      throw new AppError('forbidden', `the ${req.app ?? 'default'} app is not for role ${p.role}`);
    }
    const epoch = this.heads.epoch;
    const cursor = req.cursor === undefined ? undefined : this.open(req.cursor, p, app, epoch);

    const set = this.forApp(await this.sets.get(p), app);
    const before = cursor?.buckets ?? {};
    const added = set.filter((b) => !(b in before));
    const removed = Object.keys(before).filter((b) => !set.includes(b));

    this.metrics.pulls.inc({ path: 'slow' });
    const positions: Record<string, Position> = {};
    for (const b of set) positions[b] = before[b] ?? START;
    await this.checkHorizon(positions, p, app, epoch, set);

    // A shared bucket starting from zero starts from its snapshot instead: the device
    // downloads the pages (stored bytes, no work here) and continues from their watermark.
    const offers: SnapshotOffer[] = [];
    for (const b of set) {
      const pos = positions[b]!;
      if (!this.snapshots || pos[0] !== '0' || pos[1] !== null || this.heads.head(b) === 0n) continue;
      const offer = await this.snapshots.offer(b, app);
      if (!offer) continue;
      offers.push(offer);
      positions[b] = [offer.position, null, null];
    }

    const w = this.heads.watermark;
    const out = new Map<string, { rows: string[]; deleted: string[] }>();
    let budget = req.limit;
    const moved = new Set<string>(); // buckets read while a batch above the watermark had written to them
    for (const [index, name] of set.entries()) {
      if (budget === 0) break;
      const pos = positions[name]!;
      const head = this.heads.head(name);
      if (caughtUp(pos, head)) continue;
      if (head === 0n) {
        positions[name] = [w.toString(), null, null]; // never had an item
        continue;
      }
      const def = parseBucket(this.model, name)!.def;
      const collections = collectionsFor(def, app);
      const everyCollection = collections.length === def.collections.length;
      const sql = pageSql(this.model, { bucketName: name, index, position: pos, watermark: w, limit: budget, collections, everyCollection, app });
      const read = async () => {
        const rows = await this.db.any<Item>(sql);
        // the page's first row (n = 0) is not an item: whether a batch above the watermark moved items of the bucket
        const [flag, ...page] = rows;
        if (flag?.coll !== '#moved') throw new Error(`page of ${name}: the #moved row is missing`);
        if (flag.j === 'true') moved.add(name);
        else moved.delete(name);
        return page;
      };
      let items = await read();
      // A live item whose row is gone or has left the bucket: the ERP committed that and the
      // indexer has not taken it yet (or the triggers were bypassed). Sent as a delete now,
      // the device would hold less than the bucket's checksum counts until the tombstone
      // came. So the rows go into the outbox (mending a bypass for every device, once), the
      // indexer catches up, and the page is read again: the item has moved past this
      // watermark, and a later pull brings its tombstone in order. If the indexer fails, the
      // page goes out as read (those items as deletes) rather than as an error.
      const gone = this.indexer ? items.filter((it) => it.gone) : [];
      if (gone.length > 0) {
        const flushed = await this.db
          .none(`INSERT INTO ${this.outbox} (coll, row_key) SELECT * FROM unnest($1::text[], $2::text[])`, [gone.map((it) => it.coll), gone.map((it) => it.id)])
          .then(() => this.indexer!.flush())
          .catch(() => undefined); // the indexer logs its failures
        if (flushed !== undefined) {
          // the heads see the tombstone's batch before this answer's checksums are chosen (one
          // cached at the old head would count the row this page no longer delivers); the
          // batch moves them itself unless another process's batch came between
          if (this.heads.watermark <= flushed) await this.heads.refresh();
          items = await read();
        }
      }
      for (const it of items) {
        let c = out.get(it.coll);
        if (!c) out.set(it.coll, (c = { rows: [], deleted: [] }));
        (it.deleted ? c.deleted : c.rows).push(it.j);
      }
      // the page is limited to the budget: fewer items than that means all were read
      const exhausted = items.length < budget;
      budget -= items.length;
      if (exhausted) {
        // never backwards: a snapshot built elsewhere may sit above this process's watermark
        positions[name] = [(BigInt(pos[0]) > w ? BigInt(pos[0]) : w).toString(), null, null];
      } else {
        const last = items.at(-1)!;
        positions[name] = [last.seq, last.coll, last.id];
      }
    }
    for (const [name, c] of out) {
      this.metrics.rowsServed.inc({ collection: name, kind: 'row' }, c.rows.length);
      this.metrics.rowsServed.inc({ collection: name, kind: 'delete' }, c.deleted.length);
    }
    // A bucket caught up by a page read while a batch above the watermark (committed, the
    // heads not refreshed yet) had written to it gets no checksum from this position: that
    // batch can have moved an item past this page while the checksum cached at the bucket's
    // head still counts it. The cursor marks the position unverified (no checksum even on
    // the no-query path) until a later pull reads the bucket again.
    for (const b of moved) if (positions[b]![1] === null) positions[b] = [positions[b]![0], null, null, 1];
    const hasMore = set.some((b) => !caughtUp(positions[b], this.heads.head(b)));
    // A checksum not cached yet (its bucket just changed) is computed in the background and
    // rides on the next pull: recomputing a 20,000-row bucket here would delay the very
    // pull a poke triggers. An empty bucket's checksum is known without asking.
    const sums: Record<string, number> = this.cachedChecksums(set, positions, app);
    for (const b of set) if (this.heads.head(b) === 0n && caughtUp(positions[b], 0n)) sums[b] = 0;
    const next = this.encode(p, app, epoch, set, positions);
    return answer(this.body(next, hasMore, sums, set, added, removed, out, app, offers), hasMore, false);
  }

  /** Decodes and checks a cursor: 400 when it is not ours or not the caller's, 410 when void. */
  private open(raw: string, p: Principal, app: App, epoch: number): CursorPayload {
    const c = this.codec.decode(raw);
    if (c === 'outdated') {
      this.metrics.cursorRejections.inc({ reason: 'expired' });
      throw new AppError('cursor-expired', 'the cursor is from an older version of the server: start again without a cursor', { body: { buckets: [], resetCursor: null } });
    }
    if (c === 'malformed' || c === 'signature') {
      this.metrics.cursorRejections.inc({ reason: 'invalid' });
      throw new AppError('cursor-invalid', c === 'signature' ? 'the cursor was not issued by this server or was altered' : 'the cursor is not a fieldsync cursor');
    }
    if (c.userId !== p.userId) {
      this.metrics.cursorRejections.inc({ reason: 'invalid' });
      throw new AppError('cursor-invalid', 'the cursor belongs to another user');
    }
    if (c.app !== app.name) {
      this.metrics.cursorRejections.inc({ reason: 'invalid' });
      throw new AppError('cursor-invalid', `the cursor belongs to the ${c.app} app`);
    }
    if (c.epoch !== epoch || c.profile !== app.hash) {
      this.metrics.cursorRejections.inc({ reason: 'expired' });
      throw new AppError('cursor-expired', 'the data or what the app receives changed on the server: start again without a cursor', {
        body: { buckets: Object.keys(c.buckets), resetCursor: null },
      });
    }
    return c;
  }

  /**
   * 410 for buckets the device cannot continue: deletes were pruned past its position, or
   * the bucket's definition changed (an install with a new config rebuilt it).
   */
  private async checkHorizon(positions: Record<string, Position>, p: Principal, app: App, epoch: number, set: string[]): Promise<void> {
    const started = Object.entries(positions).filter(([, pos]) => pos[0] !== '0');
    if (started.length === 0) return;
    const defs = [...new Set(started.map(([b]) => parseBucket(this.model, b)!.def.name))];
    const rows = await this.db.any<{ b: string; seq: string; def: boolean }>(
      `SELECT bucket AS b, pruned_seq::text AS seq, false AS def FROM ${s(this.model, 'prune_horizon')} WHERE bucket IN ($1:csv)
       UNION ALL SELECT name, reset_seq::text, true FROM ${s(this.model, 'bucket_defs')} WHERE name IN ($2:csv)`,
      [started.map(([b]) => b), defs],
    );
    const horizon = (bucket: string): bigint => {
      let h = 0n;
      const def = parseBucket(this.model, bucket)!.def.name;
      for (const r of rows) if ((r.def ? r.b === def : r.b === bucket) && BigInt(r.seq) > h) h = BigInt(r.seq);
      return h;
    };
    const expired = started.filter(([b, pos]) => horizon(b) >= BigInt(pos[0])).map(([b]) => b);
    if (expired.length === 0) return;
    this.metrics.cursorRejections.inc({ reason: 'expired' });
    const reset = { ...positions };
    for (const b of expired) delete reset[b];
    throw new AppError('cursor-expired', `${expired.join(', ')} cannot continue from this device's position (deletes pruned, or the bucket was redefined): drop those buckets and continue with resetCursor`, {
      body: { buckets: expired, resetCursor: this.encode(p, app, epoch, set.filter((b) => !expired.includes(b)), reset) },
    });
  }

  private cachedChecksums(set: string[], positions: Record<string, Position>, app: App): Record<string, number> {
    const sums: Record<string, number> = {};
    for (const b of set) {
      const sum = this.checksums.peek(b, app);
      if (sum !== undefined && caughtUp(positions[b], this.heads.head(b)) && positions[b]![3] !== 1) sums[b] = sum;
      else if (sum === undefined) void this.checksums.get(b, app).catch(() => undefined); // ready for the next pull
    }
    return sums;
  }

  private encode(p: Principal, app: App, epoch: number, set: string[], positions: Record<string, Position>): string {
    const buckets: Record<string, Position> = {};
    for (const b of set) if (positions[b]) buckets[b] = positions[b];
    return this.codec.encode({ epoch, userId: p.userId, app: app.name, profile: app.hash, buckets });
  }

  private body(
    cursor: string,
    hasMore: boolean,
    checksums: Record<string, number>,
    current: string[],
    added: string[],
    removed: string[],
    changes: Map<string, { rows: string[]; deleted: string[] }>,
    app?: App,
    snapshots: SnapshotOffer[] = [],
  ): string {
    const sections = [...changes].map(
      ([name, c]) =>
        `${JSON.stringify(name)}:{"cols":${JSON.stringify(wireColumns(app!, name))},"rows":[${c.rows.join(',')}],"deleted":[${c.deleted.join(',')}]}`,
    );
    return (
      `{"cursor":${JSON.stringify(cursor)},"hasMore":${hasMore},"watermark":"${this.heads.watermark}","checksums":${JSON.stringify(checksums)},` +
      `"buckets":${JSON.stringify({ current, added, removed })},"snapshots":${JSON.stringify(snapshots)},"changes":{${sections.join(',')}}}`
    );
  }
}
