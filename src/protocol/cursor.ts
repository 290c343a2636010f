import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import type { Keyring } from '../lib/keyring.js';
import { isSeqText } from './values.js';

/**
 * The pull cursor: opaque to the device, base64url(JSON) + "." + base64url(HMAC).
 *
 * Payload, format 2:
 *   { "f": 2, "e": <sync epoch>, "u": <user id>, "a": <app>, "p": <app hash>,
 *     "b": { "<bucket>": [<batch>, <collection>, <row key>] } }
 *
 * A bucket's items (rows and deletes of all its collections) are one stream ordered by
 * (indexing batch, collection, row key); a position is the key of the last item
 * delivered from it. [W, null, null] means "everything below batch W" (the bucket is
 * caught up to watermark W). A bucket absent from `b` starts from zero. Batch numbers
 * continue the transaction ids that positions held before the outbox (migration 002), so
 * cursors issued before that upgrade keep their meaning.
 *
 * Worked example: {"catalog": ["918", "products", "1200"], "prices:2": ["925", null, null]}:
 * catalog was cut mid-page after product 1200 of batch 918; prices:2 holds everything
 * below 925.
 *
 * The cursor is bound to its user, app and app hash; the server checks all three. A
 * cursor of an older format is answered 410 (start over), never misread.
 */
export const CURSOR_FORMAT = 2;

/**
 * [batch, collection, row key]; caught up: [W, null, null], or [W, null, null, 1] when the
 * page that caught up was read while a batch the heads had not seen yet was moving items of
 * the bucket: the device holds everything below W, but a checksum cached at the bucket's
 * current head may count an item that moved (the device gets it with the next pull), so
 * none is sent from this position.
 */
export type Position = readonly [seq: string, collection: string | null, key: string | null] | readonly [seq: string, collection: null, key: null, unverified: 1];

export interface CursorPayload {
  /** sync epoch: bumped by a migration that makes old cursors meaningless */
  epoch: number;
  userId: string;
  app: string;
  profile: string;
  buckets: Record<string, Position>;
}

const seq = z.string().refine(isSeqText, 'a batch number');
const position = z.union([
  z.tuple([seq, z.string().max(64).nullable(), z.string().max(512).nullable()]).refine(([, coll, key]) => (coll === null) === (key === null), 'collection and key go together'),
  // caught up, but the bucket's checksum is not to be sent from this position (see Position)
  z.tuple([seq, z.null(), z.null(), z.literal(1)]),
]);
const payloadSchema = z.strictObject({
  f: z.literal(CURSOR_FORMAT),
  e: z.number().int().min(0),
  u: z.string().min(1).max(256),
  a: z.string().max(64),
  p: z.string().max(32),
  b: z.record(z.string().max(240), position),
});

/** malformed: not a cursor; signature: not ours or altered; outdated: ours, from an older format */
export type CursorError = 'malformed' | 'signature' | 'outdated';

/** Signs and verifies cursors with a key derived from the server secret (HKDF). */
export class CursorCodec {
  private readonly keys: Buffer[];
  private readonly previousUntil: number;
  /** payloads whose cursor the previous key signed (never remembered) */
  private readonly byPrevious = new WeakSet<CursorPayload>();
  /** cursors decoded recently: a polling device sends the same one again and again */
  private readonly recent = new Map<string, CursorPayload>();

  /** Signs with `keys.current`; during a rotation's overlap, also verifies what `keys.previous` signed. */
  constructor(keys: Keyring | string) {
    const k = typeof keys === 'string' ? { current: keys } : keys;
    const derive = (secret: string) => Buffer.from(hkdfSync('sha256', secret, 'fieldsync', 'pull cursor v1', 32));
    this.keys = [derive(k.current), ...(k.previous ? [derive(k.previous.secret)] : [])];
    this.previousUntil = k.previous?.until ?? 0;
  }

  private mac(body: string, key = this.keys[0]!): Buffer {
    return createHmac('sha256', key).update(body).digest().subarray(0, 16);
  }

  encode(c: CursorPayload): string {
    const body = Buffer.from(
      JSON.stringify({ f: CURSOR_FORMAT, e: c.epoch, u: c.userId, a: c.app, p: c.profile, b: c.buckets }),
    ).toString('base64url');
    return `${body}.${this.mac(body).toString('base64url')}`;
  }

  /** The payload, or why it was refused. The signature is checked before anything is parsed; valid cursors are remembered. */
  decode(cursor: string): CursorPayload | CursorError {
    const known = this.recent.get(cursor);
    if (known) return known;
    const result = this.verify(cursor);
    // one signed with the previous key is checked each time: it stops verifying when the overlap ends
    if (typeof result !== 'string' && !this.byPrevious.has(result)) {
      if (this.recent.size >= 10_000) this.recent.delete(this.recent.keys().next().value!);
      this.recent.set(cursor, result);
    }
    return result;
  }

  private verify(cursor: string): CursorPayload | CursorError {
    const dot = cursor.indexOf('.');
    if (dot <= 0 || cursor.length > 16_384) return 'malformed';
    const body = cursor.slice(0, dot);
    const sig = Buffer.from(cursor.slice(dot + 1), 'base64url');
    const keys = Date.now() < this.previousUntil ? this.keys : this.keys.slice(0, 1);
    const signer = keys.findIndex((key) => {
      const expected = this.mac(body, key);
      return sig.length === expected.length && timingSafeEqual(sig, expected);
    });
    if (signer < 0) return 'signature';
    let json: unknown;
    try {
      json = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
    } catch {
      return 'malformed';
    }
    if (typeof json === 'object' && json !== null && (json as { f?: unknown }).f !== CURSOR_FORMAT && typeof (json as { f?: unknown }).f === 'number') return 'outdated';
    const parsed = payloadSchema.safeParse(json);
    if (!parsed.success) return 'malformed';
    const p = parsed.data;
    const payload = { epoch: p.e, userId: p.u, app: p.a, profile: p.p, buckets: p.b };
    if (signer > 0) this.byPrevious.add(payload);
    return payload;
  }
}
