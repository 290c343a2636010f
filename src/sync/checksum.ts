/**
 * Bucket checksums a device can recompute over its local rows (DESIGN §4, issue: verifiable).
 *
 *   rowHash(collection, id, v) = FNV-1a 32-bit of the UTF-8 bytes of "<collection>:<id>:<v>"
 *   checksum(bucket)           = (sum of rowHash over the bucket's rows) mod 2^32
 *
 * `id` is the row id as sent (decimal, or the lower-case UUID), `v` the row's version
 * (the `v` column). Worked example: rowHash("products", 1, 918) hashes "products:1:918";
 * FNV-1a starts at 2166136261 (0x811c9dc5) and for each byte does h ^= byte, then
 * h = h * 16777619 (0x01000193) mod 2^32. A sum is order-independent, so the device
 * can add and subtract row hashes as it applies changes. See README for the Dart code.
 * rowHash("products", 1, 918) = 3324079096; with ("products", 2, 918) = 1980044157 the
 * bucket's checksum is 1009155957.
 */
export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

export function rowHash(collection: string, id: string | number, version: string | number): number {
  return fnv1a32(`${collection}:${id}:${version}`);
}

/** Adds row hashes modulo 2^32. */
export function sumHashes(hashes: Iterable<number>): number {
  let sum = 0;
  for (const h of hashes) sum = (sum + h) >>> 0;
  return sum;
}
