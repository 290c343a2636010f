import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import type { RandomGenerator } from 'pure-rand/types/RandomGenerator';

/**
 * A seeded random source (pure-rand's xoroshiro128+, never Math.random), so the same
 * seed always yields the same demo data.
 */
export class Rand {
  constructor(private readonly gen: RandomGenerator) {}

  /** integer in [min, max] */
  int(min: number, max: number): number {
    return uniformInt(this.gen, min, max);
  }

  /** float in [0, 1) */
  float(): number {
    return uniformFloat64(this.gen);
  }

  /** float in [min, max) */
  between(min: number, max: number): number {
    return min + (max - min) * this.float();
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('Rand.pick: empty list');
    return items[this.int(0, items.length - 1)] as T;
  }

  /** an item chosen with probability proportional to weight(item) */
  weighted<T>(items: readonly T[], weight: (item: T) => number): T {
    const total = items.reduce((sum, item) => sum + weight(item), 0);
    let x = this.float() * total;
    for (const item of items) {
      x -= weight(item);
      if (x < 0) return item;
    }
    return this.pick(items);
  }

  /** Fisher-Yates, in place; returns the same array */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      const tmp = items[i] as T;
      items[i] = items[j] as T;
      items[j] = tmp;
    }
    return items;
  }

  /** n decimal digits as a string (leading zeros allowed) */
  digits(n: number): string {
    let out = '';
    for (let i = 0; i < n; i++) out += String(this.int(0, 9));
    return out;
  }

  /** a version-4 UUID made from this source, so order ids repeat with the seed */
  uuid(): string {
    let hex = '';
    for (let i = 0; i < 4; i++) hex += (this.gen.next() >>> 0).toString(16).padStart(8, '0');
    const variant = ((Number.parseInt(hex.charAt(16), 16) & 0x3) | 0x8).toString(16);
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
  }
}

/**
 * Independent random streams, one per part of the data, each a jump (2^64 draws) apart.
 * Drawing more numbers in one part (say, more products) does not shift what the other
 * parts get.
 */
export function randomStreams<K extends string>(seed: number, names: readonly K[]): Record<K, Rand> {
  const base = xoroshiro128plus(seed);
  const out = {} as Record<K, Rand>;
  for (const name of names) {
    out[name] = new Rand(base.clone());
    base.jump();
  }
  return out;
}
