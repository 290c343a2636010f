import { createHash } from 'node:crypto';
import type { Principal } from '../auth/principal.js';
import type { SnapshotOffer, SnapshotService } from '../cache/snapshots.js';
import type { Db } from '../db/pg.js';
import { AppError } from '../errors.js';
import type { Metrics } from '../observability/metrics.js';
import { CursorCodec, type CursorPayload, type Position } from '../protocol/cursor.js';
import type { BucketSets } from './bucket-set.js';
import { parseBucket } from './buckets.js';
import type { ChecksumCache } from './checksum-cache.js';
import type { CollectionName } from './collections.js';
import type { Heads } from './heads.js';
import { defaultApp, profileHash, profiles, type AppName, type Profile } from './profiles.js';
import { pageSql, partsOf, wireColumns } from './pull-sql.js';

export interface PullRequest {
  principal: Principal;
  app?: AppName | undefined;
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

const START: Position = ['0', -1, null];

interface Item {
  part: number;
  tx: string;
  id: string;
  j: string;
}

function answer(body: string, hasMore: boolean, fast: boolean): PullAnswer {
  return { body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`, hasMore, fast };
}

function caughtUp(pos: Position | undefined, head: bigint): boolean {
  return pos !== undefined && pos[1] === -1 && head < BigInt(pos[0]);
}

/**
 * The delta pull (DESIGN §5). For each bucket of the caller's set, items after the
 * cursor's position and below the watermark, ordered by (tx, part, id), up to `limit`
 * across all buckets. The watermark is the heads' (a value that was true when read: every
 * transaction below it has finished), so a transaction still open is delivered by a later
 * pull, never skipped. A cursor whose every bucket is caught up past its head is answered
 * from memory: no query.
 */
export class PullService {
  private readonly filtered = new WeakMap<string[], Map<string, string[]>>();
  private readonly replies = new Map<string, { version: string; answer: PullAnswer }>();
  private readonly profileHashes = new Map<string, string>(
    Object.values(profiles).map((p: Profile) => [p.name, profileHash(p)]),
  );

  constructor(
    private readonly db: Db,
    private readonly heads: Heads,
    private readonly sets: BucketSets,
    private readonly checksums: ChecksumCache,
    private readonly codec: CursorCodec,
    private readonly metrics: Metrics,
    private readonly snapshots?: SnapshotService,
  ) {}

  /**
   * The no-change answer, if this request can have it without any I/O: a valid cursor of
   * this user, app, profile and epoch, a cached bucket set, and every bucket caught up
   * past its head. undefined means "take the full path" (which also reports errors).
   */
  tryFast(p: Principal, app: AppName | undefined, raw: string): PullAnswer | undefined {
    // The same device polling with the same cursor while nothing changed anywhere gets
    // the very answer it got last time (no JSON, no hashing). Any move of the heads, a new
    // checksum or a recomputed bucket set changes the version and voids these entries.
    const version = `${this.heads.version}.${this.checksums.version}.${this.sets.version}`;
    const key = `${p.userId}|${p.role}|${p.salesmanId ?? ''}|${p.clientId ?? ''}|${app ?? ''}|${raw}`;
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

  private computeFast(p: Principal, app: AppName | undefined, raw: string): PullAnswer | undefined {
    const name = app ?? defaultApp[p.role];
    const profile: Profile = profiles[name];
    if (!profile.roles.includes(p.role)) return undefined;
    const c = this.codec.decode(raw);
    if (typeof c === 'string' || c.userId !== p.userId || c.app !== name || c.epoch !== this.heads.epoch) return undefined;
    const hash = this.profileHashes.get(name)!;
    if (c.profile !== hash) return undefined;
    const cached = this.sets.peek(p);
    if (!cached) return undefined;
    const set = this.forProfile(cached, profile);
    const before = c.buckets;
    for (const b of set) if (!caughtUp(before[b], this.heads.head(b))) return undefined;
    const removed = Object.keys(before).filter((b) => !set.includes(b));
    this.metrics.pulls.inc({ path: 'fast' });
    const out = removed.length === 0 ? raw : this.encode(p, name, hash, c.epoch, set, before);
    return answer(this.body(out, false, this.cachedChecksums(set, before, profile), set, [], removed, new Map()), false, true);
  }

  /** The buckets of a set that hold something the profile syncs (memoized per set). */
  private forProfile(set: string[], profile: Profile): string[] {
    let byProfile = this.filtered.get(set);
    if (!byProfile) this.filtered.set(set, (byProfile = new Map()));
    let out = byProfile.get(profile.name);
    if (!out) byProfile.set(profile.name, (out = set.filter((b) => partsOf(parseBucket(b)!.kind, profile).length > 0)));
    return out;
  }

  async pull(req: PullRequest): Promise<PullAnswer> {
    if (req.cursor !== undefined) {
      const fast = this.tryFast(req.principal, req.app, req.cursor);
      if (fast) return fast;
    }
    const p = req.principal;
    const app = req.app ?? defaultApp[p.role];
    const profile: Profile = profiles[app];
    if (!profile.roles.includes(p.role)) throw new AppError('forbidden', `the ${app} app is not for role ${p.role}`);
    const hash = this.profileHashes.get(app)!;
    const epoch = this.heads.epoch;
    const cursor = req.cursor === undefined ? undefined : this.open(req.cursor, p, app, hash, epoch);

    const set = this.forProfile(await this.sets.get(p), profile);
    const before = cursor?.buckets ?? {};
    const added = set.filter((b) => !(b in before));
    const removed = Object.keys(before).filter((b) => !set.includes(b));

    this.metrics.pulls.inc({ path: 'slow' });
    const positions: Record<string, Position> = {};
    for (const b of set) positions[b] = before[b] ?? START;
    await this.checkHorizon(positions, p, app, hash, epoch, set);

    // A shared bucket starting from zero starts from its snapshot instead: the device
    // downloads the pages (stored bytes, no work here) and continues from their watermark.
    const offers: SnapshotOffer[] = [];
    for (const b of set) {
      const pos = positions[b]!;
      if (!this.snapshots || pos[0] !== '0' || pos[1] !== -1 || this.heads.head(b) === 0n) continue;
      const offer = await this.snapshots.offer(b, profile);
      if (!offer) continue;
      offers.push(offer);
      positions[b] = [offer.position, -1, null];
    }

    const w = this.heads.watermark;
    const out = new Map<CollectionName, { rows: string[]; deleted: string[] }>();
    let budget = req.limit;
    for (const [index, name] of set.entries()) {
      if (budget === 0) break;
      const pos = positions[name]!;
      const head = this.heads.head(name);
      if (caughtUp(pos, head)) continue;
      if (head === 0n) {
        positions[name] = [w.toString(), -1, null]; // never had an item
        continue;
      }
      const bucket = parseBucket(name)!;
      const parts = partsOf(bucket.kind, profile);
      const items = await this.db.any<Item>(pageSql({ bucketName: name, bucket, index, position: pos, watermark: w, limit: budget }, parts, profile));
      // within a part SQL already ordered by (tx, id); a stable sort by (tx, part) merges the parts
      items.sort((a, b) => {
        const d = BigInt(a.tx) - BigInt(b.tx);
        return d === 0n ? a.part - b.part : d < 0n ? -1 : 1;
      });
      const taken = items.slice(0, budget);
      for (const it of taken) {
        const part = parts.find((x) => x.ordinal === it.part)!;
        const name = part.collection.name as CollectionName;
        let c = out.get(name);
        if (!c) out.set(name, (c = { rows: [], deleted: [] }));
        (part.tombstones ? c.deleted : c.rows).push(it.j);
      }
      // every part is limited to the budget: fewer items than that means all were read
      const exhausted = items.length < budget;
      budget -= taken.length;
      if (exhausted) {
        // never backwards: a snapshot built elsewhere may sit above this process's watermark
        positions[name] = [(BigInt(pos[0]) > w ? BigInt(pos[0]) : w).toString(), -1, null];
      } else {
        const last = taken.at(-1);
        if (last) positions[name] = [last.tx, last.part, last.id];
      }
    }
    for (const [name, c] of out) {
      this.metrics.rowsServed.inc({ collection: name, kind: 'row' }, c.rows.length);
      this.metrics.rowsServed.inc({ collection: name, kind: 'delete' }, c.deleted.length);
    }
    const hasMore = set.some((b) => !caughtUp(positions[b], this.heads.head(b)));
    // A checksum not cached yet (its bucket just changed) is computed in the background and
    // rides on the next pull: recomputing a 20,000-row bucket here would delay the very
    // pull a poke triggers. An empty bucket's checksum is known without asking.
    const sums: Record<string, number> = this.cachedChecksums(set, positions, profile);
    for (const b of set) if (this.heads.head(b) === 0n && caughtUp(positions[b], 0n)) sums[b] = 0;
    const next = this.encode(p, app, hash, epoch, set, positions);
    return answer(this.body(next, hasMore, sums, set, added, removed, out, profile, offers), hasMore, false);
  }

  /** Decodes and checks a cursor: 400 when it is not ours or not the caller's, 410 when void. */
  private open(raw: string, p: Principal, app: string, hash: string, epoch: number): CursorPayload {
    const c = this.codec.decode(raw);
    if (c === 'malformed' || c === 'signature') {
      this.metrics.cursorRejections.inc({ reason: 'invalid' });
      throw new AppError('cursor-invalid', c === 'signature' ? 'the cursor was not issued by this server or was altered' : 'the cursor is not a fieldsync cursor');
    }
    if (c.userId !== p.userId) {
      this.metrics.cursorRejections.inc({ reason: 'invalid' });
      throw new AppError('cursor-invalid', 'the cursor belongs to another user');
    }
    if (c.app !== app) {
      this.metrics.cursorRejections.inc({ reason: 'invalid' });
      throw new AppError('cursor-invalid', `the cursor belongs to the ${c.app} app`);
    }
    if (c.epoch !== epoch || c.profile !== hash) {
      this.metrics.cursorRejections.inc({ reason: 'expired' });
      throw new AppError('cursor-expired', 'the data or the app profile changed on the server: start again without a cursor', {
        body: { buckets: Object.keys(c.buckets), resetCursor: null },
      });
    }
    return c;
  }

  /** 410 for buckets whose tombstones were pruned past the device's position. */
  private async checkHorizon(positions: Record<string, Position>, p: Principal, app: string, hash: string, epoch: number, set: string[]): Promise<void> {
    const started = Object.entries(positions).filter(([, pos]) => pos[0] !== '0');
    if (started.length === 0) return;
    const pruned = await this.db.any<{ bucket: string; tx: string }>(
      'SELECT bucket, pruned_tx::text AS tx FROM sync_prune_horizon WHERE bucket IN ($1:csv)',
      [started.map(([b]) => b)],
    );
    const expired = pruned.filter((r) => BigInt(r.tx) >= BigInt(positions[r.bucket]![0])).map((r) => r.bucket);
    if (expired.length === 0) return;
    this.metrics.cursorRejections.inc({ reason: 'expired' });
    const reset = { ...positions };
    for (const b of expired) delete reset[b];
    throw new AppError('cursor-expired', `deletes in ${expired.join(', ')} were pruned before this device saw them: drop those buckets and continue with resetCursor`, {
      body: { buckets: expired, resetCursor: this.encode(p, app, hash, epoch, set.filter((b) => !expired.includes(b)), reset) },
    });
  }

  private cachedChecksums(set: string[], positions: Record<string, Position>, profile: Profile): Record<string, number> {
    const sums: Record<string, number> = {};
    for (const b of set) {
      const sum = this.checksums.peek(b, profile);
      if (sum !== undefined && caughtUp(positions[b], this.heads.head(b))) sums[b] = sum;
      else if (sum === undefined) void this.checksums.get(b, profile).catch(() => undefined); // ready for the next pull
    }
    return sums;
  }

  private encode(p: Principal, app: string, hash: string, epoch: number, set: string[], positions: Record<string, Position>): string {
    const buckets: Record<string, Position> = {};
    for (const b of set) if (positions[b]) buckets[b] = positions[b];
    return this.codec.encode({ epoch, userId: p.userId, app, profile: hash, buckets });
  }

  private body(
    cursor: string,
    hasMore: boolean,
    checksums: Record<string, number>,
    current: string[],
    added: string[],
    removed: string[],
    changes: Map<CollectionName, { rows: string[]; deleted: string[] }>,
    profile?: Profile,
    snapshots: SnapshotOffer[] = [],
  ): string {
    const sections = [...changes].map(
      ([name, c]) =>
        `${JSON.stringify(name)}:{"cols":${JSON.stringify(wireColumns(profile!, name))},"rows":[${c.rows.join(',')}],"deleted":[${c.deleted.join(',')}]}`,
    );
    return (
      `{"cursor":${JSON.stringify(cursor)},"hasMore":${hasMore},"watermark":"${this.heads.watermark}","checksums":${JSON.stringify(checksums)},` +
      `"buckets":${JSON.stringify({ current, added, removed })},"snapshots":${JSON.stringify(snapshots)},"changes":{${sections.join(',')}}}`
    );
  }
}
