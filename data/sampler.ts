/**
 * Batches of training windows from a token stream, in llm.c's order or shuffled, over all of a
 * split or a precise subset of it, with epochs and an exact resume position.
 *
 * Windows: window `w` is tokens `[w·T, w·T + T + 1)`: non-overlapping inputs of T tokens with
 * stride T, each with its T targets shifted by one, as llm.c's DataLoader reads them. A stream of
 * L tokens has `floor((L - 1) / T)` windows. Sequentially, batch `i` of B rows is windows
 * `i·B ... i·B + B - 1`, i.e. the contiguous tokens `[i·B·T, i·B·T + B·T + 1)`: llm.c's batch.
 *
 * Epochs: each epoch visits every window of the subset exactly once (in order, or in a
 * permutation seeded by `(seed, epoch)`), and batches run straight on into the next epoch, so no
 * window is dropped or repeated within an epoch even when B does not divide the window count.
 *
 * @module
 */
import { mixSeed, randomInts, shuffle } from "./_rng.ts";
import type { TokenSource } from "./dataset.ts";
import { DataError } from "./errors.ts";

/** Which part of the split to train on. Both may be given: the fraction is taken of the first tokens. */
export interface SubsetOptions {
  /** Only windows lying within the first this-many tokens. */
  firstTokens?: number;
  /** A seeded random fraction (0, 1] of the windows, `round(fraction · windows)` of them. */
  fraction?: number;
  /** Seed of the fraction's choice (default: the sampler's seed), independent of the shuffle. */
  seed?: number;
}

/** Options of {@linkcode BatchSampler}. */
export interface SamplerOptions {
  /** Rows per batch. */
  B: number;
  /** Tokens per row (sequence length). */
  T: number;
  /** Visit the windows of each epoch in a seeded random order (default false: llm.c's order). */
  shuffle?: boolean;
  /** Seed of the shuffle and, by default, of the subset (default 0). */
  seed?: number;
  /** Train on part of the split only. */
  subset?: SubsetOptions;
}

/** One batch: row `b` is `inputs[b·T ... b·T + T)` and the next tokens `targets[b·T ... b·T + T)`. */
export interface Batch {
  /** (B,T) token ids fed to the model. */
  readonly inputs: Uint32Array;
  /** (B,T) the id following each input. */
  readonly targets: Uint32Array;
  /** Epoch (from 0) of the batch's first row. */
  readonly epoch: number;
}

/** A sampler's exact position and the settings it is valid for; plain JSON. */
export interface SamplerState {
  /** Current epoch, from 0. */
  readonly epoch: number;
  /** Windows already taken in the current epoch. */
  readonly offset: number;
  /** Windows per epoch of the sampler that saved it. */
  readonly windowsPerEpoch: number;
  /** Sequence length. */
  readonly T: number;
  /** Whether epochs are shuffled. */
  readonly shuffle: boolean;
  /** Shuffle seed. */
  readonly seed: number;
  /** The subset's settings, null when training on the whole split. */
  readonly subset: {
    readonly firstTokens: number | null;
    readonly fraction: number | null;
    readonly seed: number;
  } | null;
}

function positiveInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1) throw new DataError(`${name} must be a positive integer, got ${v}`);
  return v;
}

/** Yields `B x (T+1)` windows of a {@linkcode TokenSource} as (inputs, targets) batches. */
export class BatchSampler {
  /** Rows per batch. */
  readonly B: number;
  /** Tokens per row. */
  readonly T: number;
  /** Windows visited once per epoch: the subset's size. */
  readonly windowsPerEpoch: number;
  readonly #source: TokenSource;
  readonly #shuffle: boolean;
  readonly #seed: number;
  readonly #subset: SamplerState["subset"];
  /** Subset window indices, ascending; null when every window is in. */
  readonly #selected: Uint32Array | null;
  #epoch = 0;
  #offset = 0;
  #order: Uint32Array | null = null;
  #orderEpoch = -1;

