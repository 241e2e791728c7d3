/**
 * The project's one seeded random number generator (mulberry32): the same seed gives the same
 * sequence on every machine, and its whole state is one integer, so a training run can save and
 * restore it exactly. The sampler's order and subsets, seeded initialisation, the cloze builder
 * and the tests' data all draw from it.
 *
 * @module
 */

/** Seeded 32-bit integers, uniform and normal samples; `state` can be saved and assigned back. */
export class Rng {
  /** The whole generator state. */
  state: number;

  /** Creates a generator from a 32-bit seed. */
  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A uniform 32-bit unsigned integer: one mulberry32 step. */
  uint32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A uniform sample in [0, 1). */
  uniform(): number {
    return this.uint32() / 4294967296;
  }

  /** Fills `out` with samples of N(0, std²) (Box-Muller) and returns it. */
  normal(out: Float32Array, std: number): Float32Array {
    for (let i = 0; i < out.length; i += 2) {
      const u = 1 - this.uniform();
      const r = Math.sqrt(-2 * Math.log(u)) * std;
      const a = 2 * Math.PI * this.uniform();
      out[i] = r * Math.cos(a);
      if (i + 1 < out.length) out[i + 1] = r * Math.sin(a);
    }
    return out;
  }
}
