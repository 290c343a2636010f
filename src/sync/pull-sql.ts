import { pgp } from '../db/pg.js';
import type { Position } from '../protocol/cursor.js';
import type { ParsedBucket } from './buckets.js';
import { collections, collectionsOfKind, membershipFor, type Collection, type CollectionName } from './collections.js';
import type { Profile } from './profiles.js';
import { profileColumns } from './profiles.js';

/**
 * A bucket's items form one ordered stream: key (tx, part, id), where part 2i is the
 * tombstones of the bucket kind's i-th collection and 2i+1 its rows. Parts are fixed
 * per bucket kind (not per profile), so a position means the same under every profile.
 */
export interface Part {
  ordinal: number;
  collection: Collection;
  tombstones: boolean;
}

const partsCache = new Map<string, Part[]>();

/** The parts of a bucket kind a profile syncs (memoized: it is on every pull's path). */
export function partsOf(kind: ParsedBucket['kind'], profile: Profile): Part[] {
  const key = `${kind}|${profile.name}`;
  let parts = partsCache.get(key);
  if (!parts) partsCache.set(key, (parts = computeParts(kind, profile)));
  return parts;
}

function computeParts(kind: ParsedBucket['kind'], profile: Profile): Part[] {
  return collectionsOfKind(kind).flatMap((collection, i) =>
    profileColumns(profile, collection.name as CollectionName) === undefined
      ? []
      : [
          { ordinal: 2 * i, collection, tombstones: true },
          { ordinal: 2 * i + 1, collection, tombstones: false },
        ],
  );
}

/** SQL condition: row alias r is in the bucket right now. */
export function inBucket(col: Collection, b: ParsedBucket): string {
  const m = membershipFor(col, b.kind);
  if (!m.key || b.key === undefined || b.key === 'all') return 'TRUE';
  return pgp.as.format('r.$1:name = $2', [m.key, b.key]);
}

/** Items strictly after `pos` in key order, for one part whose (tx, id) columns are given. */
function after(pos: Position, part: number, tx: string, id: string, idType: string): string {
  const [ptx, ppart, pid] = pos;
  if (part < ppart) return pgp.as.format(`${tx} > $1::xid8`, [ptx]);
  if (part > ppart || pid === null) return pgp.as.format(`${tx} >= $1::xid8`, [ptx]);
  return pgp.as.format(`(${tx}, ${id}) > ($1::xid8, $2::${idType})`, [ptx, pid]);
}

export interface PageQuery {
  bucketName: string;
  bucket: ParsedBucket;
  /** index of the bucket in the answer's buckets.current (the `b` of every row) */
  index: number;
  position: Position;
  watermark: bigint;
  limit: number;
}

/**
 * One statement for a page of one bucket: each part is its own ORDER BY ... LIMIT over
 * its (bucket key, _tx, id) index, all UNION ALL'ed. Rows are serialized to their wire
 * arrays by PostgreSQL (json_build_array), so Node only concatenates text.
 *
 * A tombstone is skipped while its row is in the bucket again: transaction ids are
 * not commit order, so a re-insert can carry a smaller id than the delete before it,
 * and sending the delete after the row would drop a row the server still has.
 */
export function pageSql(q: PageQuery, parts: Part[], profile: Profile): string {
  const selects = parts.map((part) => {
    const col = part.collection;
    const cast = col.idType;
    const filter = inBucket(col, q.bucket);
    const limit = pgp.as.format('$1', [q.limit]);
    const below = pgp.as.format('$1::xid8', [q.watermark.toString()]);
    if (part.tombstones) {
      return pgp.as.format(
        `SELECT $<ord> AS part, t._tx::text AS tx, t.id::text AS id, json_build_array($<bi>, t.row_id::${cast})::text AS j
           FROM sync_tombstones t
          WHERE t.bucket = $<bucket> AND t.collection = $<coll> AND ${after(q.position, part.ordinal, 't._tx', 't.id', 'bigint')}
            AND t._tx < ${below}
            AND NOT EXISTS (SELECT 1 FROM $<table:name> r WHERE r.id = t.row_id::${cast} AND ${filter})
          ORDER BY t._tx, t.id LIMIT ${limit}`,
        { ord: part.ordinal, bi: q.index, bucket: q.bucketName, coll: col.name, table: col.table },
      );
    }
    return pgp.as.format(
      `SELECT $<ord> AS part, r._tx::text AS tx, r.id::text AS id, ${rowJson(col, profile, q.index)} AS j
         FROM $<table:name> r
        WHERE ${filter} AND ${after(q.position, part.ordinal, 'r._tx', 'r.id', cast)} AND r._tx < ${below}
        ORDER BY r._tx, r.id LIMIT ${limit}`,
      { ord: part.ordinal, bi: q.index, table: col.table },
    );
  });
  return selects.map((s) => `(${s})`).join('\nUNION ALL\n');
}

/** A row's wire array as JSON text, serialized by PostgreSQL: [b, id, v, ...profile columns]. */
function rowJson(col: Collection, profile: Profile, bucketIndex: number): string {
  const wanted = new Set(profileColumns(profile, col.name as CollectionName));
  const values = col.columns.filter((c) => wanted.has(c.name)).map((c) => c.sql);
  return pgp.as.format(`json_build_array($1, r.id, r._tx::text::bigint${values.map((v) => `, ${v}`).join('')})::text`, [bucketIndex]);
}

/**
 * A snapshot page's rows: one part's rows in the bucket below the watermark, by id after
 * `after` (keyset: a build streams the bucket in bounded memory). The bucket index is 0:
 * a page names only its own bucket.
 */
export function snapshotSql(part: Part, bucket: ParsedBucket, watermark: string, after: string | null, limit: number, profile: Profile): string {
  const col = part.collection;
  return pgp.as.format(
    `SELECT r.id::text AS id, r._tx::text AS v, ${rowJson(col, profile, 0)} AS j
       FROM $<table:name> r
      WHERE ${inBucket(col, bucket)} AND r._tx < $<w>::xid8 ${after === null ? '' : pgp.as.format(`AND r.id > $1::${col.idType}`, [after])}
      ORDER BY r.id LIMIT $<limit>`,
    { table: col.table, w: watermark, limit },
  );
}

/** Wire column names of a collection under a profile: b, id, v first. */
export function wireColumns(profile: Profile, name: CollectionName): string[] {
  return ['b', 'id', 'v', ...(profileColumns(profile, name) ?? [])];
}

/** Every (collection, id, version) in the bucket now, plus its newest tombstone: checksum input. */
export function contentSql(bucketName: string, b: ParsedBucket, profile: Profile): string {
  const parts = partsOf(b.kind, profile).filter((p) => !p.tombstones);
  const rows = parts.map((p) =>
    pgp.as.format(`SELECT $1 AS c, r.id::text AS id, r._tx::text AS v FROM $2:name r WHERE ${inBucket(p.collection, b)}`, [
      p.collection.name,
      p.collection.table,
    ]),
  );
  rows.push(pgp.as.format(`SELECT '#t', NULL, max(t._tx::text::bigint)::text FROM sync_tombstones t WHERE t.bucket = $1`, [bucketName]));
  return rows.join('\nUNION ALL\n');
}

export { collections };
