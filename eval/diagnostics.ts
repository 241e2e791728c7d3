/**
 * Per-block diagnostics: which blocks of a trained model are worth keeping.
 *
 * Attention, per block and head, from the probability matrices `A (T,T)` of a few token windows:
 * - entropy: mean over query rows t ≥ 1 of `−Σ_j A_tj log A_tj` (nats), and normalised by
 *   `log(t+1)`, the entropy of uniform attention over the t+1 visible tokens (1 = uniform);
 * - first-token mass: mean over rows t ≥ 1 of `A_t0` (attention sinks put most of it there);
 * - approximate rank: the fewest singular values holding 90% of Σσ² (Inheritune's measure of
 *   attention degeneration in deep blocks);
 * - rank-one closeness: `σ1² / ‖A‖_F²`, the share of the matrix's energy in its top singular
 *   value (1 = rank one: every query attends the same way), Inheritune's "attention degeneration".
 * Row 0 is left out of the row means: it can only attend to itself, whatever the head does.
 *
 * The residual stream, per block, between its input x and output y at each token:
 * - cosine `cos(x, y)` averaged over tokens, and ShortGPT's Block Influence `BI = 1 − E[cos]`;
 * - Gromov et al.'s angular distance `arccos(cos)/π`, averaged over tokens; and the same
 *   distance between block l's input and the last block's output ("tail"), the change made by
 *   the blocks `[l, L)` that keeping only the first l would drop.
 *
 * @module
 */
import { attentionForwardCpu, getGpu, IGNORE_INDEX, readAll, Recorder, write } from "@inheritune/kernels";
import {
  attentionHeads,
  type Checkpoint,
  createModel,
  isDecoder,
  layerAttention,
  type TokenReader,
} from "@inheritune/core";
import { DataError } from "@inheritune/data";
import { symmetricEigenvalues } from "./_linalg.ts";

/** Attention statistics of one head, averaged over the analysed windows. */
export interface HeadDiagnostics {
  /** Head index. */
  head: number;
  /** Mean row entropy over query rows t ≥ 1, in nats. */
  entropy: number;
  /** Mean over rows t ≥ 1 of the row entropy divided by log(t+1): 1 for uniform attention. */
  normalizedEntropy: number;
  /** Mean over rows t ≥ 1 of the probability on the first token. */
  firstTokenMass: number;
  /** σ1² / ‖A‖_F² of the attention matrix, in (0, 1]; 1 when it is rank one. */
  rankOne: number;
  /**
   * The paper's approximate rank: the fewest singular values holding 90% of the energy Σσ²;
   * 1 for a rank-one (degenerate) pattern, near T for attention to the token itself.
   */
  rank90: number;
}

/** Diagnostics of one block. */
export interface BlockDiagnostics {
  /** Block index. */
  block: number;
  /** Mean over tokens of the cosine between the block's input and output. */
  cosine: number;
  /** ShortGPT's Block Influence, 1 − `cosine`: how much the block changes the residual stream. */
  blockInfluence: number;
  /** Mean over tokens of arccos(cos)/π between input and output, in [0, 1]. */
  angularDistance: number;
  /** Mean over tokens of arccos(cos)/π between this block's input and the last block's output. */
  tailDistance: number;
  /** Per-head attention statistics. */
  heads: HeadDiagnostics[];
}

/** Result of {@linkcode analyzeModel}. */
export interface Analysis {
  /** Tokens per window. */
  T: number;
  /** Windows analysed. */
  windows: number;
  /** Mean rank-one closeness from which a block counts as lazy (see {@linkcode suggestLayers}). */
  lazyThreshold: number;
  /** One entry per block, in order. */
  blocks: BlockDiagnostics[];
  /** Block indices by Block Influence, most influential first (see {@linkcode rankBlocks}). */
  ranking: number[];
  /** Suggested number of blocks to inherit (see {@linkcode suggestLayers}). */
  suggestedLayers: number;
}

/** Options of {@linkcode analyzeModel}. */
export interface AnalyzeOptions {
  /** Token windows to analyse (default 4), spread evenly over the source; fewer if it is short. */
  windows?: number;
  /** Tokens per window (default min(256, n_positions)); at least 2. */
  T?: number;
  /** Lazy-block threshold on the mean rank-one closeness (default {@linkcode DEFAULT_LAZY_THRESHOLD}). */
  lazyThreshold?: number;
}

