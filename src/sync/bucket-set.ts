import { principalKey, type Principal } from '../auth/principal.js';
import { pgp, type Db } from '../db/pg.js';
import { AppError } from '../errors.js';
import { bucketName, type Model, type Role } from '../model/model.js';
import type { Heads } from './heads.js';

/**
 * A user's bucket set, computed on the server from who they are (token claims) and the
 * database, never from what the client asks for (DESIGN §3, §4.5): the role's buckets
 * from the sync config, each keyed bucket through its parameter query, all in one
 * statement. A parameter query that finds nothing gives no bucket of that definition.
 */
export function bucketSetSql(role: Role, p: Principal): string | undefined {
  const params = { userId: p.userId, ...p.claims };
  const parts = role.buckets.flatMap((b, i) =>
    b.query === undefined ? [] : [`SELECT ${i} AS i, q.k::text AS k FROM (${pgp.as.format(b.query, params)}) AS q(k) WHERE q.k IS NOT NULL`],
  );
  return parts.length ? parts.join('\nUNION ALL ') : undefined;
}

/** Keys in a stable order: numerically when every key is a number, else as text. */
function sortKeys(keys: string[]): string[] {
  const numeric = keys.every((k) => /^-?\d{1,15}$/.test(k));
  return [...new Set(keys)].sort(numeric ? (a, b) => Number(a) - Number(b) : undefined);
}

export async function computeBucketSet(db: Db, m: Model, p: Principal): Promise<string[]> {
  const role = m.roles.get(p.role);
  if (!role) throw new AppError('forbidden', `role ${p.role} is not configured`);
  const sql = bucketSetSql(role, p);
  const rows = sql ? await db.any<{ i: number; k: string }>(sql) : [];
  const out: string[] = [];
  role.buckets.forEach((b, i) => {
    if (b.query === undefined) out.push(bucketName(b.bucket.name));
    else for (const k of sortKeys(rows.filter((r) => r.i === i).map((r) => r.k))) out.push(bucketName(b.bucket.name, k));
  });
  return out;
}

/** The collections whose changes may change a role's bucket set (what its parameter queries read). */
export function dependsOn(m: Model, role: string): string[] {
  return m.roles.get(role)?.dependsOn ?? [];
}

interface Entry {
  set: string[];
  deps: Map<string, bigint>;
  at: number;
}

/**
 * Bucket sets cached per user, so a no-change pull needs no query. An entry is reused
 * while none of the collections its parameter queries read has changed and it is younger
 * than `maxAgeMs`, which bounds how long a change the heads cannot see (a table that is
 * not synced, such as the demo's salesmen) takes to apply.
 */
export class BucketSets {
  private readonly cache = new Map<string, Entry>();
  /** bumped when a set is (re)computed */
  version = 0;

  constructor(
    private readonly db: Db,
    private readonly model: Model,
    private readonly heads: Heads,
    private readonly maxAgeMs = 60_000,
    private readonly maxEntries = 50_000,
  ) {}

  /** The cached set, if still valid; undefined otherwise (no query). */
  peek(p: Principal): string[] | undefined {
    const e = this.cache.get(principalKey(p));
    if (!e || Date.now() - e.at > this.maxAgeMs) return undefined;
    for (const [c, head] of e.deps) if (this.heads.collectionHead(c) !== head) return undefined;
    return e.set;
  }

  async get(p: Principal): Promise<string[]> {
    const cached = this.peek(p);
    if (cached) return cached;
    // read the dependencies' heads before the query: a change racing it invalidates the entry
    const deps = new Map(dependsOn(this.model, p.role).map((c) => [c, this.heads.collectionHead(c)]));
    const set = await computeBucketSet(this.db, this.model, p);
    const key = principalKey(p);
    this.cache.delete(key);
    if (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, { set, deps, at: Date.now() });
    this.version++;
    return set;
  }
}
