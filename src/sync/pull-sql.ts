import { pgp } from '../db/pg.js';
import { inBucketSql, parseBucket, rowJson, s, sourceJoin, wireIdFromText, type App, type BucketDef, type Collection, type Model } from '../model/model.js';
import type { Position } from '../protocol/cursor.js';

/**
 * The SQL of pull, snapshots and checksums. A bucket's items (fieldsync's items table:
 * one row per collection row the bucket holds or held) form one stream ordered by
 * (seq, coll, row_key); live items are joined to the ERP's table by key for the row's
 * current values, deleted ones go out as [b, id].
 */

/** The collections of a bucket definition an app receives, in config order (memoized). */
const appCollections = new WeakMap<App, Map<string, Collection[]>>();
export function collectionsFor(def: BucketDef, app: App): Collection[] {
  let byDef = appCollections.get(app);
  if (!byDef) appCollections.set(app, (byDef = new Map()));
  let out = byDef.get(def.name);
  if (!out) byDef.set(def.name, (out = def.collections.filter((c) => app.collections.has(c.name))));
  return out;
}

/** Items strictly after `pos` in stream order. */
function after(pos: Position): string {
  const [seq, coll, key] = pos;
  if (coll === null) return pgp.as.format('i.seq >= $1::bigint', [seq]);
  return pgp.as.format('(i.seq, i.coll, i.row_key) > ($1::bigint, $2, $3)', [seq, coll, key]);
}

export interface PageQuery {
  bucketName: string;
  /** index of the bucket in the answer's buckets.current (the `b` of every row) */
  index: number;
  position: Position;
  watermark: bigint;
  limit: number;
  collections: Collection[];
  /** the app receives every collection of the bucket: no filter on the collection */
  everyCollection: boolean;
  app: App;
}

/**
 * One statement for a page of one bucket: the next `limit` items below the watermark
 * (one range scan of items_page, in its order: a filter on the collections only when
 * the app skips some, else the planner may sort the whole bucket), then each
 * collection's items joined to its table.
 * Rows are serialized to their wire arrays by PostgreSQL, so Node only concatenates
 * text. The first row (n = 0, coll '#moved') says whether a batch above the watermark has
 * written items of the bucket. A live item whose row is gone or no longer in the bucket (a commit not indexed yet;
 * or the ERP bypassed the triggers) is marked `gone` and goes out as a delete, never with
 * the row's new values. Result in stream order: n.
 */
export function pageSql(m: Model, q: PageQuery): string {
  const page = pgp.as.format(
    `SELECT i.coll, i.row_key, i.seq, i.deleted, row_number() OVER (ORDER BY i.seq, i.coll, i.row_key) AS n
       FROM ${s(m, 'items')} i
      WHERE i.bucket = $<bucket> AND ${after(q.position)} AND i.seq < $<w>::bigint ${q.everyCollection ? '' : 'AND i.coll IN ($<colls:csv>)'}
      ORDER BY i.seq, i.coll, i.row_key LIMIT $<limit>`,
    { bucket: q.bucketName, w: q.watermark.toString(), colls: q.collections.map((c) => c.name), limit: q.limit },
  );
  const bucket = parseBucket(m, q.bucketName)!;
  const selects = q.collections.map((c) => {
    // not (or no longer) in this bucket as the row is now: gone (deleted), moved to another
    // bucket or soft-deleted by a commit the indexer has not taken yet (its values must not
    // reach this bucket's devices), or the triggers were bypassed
    const outside = `(r.${pgp.as.name(c.key[0]!.column)} IS NULL OR NOT ${inBucketSql(c, bucket.def.name, bucket.key)})`;
    const del = `json_build_array(${q.index}, ${wireIdFromText(c, 'p.row_key')})::text`;
    return pgp.as.format(
      `SELECT p.n, p.seq::text AS seq, p.coll, p.row_key AS id, (p.deleted OR o.outside) AS deleted, (NOT p.deleted AND o.outside) AS gone,
              CASE WHEN p.deleted OR o.outside THEN ${del} ELSE ${rowJson(c, q.app.collections.get(c.name)!, q.index)} END AS j
         FROM page p ${sourceJoin(m, c)} CROSS JOIN LATERAL (SELECT ${outside} AS outside) o
        WHERE p.coll = $1`,
      [c.name],
    );
  });
  // and, in the same snapshot, whether a batch above the watermark (not in the heads yet)
  // has written items of this bucket: then a checksum cached at its head may count an item
  // that moved past this page (see Position in src/protocol/cursor.ts). Row n = 0, coll '#moved'.
  const moved = pgp.as.format(
    `SELECT 0::bigint AS n, NULL::text AS seq, '#moved' AS coll, NULL::text AS id, false AS deleted, false AS gone,
            (EXISTS (SELECT 1 FROM ${s(m, 'items')} i WHERE i.bucket = $1 AND i.seq >= $2::bigint))::text AS j`,
    [q.bucketName, q.watermark.toString()],
  );
  return `WITH page AS MATERIALIZED (${page})\n${[...selects, moved].join('\nUNION ALL\n')}\nORDER BY n`;
}

/**
 * A snapshot page's rows: one collection's live rows in the bucket below the watermark,
 * by row key after `after` (keyset: a build streams the bucket in bounded memory). The
 * bucket index is 0: a page names only its own bucket.
 */
export function snapshotSql(m: Model, c: Collection, app: App, bucket: string, watermark: string, after: string | null, limit: number): string {
  return pgp.as.format(
    `SELECT p.row_key AS id, p.seq::text AS v, ${rowJson(c, app.collections.get(c.name)!, 0)} AS j
       FROM (SELECT i.row_key, i.seq FROM ${s(m, 'items')} i
              WHERE i.coll = $<coll> AND i.bucket = $<bucket> AND NOT i.deleted AND i.seq < $<w>::bigint ${after === null ? '' : pgp.as.format('AND i.row_key > $1', [after])}
              ORDER BY i.row_key LIMIT $<limit>) p
       ${sourceJoin(m, c)}
      ORDER BY p.row_key`,
    { coll: c.name, bucket, w: watermark, limit },
  );
}

/**
 * Every (collection, id, version) the bucket holds for an app, and its deleted items:
 * the checksum input (deleted items only tell how far the content reaches).
 */
export function contentSql(m: Model, bucket: string, collections: Collection[]): string {
  return pgp.as.format(`SELECT i.coll AS c, i.row_key AS id, i.seq::text AS v, i.deleted FROM ${s(m, 'items')} i WHERE i.bucket = $1 AND i.coll IN ($2:csv)`, [
    bucket,
    collections.map((c) => c.name),
  ]);
}

/** How many items of a bucket were written at or after a position (a snapshot's delta since). */
export function deltaCountSql(m: Model, bucket: string, position: string): string {
  return pgp.as.format(`SELECT count(*)::int AS n FROM ${s(m, 'items')} i WHERE i.bucket = $1 AND i.seq >= $2::bigint`, [bucket, position]);
}