/**
 * Default lazy-block threshold. Uniform causal attention scores 0.46 at T = 256 (0.75 at T = 5),
 * a head sending 90% of each row to the first token 0.99: 0.9 means "mostly one shared pattern".
 */
export const DEFAULT_LAZY_THRESHOLD = 0.9;

/** Shape of a dense row-major matrix. */
export interface MatrixShape {
  /** Rows. */
  rows: number;
  /** Columns. */
  cols: number;
}

/**
 * The singular values of `a (rows,cols)`, largest first: square roots of the eigenvalues of the
 * smaller of AᵀA and AAᵀ, each computed in f64.
 */
export function singularValues(a: ArrayLike<number>, shape: MatrixShape): Float64Array {
  const { rows, cols } = shape;
  const n = Math.min(rows, cols);
  const gram = new Float64Array(n * n);
  // AᵀA (cols ≤ rows) sums over rows; AAᵀ over columns.
  const at = (i: number, k: number): number => (cols <= rows ? a[k * cols + i] : a[i * cols + k]);
  const inner = Math.max(rows, cols);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = 0; k < inner; k++) s += at(i, k) * at(j, k);
      gram[i * n + j] = gram[j * n + i] = s;
    }
  }
  return symmetricEigenvalues(gram, n).map((v) => Math.sqrt(Math.max(0, v)));
}

/** Statistics of one attention matrix; the fields of {@linkcode HeadDiagnostics} but `head`. */
export type AttentionStats = Omit<HeadDiagnostics, "head">;

/**
 * Entropy, normalised entropy and first-token mass (means over rows t ≥ 1), rank-one closeness
 * and approximate rank of one causal attention probability matrix `att (T,T)`, T ≥ 2.
 */
export function attentionStats(att: ArrayLike<number>, T: number): AttentionStats {
  if (!Number.isInteger(T) || T < 2) throw new RangeError(`attention statistics need T ≥ 2, got ${T}`);
  let entropy = 0, normalized = 0, first = 0, energy = 0;
  for (let t = 0; t < T; t++) {
    let h = 0;
    for (let j = 0; j <= t; j++) {
      const p = att[t * T + j];
      energy += p * p;
      if (p > 0) h -= p * Math.log(p);
    }
    if (t === 0) continue;
    entropy += h;
    normalized += h / Math.log(t + 1);
    first += att[t * T];
  }
  const sigma = singularValues(att, { rows: T, cols: T });
  let rank90 = 0;
  for (let held = 0; rank90 < T && held < 0.9 * energy;) held += sigma[rank90++] ** 2;
  return {
    entropy: entropy / (T - 1),
    normalizedEntropy: normalized / (T - 1),
    firstTokenMass: first / (T - 1),
    rankOne: energy > 0 ? (sigma[0] * sigma[0]) / energy : 0,
    rank90,
  };
}

const STAT_KEYS = ["entropy", "normalizedEntropy", "firstTokenMass", "rankOne", "rank90"] as const;

/** Result of {@linkcode residualSimilarity}. */
export interface Similarity {
  /** Mean over rows of cos(x_t, y_t). */
  cosine: number;
  /** Mean over rows of arccos(cos(x_t, y_t))/π. */
  angularDistance: number;
}

/** Mean cosine and angular distance between the rows of `x (rows,C)` and `y (rows,C)`. */
export function residualSimilarity(x: ArrayLike<number>, y: ArrayLike<number>, C: number): Similarity {
  if (x.length !== y.length || x.length % C !== 0 || x.length === 0) {
    throw new RangeError(`residual similarity of ${x.length} and ${y.length} values in rows of ${C}`);
  }
  const rows = x.length / C;
  let cosine = 0, angle = 0;
  for (let r = 0; r < rows; r++) {
    let dot = 0, nx = 0, ny = 0;
    for (let c = r * C; c < (r + 1) * C; c++) {
      dot += x[c] * y[c];
      nx += x[c] * x[c];
      ny += y[c] * y[c];
    }
    const d = Math.sqrt(nx * ny);
    // A zero row is at angle 0 from another zero row and π/2 from anything else.
    const cos = d > 0 ? Math.min(1, Math.max(-1, dot / d)) : nx === ny ? 1 : 0;
    cosine += cos;
    angle += Math.acos(cos) / Math.PI;
  }
  return { cosine: cosine / rows, angularDistance: angle / rows };
}

