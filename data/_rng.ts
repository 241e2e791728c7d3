/** Seeded randomness for subsets and shuffles: the same seed gives the same order on every machine. */
import { Rng } from "./random.ts";

/** A 32-bit seed from `seed` and a stream number (e.g. the epoch), well mixed (murmur3 finaliser). */
export function mixSeed(seed: number, stream: number): number {
  let h = (Math.imul(seed >>> 0, 0x9e3779b1) ^ (stream >>> 0)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Uniform integers in `[0, n)` for n ≤ 2^32 from a 32-bit seed (mulberry32, 2 draws for 53 bits). */
export function randomInts(seed: number): (n: number) => number {
  const rng = new Rng(seed);
  return (n: number): number =>
    Math.floor(((rng.uint32() >>> 5) * 67108864 + (rng.uint32() >>> 6)) / 2 ** 53 * n);
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