  /**
   * Sets up the windows of `source` (or of its subset) and starts at epoch 0.
   *
   * @throws {DataError} when B or T is not a positive integer, the subset settings are out of
   * range, or the (subset of the) source holds no full window of T + 1 tokens.
   */
  constructor(source: TokenSource, options: SamplerOptions) {
    this.B = positiveInt("B", options.B);
    this.T = positiveInt("T", options.T);
    this.#source = source;
    this.#shuffle = options.shuffle ?? false;
    this.#seed = options.seed ?? 0;
    const sub = options.subset;
    let tokens = source.length;
    if (sub?.firstTokens !== undefined) {
      positiveInt("subset.firstTokens", sub.firstTokens);
      if (sub.firstTokens > tokens) {
        throw new DataError(
          `subset.firstTokens ${sub.firstTokens} exceeds the ${tokens} tokens of the split`,
        );
      }
      tokens = sub.firstTokens;
    }
    const all = Math.max(0, Math.floor((tokens - 1) / this.T));
    if (all < 1) throw new DataError(`${tokens} tokens hold no window of T + 1 = ${this.T + 1} tokens`);
    if (all > 0xffffffff) throw new DataError(`${all} windows exceed the sampler's 2^32 limit; raise T`);
    this.#subset = sub
      ? { firstTokens: sub.firstTokens ?? null, fraction: sub.fraction ?? null, seed: sub.seed ?? this.#seed }
      : null;
    this.#selected = null;
    if (sub?.fraction !== undefined) {
      const f = sub.fraction;
      if (!(f > 0 && f <= 1)) throw new DataError(`subset.fraction must be in (0, 1], got ${f}`);
      const k = Math.round(f * all);
      if (k < 1) throw new DataError(`subset.fraction ${f} of ${all} windows selects none`);
      this.#selected = chooseSorted(all, k, mixSeed(this.#subset!.seed, 0xffffffff));
    }
    this.windowsPerEpoch = this.#selected?.length ?? all;
  }

  /** Tokens the model sees as inputs per epoch: `windowsPerEpoch · T`. */
  get tokensPerEpoch(): number {
    return this.windowsPerEpoch * this.T;
  }

  /** Epochs consumed so far, fractional: 2.5 is halfway through the third epoch. */
  get epochProgress(): number {
    return this.#epoch + this.#offset / this.windowsPerEpoch;
  }

  /** Batches needed to cover `epochs` epochs (rounded up), e.g. the step count of a run. */
  stepsForEpochs(epochs: number): number {
    return Math.ceil((epochs * this.windowsPerEpoch) / this.B);
  }

  /** The next batch; the sampler never runs out, it counts epochs. */
  next(): Batch {
    const { B, T } = this;
    const inputs = new Uint32Array(B * T);
    const targets = new Uint32Array(B * T);
    const epoch = this.#epoch;
    for (let b = 0; b < B; b++) {
      const row = this.#source.read(this.#windowIndex() * T, T + 1);
      inputs.set(row.subarray(0, T), b * T);
      targets.set(row.subarray(1), b * T);
      if (++this.#offset === this.windowsPerEpoch) {
        this.#epoch++;
        this.#offset = 0;
      }
    }
    return { inputs, targets, epoch };
  }

  /** The exact position, to save with a checkpoint and give to {@linkcode BatchSampler.restore}. */
  state(): SamplerState {
    return {
      epoch: this.#epoch,
      offset: this.#offset,
      windowsPerEpoch: this.windowsPerEpoch,
      T: this.T,
      shuffle: this.#shuffle,
      seed: this.#seed,
      subset: this.#subset,
    };
  }

  /**
   * Continues from a saved position: the next batch is the one the saving sampler would have
   * returned. B may differ (positions count windows, not batches).
   *
   * @throws {DataError} when the state is not a sampler's, or was saved by a sampler with other
   * windows or order.
   */
  restore(state: SamplerState): void {
    if (typeof state !== "object" || state === null) {
      throw new DataError(`sampler state is ${JSON.stringify(state) ?? "missing"}, not a sampler's position`);
    }
    const mine = this.state();
    for (const key of ["windowsPerEpoch", "T", "shuffle", "seed"] as const) {
      if (state[key] !== mine[key]) {
        throw new DataError(`sampler state does not match: ${key} is ${state[key]} there, ${mine[key]} here`);
      }
    }
    if (JSON.stringify(state.subset ?? null) !== JSON.stringify(mine.subset)) {
      throw new DataError(
        `sampler state does not match: subset ${JSON.stringify(state.subset)} there, ${
          JSON.stringify(mine.subset)
        } here`,
      );
    }
    if (
      !Number.isSafeInteger(state.epoch) || state.epoch < 0 || !Number.isSafeInteger(state.offset) ||
      state.offset < 0 || state.offset >= this.windowsPerEpoch
    ) {
      throw new DataError(
        `sampler state has an invalid position: epoch ${state.epoch}, offset ${state.offset}`,
      );
    }
    this.#epoch = state.epoch;
    this.#offset = state.offset;
  }

  /** Index (in the full window grid) of the window at the current position. */
  #windowIndex(): number {
    let k = this.#offset;
    if (this.#shuffle) {
      if (this.#orderEpoch !== this.#epoch) {
        const order = new Uint32Array(this.windowsPerEpoch);
        for (let i = 0; i < order.length; i++) order[i] = i;
        shuffle(order, randomInts(mixSeed(this.#seed, this.#epoch)));
        this.#order = order;
        this.#orderEpoch = this.#epoch;
      }
      k = this.#order![k];
    }
    return this.#selected ? this.#selected[k] : k;
  }
}

/** `k` distinct integers of `[0, n)` chosen uniformly with `seed`, ascending. */
function chooseSorted(n: number, k: number, seed: number): Uint32Array {
  const pool = new Uint32Array(n);
  for (let i = 0; i < n; i++) pool[i] = i;
  const randomInt = randomInts(seed);
  for (let i = 0; i < k; i++) {
    const j = i + randomInt(n - i);
    const t = pool[i];
    pool[i] = pool[j];
    pool[j] = t;
  }
  return pool.slice(0, k).sort();
}
