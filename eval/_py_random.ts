/**
 * Python's `random.Random` for the one call lm-evaluation-harness's few-shot sampler makes,
 * `Random(seed).sample(population, k)`: CPython's Mersenne Twister (MT19937), seeded from an
 * integer as `init_by_array` of its 32-bit words, `_randbelow` by rejection on `getrandbits`, and
 * `sample`'s two algorithms (a shrinking pool for small populations, a set of drawn indices for
 * large ones), so that a seed draws the harness's examples in the harness's order.
 *
 * @module
 */

const N = 624;
const M = 397;

/** CPython's `random.Random` seeded with a non-negative integer below 2³². */
export class PyRandom {
  #mt = new Uint32Array(N);
  #index = N;

  constructor(seed: number) {
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
      throw new RangeError(`seed ${seed} is not an integer in 0..2^32-1`);
    }
    this.#initByArray([seed]);
  }

  #initGenrand(s: number): void {
    const mt = this.#mt;
    mt[0] = s;
    for (let i = 1; i < N; i++) mt[i] = Math.imul(1812433253, mt[i - 1] ^ (mt[i - 1] >>> 30)) + i;
  }

  #initByArray(key: readonly number[]): void {
    const mt = this.#mt;
    this.#initGenrand(19650218);
    let i = 1, j = 0;
    for (let k = Math.max(N, key.length); k > 0; k--) {
      mt[i] = (mt[i] ^ Math.imul(mt[i - 1] ^ (mt[i - 1] >>> 30), 1664525)) + key[j] + j;
      i++;
      j++;
      if (i >= N) {
        mt[0] = mt[N - 1];
        i = 1;
      }
      if (j >= key.length) j = 0;
    }
    for (let k = N - 1; k > 0; k--) {
      mt[i] = (mt[i] ^ Math.imul(mt[i - 1] ^ (mt[i - 1] >>> 30), 1566083941)) - i;
      i++;
      if (i >= N) {
        mt[0] = mt[N - 1];
        i = 1;
      }
    }
    mt[0] = 0x80000000;
    this.#index = N;
  }

  /** The next 32-bit output (`genrand_uint32`). */
  #next(): number {
    const mt = this.#mt;
    if (this.#index >= N) {
      for (let k = 0; k < N; k++) {
        const y = (mt[k] & 0x80000000) | (mt[(k + 1) % N] & 0x7fffffff);
        mt[k] = mt[(k + M) % N] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
      }
      this.#index = 0;
    }
    let y = mt[this.#index++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** `_randbelow(n)`: a uniform integer in [0, n), n ≤ 2³², by rejection on `getrandbits(bit_length(n))`. */
  randbelow(n: number): number {
    const bits = 32 - Math.clz32(n);
    let r = this.#next() >>> (32 - bits);
    while (r >= n) r = this.#next() >>> (32 - bits);
    return r;
  }

  /**
   * `sample(population, k)`: k distinct elements in Python's order.
   *
   * @throws {RangeError} when k is negative or larger than the population.
   */
  sample<T>(population: readonly T[], k: number): T[] {
    const n = population.length;
    if (!(k >= 0 && k <= n)) throw new RangeError(`sample of ${k} from a population of ${n}`);
    let setsize = 21;
    if (k > 5) setsize += 4 ** Math.ceil(Math.log(k * 3) / Math.log(4));
    const result: T[] = [];
    if (n <= setsize) {
      const pool = [...population];
      for (let i = 0; i < k; i++) {
        const j = this.randbelow(n - i);
        result.push(pool[j]);
        pool[j] = pool[n - i - 1];
      }
      return result;
    }
    const selected = new Set<number>();
    for (let i = 0; i < k; i++) {
      let j = this.randbelow(n);
      while (selected.has(j)) j = this.randbelow(n);
      selected.add(j);
      result.push(population[j]);
    }
    return result;
  }
}