/**
 * Block indices ordered by Block Influence, largest first (ties by index): the ranking that
 * `deno task inherit --select ranked --blocks ...` keeps the first n of (ShortGPT drops the
 * blocks at the end of it).
 */
export function rankBlocks(blocks: readonly Pick<BlockDiagnostics, "block" | "blockInfluence">[]): number[] {
  return [...blocks]
    .sort((a, b) => b.blockInfluence - a.blockInfluence || a.block - b.block)
    .map((b) => b.block);
}

/** Mean rank-one closeness over a block's heads. */
export function meanRankOne(block: Pick<BlockDiagnostics, "heads">): number {
  return block.heads.reduce((s, h) => s + h.rankOne, 0) / block.heads.length;
}

/**
 * The suggested number of blocks to inherit: the smallest n ≥ 1 such that every block in
 * `[n, L)` is lazy, its mean rank-one closeness over heads at least `lazyThreshold` (its attention
 * has degenerated: every query attends the same way). Inheritune keeps the first n blocks and
 * drops that lazy tail; n = L when the last block is not lazy.
 */
export function suggestLayers(
  blocks: readonly Pick<BlockDiagnostics, "heads">[],
  lazyThreshold: number = DEFAULT_LAZY_THRESHOLD,
): number {
  let n = blocks.length;
  while (n > 1 && meanRankOne(blocks[n - 1]) >= lazyThreshold) n--;
  return n;
}

/**
 * Runs `model` on a few windows of `tokens` and measures every block (see the module
 * documentation). Windows start evenly spaced over the source and do not overlap; the forward
 * pass runs on the GPU, the attention matrices are recomputed on the CPU from each block's
 * read-back `qkv`, one block and one window at a time.
 *
 * @throws {DataError} when `tokens` holds fewer than T tokens.
 * @throws {RangeError} for options out of range.
 */
export async function analyzeModel(
  model: Checkpoint,
  tokens: TokenReader,
  options: AnalyzeOptions = {},
): Promise<Analysis> {
  const { config } = model;
  const T = options.T ?? Math.min(256, config.n_positions);
  const lazyThreshold = options.lazyThreshold ?? DEFAULT_LAZY_THRESHOLD;
  const requested = options.windows ?? 4;
  if (!Number.isInteger(T) || T < 2 || T > config.n_positions) {
    throw new RangeError(`window length T must be an integer in [2, ${config.n_positions}], got ${T}`);
  }
  if (!Number.isInteger(requested) || requested < 1) {
    throw new RangeError(`windows must be a positive integer, got ${requested}`);
  }
  if (tokens.length < T) {
    throw new DataError(`analysis needs at least ${T} tokens (one window), the data has ${tokens.length}`);
  }
  const B = Math.min(requested, Math.floor(tokens.length / T));
  const stride = B > 1 ? Math.floor((tokens.length - T) / (B - 1)) : 0;
  const input = new Uint32Array(B * T);
  for (let b = 0; b < B; b++) input.set(tokens.read(b * stride, T), b * T);

  const gpu = await getGpu();
  const net = createModel(gpu, config, model.params, { B, T });
  const rec = new Recorder(gpu);
  try {
    write(gpu, net.tokens, input);
    write(gpu, net.targets, new Uint32Array(B * T).fill(IGNORE_INDEX));
    net.recordForward(rec);
    rec.submit();
    const L = config.n_layer, C = config.n_embd;
    const { NH, NKV, hs } = attentionHeads(config);
    const W = (NH + 2 * NKV) * hs; // floats per row of qkv
    const [last] = await readAll(gpu, [net.blockActivations(L - 1).output]);
    const blocks: BlockDiagnostics[] = [];
    for (let l = 0; l < L; l++) {
      const acts = net.blockActivations(l);
      const [x, qkv, y] = await readAll(gpu, [acts.input, acts.qkv, acts.output]);
      const sim = residualSimilarity(x, y, C);
      const means: AttentionStats[] = Array.from({ length: NH }, () => ({
        entropy: 0,
        normalizedEntropy: 0,
        firstTokenMass: 0,
        rankOne: 0,
        rank90: 0,
      }));
      // The block's own attention: its window and score scale, over query heads of hs channels.
      const { window, scale } = isDecoder(config) ? layerAttention(config, l) : {};
      for (let b = 0; b < B; b++) {
        const rows = qkv.subarray(b * T * W, (b + 1) * T * W);
        const { att } = attentionForwardCpu(rows, { B: 1, T, C: NH * hs, NH, NKV, window, scale });
        for (let h = 0; h < NH; h++) {
          const s = attentionStats(att.subarray(h * T * T, (h + 1) * T * T), T);
          for (const k of STAT_KEYS) means[h][k] += s[k] / B;
        }
      }
      blocks.push({
        block: l,
        cosine: sim.cosine,
        blockInfluence: 1 - sim.cosine,
        angularDistance: sim.angularDistance,
        tailDistance: residualSimilarity(x, last, C).angularDistance,
        heads: means.map((stats, head) => ({ head, ...stats })),
      });
    }
    return {
      T,
      windows: B,
      lazyThreshold,
      blocks,
      ranking: rankBlocks(blocks),
      suggestedLayers: suggestLayers(blocks, lazyThreshold),
    };
  } finally {
    rec.destroy();
    net.destroy();
  }
}

