/** Seeded randomness for subsets and shuffles: the same seed gives the same order on every machine. */

/** A 32-bit seed from `seed` and a stream number (e.g. the epoch), well mixed (murmur3 finaliser). */
export function mixSeed(seed: number, stream: number): number {
  let h = (Math.imul(seed >>> 0, 0x9e3779b1) ^ (stream >>> 0)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Uniform integers in `[0, n)` for n ≤ 2^32 from a 32-bit seed (mulberry32, 2 draws for 53 bits). */
export function randomInts(seed: number): (n: number) => number {
  let s = seed >>> 0;
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  return (n: number): number => Math.floor(((next() >>> 5) * 67108864 + (next() >>> 6)) / 2 ** 53 * n);
}

/** Shuffles `items` in place (Fisher-Yates) with the given integer source. */
export function shuffle(items: Uint32Array, randomInt: (n: number) => number): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    const t = items[i];
    items[i] = items[j];
    items[j] = t;
  }
}
