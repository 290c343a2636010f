import { z } from 'zod';

/**
 * The pull contract (README "How sync works"): POST /v1/sync/pull {cursor?, app?, limit?}
 * or the same as a GET query string, and its answer. The answer is assembled as text by
 * src/sync/pull.ts (rows are pre-serialized JSON); this schema is what that text holds,
 * checked against every answer in the tests.
 */

export interface PullLimits {
  defaultLimit: number;
  maxLimit: number;
}

/** The pull request, as a POST body or a GET query string; a null cursor (or app) is none. */
export function pullInput(limits: PullLimits) {
  return z
    .strictObject({
      cursor: z
        .string()
        .min(1)
        .max(16_384)
        .nullish()
        .transform((c) => c ?? undefined)
        .meta({ description: 'the `cursor` of the last answer, as is; absent or null on the first pull' }),
      app: z
        .string()
        .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'an app name of the sync config')
        .nullish()
        .transform((a) => a ?? undefined)
        .meta({ description: "an app profile of the sync config (which collections and columns); default: the role's", example: 'salesman' }),
      limit: z.coerce.number().int().min(1).max(limits.maxLimit).default(limits.defaultLimit).meta({ description: 'most rows and deletes in this page, across all buckets' }),
    })
    .meta({ id: 'PullRequest' });
}

/** A row id as pull sends it: a number for a one-integer-column key, else text (UUID, text, a composite key's JSON). */
export const wireId = z.union([z.number().int(), z.string()]).meta({ id: 'WireId' });

/** A batch number as a decimal string (compare as integers). */
export const seqText = z.string().regex(/^(0|[1-9][0-9]{0,18})$/).meta({ description: 'a batch number, decimal (compare as integers)', example: '918273' });

/** Checksum of a bucket: sum of FNV-1a-32("<collection>:<id>:<v>") over its rows, mod 2^32. */
export const bucketChecksum = z.number().int().min(0).max(2 ** 32 - 1);

export const snapshotOffer = z
  .object({
    bucket: z.string(),
    id: z.string().meta({ description: 'the snapshot id' }),
    position: seqText.meta({ description: 'the snapshot holds the bucket below this batch' }),
    rows: z.number().int().min(0),
    checksum: bucketChecksum,
    pages: z.array(z.string()).meta({
      description:
        'signed page URLs, relative to the server (`/v1/sync/snapshots/{bucket}/{id}/{page}?exp=…&sig=…`): GET each without the bearer token; they expire after SNAPSHOT_URL_TTL_SECONDS',
    }),
  })
  .meta({ id: 'SnapshotOffer' });
export type SnapshotOffer = z.output<typeof snapshotOffer>;

/** [b, id, v, ...the app profile's columns]: b indexes buckets.current, v is the row's version (batch). */
const row = z.tuple([z.number().int().min(0), wireId, z.number().int()], z.unknown());

export const collectionChanges = z
  .object({
    cols: z.array(z.string()).meta({ description: 'column names, once: b, id, v, then the app profile\'s columns (data names from the sync config)' }),
    rows: z.array(row).meta({ description: 'upsert each row under (collection, current[b], id)' }),
    deleted: z.array(z.tuple([z.number().int().min(0), wireId])).meta({ description: '[b, id]: delete the local row (current[b], id)' }),
  })
  .meta({ id: 'CollectionChanges' });

export const pullAnswer = z
  .object({
    cursor: z.string().meta({ description: 'opaque and signed: send it back as is' }),
    hasMore: z.boolean().meta({ description: 'pull again at once while true' }),
    watermark: seqText.meta({ description: 'every batch below it has committed; this answer holds every change below it for the buckets it caught up' }),
    checksums: z.record(z.string(), bucketChecksum).meta({ description: 'per caught-up bucket whose content has not changed since the position' }),
    buckets: z.object({
      current: z.array(z.string()).meta({ description: "the caller's bucket set; `b` indexes it" }),
      added: z.array(z.string()).meta({ description: 'new to this cursor: they start from zero' }),
      removed: z.array(z.string()).meta({ description: 'lost: delete every local row of them' }),
    }),
    snapshots: z.array(snapshotOffer).meta({ description: 'buckets starting from zero served from pre-built pages: apply them before this answer' }),
    changes: z.record(z.string(), collectionChanges).meta({ description: 'by collection' }),
  })
  .meta({ id: 'PullAnswer' });
export type PullAnswerBody = z.output<typeof pullAnswer>;

/** GET /v1/sync/snapshots/{bucket}/{id}/{page}: signed, no bearer token. */
export const snapshotPageParams = z.strictObject({
  bucket: z.string().min(1).max(240),
  id: z.string().regex(/^[\w-]{1,64}$/, 'a snapshot id'),
  page: z.coerce.number().int().min(0).max(1_000_000),
});
export const snapshotPageQuery = z.strictObject({
  exp: z.coerce.number().int().positive().max(2 ** 40).meta({ description: 'expiry (epoch seconds), part of the signed URL' }),
  sig: z.string().min(1).max(64).meta({ description: 'signature, part of the signed URL' }),
});

/** A snapshot page: columnar (row i is columns[c][i] for each column c, in the order of cols). */
export const snapshotPage = z
  .object({
    snapshot: z.string(),
    page: z.number().int().min(0),
    buckets: z.object({ current: z.tuple([z.string()]) }),
    changes: z.record(
      z.string(),
      z.object({
        cols: z.array(z.string()),
        columns: z.array(z.array(z.unknown())).meta({ description: 'one array per column of cols, each as long as the page has rows' }),
        deleted: z.array(z.never()).meta({ description: 'always empty' }),
      }),
    ),
  })
  .meta({ id: 'SnapshotPage' });