function mean(values: number[]): number {
  return values.reduce((s, v) => s + v, 0) / values.length;
}

/**
 * The analysis as text: a table of blocks (head statistics averaged over heads), one grid per
 * head statistic (blocks × heads), then the suggested n with its rule and the ranking line
 * `ranking: 0,1,3,2` that `--select ranked --blocks` takes.
 */
export function formatAnalysis(analysis: Analysis): string {
  const { blocks } = analysis;
  const L = blocks.length;
  const f = (v: number, width = 7): string => v.toFixed(3).padStart(width);
  const lines = [
    `${analysis.windows} window(s) of ${analysis.T} tokens; head statistics are means over query rows t ≥ 1`,
    "",
    "block     cos      BI   angle    tail  entropy  H/log(t+1)  first tok  rank-one  rank90",
  ];
  for (const b of blocks) {
    const heads = (k: keyof AttentionStats): number => mean(b.heads.map((h) => h[k]));
    lines.push(
      `${String(b.block).padStart(5)} ${f(b.cosine)} ${f(b.blockInfluence)} ${f(b.angularDistance)} ` +
        `${f(b.tailDistance)} ${f(heads("entropy"), 8)} ${f(heads("normalizedEntropy"), 11)} ` +
        `${f(heads("firstTokenMass"), 10)} ${f(heads("rankOne"), 9)} ${
          heads("rank90").toFixed(1).padStart(7)
        }`,
    );
  }
  lines.push(
    "",
    "cos, BI = 1 − cos (Block Influence) and angle = arccos(cos)/π between each block's input and output;",
    "tail: angle between the block's input and the last block's output; entropy in nats.",
  );
  const grids: [keyof AttentionStats, string][] = [
    ["normalizedEntropy", "attention entropy / log(t+1) per head (1 = uniform)"],
    ["firstTokenMass", "attention mass on the first token per head"],
    ["rankOne", "rank-one closeness σ1²/‖A‖F² per head (1 = rank one)"],
    ["rank90", `approximate rank per head: singular values holding 90% of the energy (of ${analysis.T})`],
  ];
  const NH = blocks[0]?.heads.length ?? 0;
  const header = "block" + Array.from({ length: NH }, (_, h) => `h${h}`.padStart(6)).join("");
  for (const [key, title] of grids) {
    lines.push("", title, header);
    for (const b of blocks) {
      lines.push(String(b.block).padStart(5) + b.heads.map((h) => h[key].toFixed(2).padStart(6)).join(""));
    }
  }
  const n = analysis.suggestedLayers;
  const rule = `a block is lazy when its mean rank-one closeness is ≥ ${analysis.lazyThreshold}`;
  lines.push(
    "",
    n < L
      ? `suggested n: ${n} (blocks ${n}..${L - 1} are all lazy; ${rule}; keep blocks 0..${n - 1})`
      : `suggested n: ${n} (the last block is not lazy, so no lazy tail to drop; ${rule})`,
    "blocks by Block Influence, most influential first (for deno task inherit --select ranked --blocks):",
    `ranking: ${analysis.ranking.join(",")}`,
  );
  return lines.join("\n");
}
