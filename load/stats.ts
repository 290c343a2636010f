import { availableParallelism, loadavg } from 'node:os';

/** The p-th percentile (0-100) of the values, nearest rank; NaN when there are none. */
export const pct = (xs: readonly number[], p: number): number => {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
};

/** The median (the mean of the two middle values for an even count). */
export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** The machine's load, printed beside every benchmark figure (shared machines are noisy). */
export const loadLine = (): string => `load average ${loadavg().map((x) => x.toFixed(2)).join(' / ')} (1/5/15 min), ${availableParallelism()} CPUs`;
