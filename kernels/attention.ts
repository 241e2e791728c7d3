/**
 * Causal multi-head self-attention with grouped-query attention (after the Q, K, V projections and
 * before the output projection), forward and backward, flash-attention style, and their CPU
 * references.
 *
 * Each row of `qkv (B,T,W)`, W = (NH + 2·NKV)·hs, holds the NH query heads, then the NKV key heads,
 * then the NKV value heads, hs = C/NH channels each (GPT-2: NKV = NH, so W = 3C and the row is
 * q | k | v of C channels each, `c_attn`'s output). Query head h reads key/value head
 * g = h / (NH/NKV): NKV = NH is multi-head attention, NKV = 1 multi-query attention. For each
 * (b, h) and query row i, over the keys j it sees (j ≤ i, and i − j < window with a sliding
 * window: the last `window` positions, i itself included):
 *
 *   S_ij = scale · q_i·k_j   (scale = 1/√hs unless given)  lse_i = log Σ_j exp S_ij
 *   P_ij = exp(S_ij − lse_i)                              out_i = Σ_j P_ij v_j
 *
 * The (B,NH,T,T) matrix P is never stored: at GPT-2 124M, B=4, T=1024 it would be 201 MB, more
 * than one storage binding may hold. The forward pass walks the keys in tiles with an online
 * softmax and saves only `lse (B,NH,T)`; the backward pass recomputes P from it:
 *
 *   D_i   = dout_i·out_i
 *   dS_ij = P_ij (dout_i·v_j − D_i)
 *   dq_i  = scale · Σ_{j≤i} dS_ij k_j
 *   dk_j  = scale · Σ_{i≥j} dS_ij q_i      dv_j = Σ_{i≥j} P_ij dout_i
 *
 * (with grouped heads, dk and dv of a key/value head also sum over the query heads sharing it).
 * Each sum runs in a fixed order in one thread, so the results are deterministic (no atomics).
 *
 * @module
 */
import {
  CPU_WORKGROUP,
  createView,
  type Gpu,
  GpuError,
  type Recorder,
  requireLength,
  textureFits,
  Uniforms,
  type View,
} from "./device.ts";
import {
  copyToScratchTextures,
  flatTexture,
  type Operands,
  scratchTexture,
  useTextureOperands,
} from "./scratch.ts";
import { dkvCode, dqCode, forwardCode, type Split } from "./_attention_wgsl.ts";

/**
 * Largest head size the kernels support (Gemma 3's 256): a thread keeps up to four rows of it in
 * registers, and at 256 llvmpipe already takes tens of seconds to compile the backward kernels.
 */
export const ATTENTION_MAX_HEAD_SIZE = 256;

/**
 * How the attention kernels split their work (see {@linkcode attentionSplit}).
 */
export interface AttentionSplit {
  /** Invocations per workgroup. */
  wg: number;
  /**
   * Named vec4 variables of row state (q, accumulators) one invocation may hold: it owns as many
   * rows (1 to 8) as fit, reusing each streamed row for all of them.
   */
  rowVectors: number;
  /**
   * Keys (forward, dq) or queries (dk, dv) each loop step streams; 1 where one row's state exceeds
   * `rowVectors`.
   */
  step: number;
  /** Whether dk and dv are computed by two kernels, each holding less state, instead of one. */
  separateDkDv: boolean;
}

/**
 * The split the attention kernels use on `gpu` unless told otherwise.
 *
 * On a CPU adapter such as llvmpipe, a workgroup of one SIMD group (8 lanes of 256 bits) is
 * cheapest, and every load an invocation makes is a scalar loop over the lanes, costing far more
 * than arithmetic on registers: so each invocation owns several rows (128 vec4s of state: the
 * largest kernel then compiles in seconds, not minutes), and streams 2 rows per step, rescaling
 * the forward accumulators once per 2 keys.
 *
 * On a GPU, 64 invocations of one row each keep warps full, and what costs is state beyond the
 * 255 registers a thread may hold, which spills to local memory. One streamed row per step, and
 * dk and dv in separate kernels, keep every kernel near 64 floats per held row: (q, dout, dq) in
 * dq, (k, v, dk) in dk, (k, dv) in dv, each plus one streamed row. On an H200 that took the
 * backward pass of GPT-2 124M (B=16) from 1493 to 137 ms per step (`bench/NOTES.md`). A head of
 * 256 (Gemma 3) is 256 floats per held row, so its kernels spill whatever the split: they run, at a
 * speed not measured yet.
 */
export function attentionSplit(gpu: Gpu): AttentionSplit {
  return gpu.isFallback
    ? { wg: CPU_WORKGROUP, rowVectors: 128, step: 2, separateDkDv: false }
    : { wg: 64, rowVectors: 0, step: 1, separateDkDv: true };
}

/** Shape of the attention of {@linkcode attentionForward} and {@linkcode attentionBackward}. */
export interface AttentionShape {
  /**
   * Where the streamed rows (keys and values; queries and output gradients) are read from:
   * storage buffers, or texture copies of qkv and dout. Defaults to textures on a CPU adapter
   * when the head size is a multiple of 4 and C of 64, else buffers.
   */
  operands?: Operands;
  /** Batch size. */
  B: number;
  /** Sequence length. */
  T: number;
  /** Channels of the queries and of the output (NH · hs). */
  C: number;
  /** Number of query heads. */
  NH: number;
  /** Number of key/value heads, dividing NH (default NH: no grouping). */
  NKV?: number;
  /** Work split of the kernels; defaults to {@linkcode attentionSplit} of the GPU. */
  split?: AttentionSplit;
  /**
   * Sliding window in positions: query i sees keys i − window + 1 .. i (Mistral's and Phi-3's
   * `sliding_window`, Gemma 3's local layers). Default 0: every key j ≤ i.
   */
  window?: number;
  /** Factor of the scores q·k (Gemma 3: `query_pre_attn_scalar`^-½); default 1/√hs. */
  scale?: number;
}

/** Checks the shape and returns the head size. */
function headSize({ B, T, C, NH, NKV = NH, window = 0, scale }: AttentionShape): number {
  for (const [name, v] of [["B", B], ["T", T], ["C", C], ["NH", NH], ["NKV", NKV]] as const) {
    if (!Number.isInteger(v) || v < 1) {
      throw new GpuError(`attention: ${name}=${v} is not a positive integer`);
    }
  }
  if (!Number.isInteger(window) || window < 0) {
    throw new GpuError(`attention: window=${window} is not a non-negative integer`);
  }
  if (scale !== undefined && !(Number.isFinite(scale) && scale > 0)) {
    throw new GpuError(`attention: scale=${scale} is not a positive number`);
  }
  if (C % NH !== 0) throw new GpuError(`attention: C=${C} is not a multiple of NH=${NH}`);
  if (NH % NKV !== 0) throw new GpuError(`attention: NKV=${NKV} does not divide NH=${NH}`);
  const hs = C / NH;
  if (hs > ATTENTION_MAX_HEAD_SIZE) {
    throw new GpuError(`attention: head size C/NH=${hs} exceeds ${ATTENTION_MAX_HEAD_SIZE}`);
  }
  return hs;
}

// The split of a kernel whose invocations hold `heldRows` head rows of state per row they own.
function kernelSplit(s: AttentionSplit, hs: number, heldRows: number): Split {
  if (![s.wg, s.step].every((v) => Number.isInteger(v) && v >= 1) || !(s.rowVectors >= 0)) {
    throw new GpuError(`attention split ${JSON.stringify(s)}: wg and step must be positive integers`);
  }
  const held = heldRows * Math.ceil(hs / 4);
  const rows = Math.max(1, Math.min(8, Math.floor(s.rowVectors / held)));
  // Past the budget (on a CPU adapter, head sizes over 128), one streamed row per step: the rows
  // streamed are as large as the state, and llvmpipe then compiles in half the time and runs the
  // forward pass faster, the backward pass as fast (hs = 256, T = 512).
  return { wg: s.wg, rows, step: held > s.rowVectors ? 1 : s.step };
}

/**
 * Splits the batch so that the largest tensor, `perBatch` elements per batch entry, fits in one
 * storage binding; returns `[first, count]` pairs.
 */
function batchChunks(gpu: Gpu, B: number, perBatch: number): [number, number][] {
  const per = Math.floor(gpu.limits.maxStorageBufferBindingSize / (4 * perBatch));
  if (per < 1) throw new GpuError(`attention: one batch entry exceeds maxStorageBufferBindingSize`);
  const chunks: [number, number][] = [];
  for (let b0 = 0; b0 < B; b0 += per) chunks.push([b0, Math.min(per, B - b0)]);
  return chunks;
}

/** The batch entries `b0 .. b0+nb` of `view`, which holds `perBatch` elements per entry. */
function slice(view: View, b0: number, nb: number, perBatch: number): View {
  return { buffer: view.buffer, offset: view.offset + b0 * perBatch, length: nb * perBatch };
}

/**
 * Whether the streamed rows come from textures: `operands` if given (textures must then fit),
 * else on a CPU adapter when every table fits a texture. `tables` are the views to copy with
 * their floats per row; each holds `nb · T` rows.
 */
function useTextures(
  gpu: Gpu,
  args: AttentionShape,
  hs: number,
  tables: [View, number][],
): boolean {
  return useTextureOperands(gpu, {
    operands: args.operands,
    fit: hs % 4 === 0 &&
      tables.every(([view, cols]) => textureFits(gpu, view, { rows: args.B * args.T, cols })),
    what: `attention (C=${args.C}, NH=${args.NH}, T=${args.T})`,
    needs: "needs a head size that is a multiple of 4, C a multiple of 64, and B·T within the texture size",
  });
}

/** Floats per row of qkv: NH query heads and NKV key and value heads. */
function rowWidth({ C, NH, NKV = NH }: AttentionShape): number {
  return (C / NH) * (NH + 2 * NKV);
}

/** The scale of the scores of `shape`. */
function scoreScale({ C, NH, scale }: AttentionShape): number {
  return scale ?? 1 / Math.sqrt(C / NH);
}

/** The window of `shape` in the kernels' terms: T (nothing past the causal mask) when none or longer. */
function kernelWindow({ T, window = 0 }: AttentionShape): number {
  return window > 0 && window < T ? window : T;
}

function attentionUniforms(shape: AttentionShape): Uniforms {
  const { T, C, NH, NKV = NH } = shape;
  return new Uniforms().u32(T).u32(C).u32(NH).f32(scoreScale(shape)).u32(NKV).u32(kernelWindow(shape));
}

// ---------------------------------------------------------------------------------------------
// Forward

/** Arguments of {@linkcode attentionForward}. */
export interface AttentionForwardArgs extends AttentionShape {
  /** Output `(B,T,C)`, head h at channels h·hs..; overwritten. */
  out: View;
  /** Log-sum-exp of each query row's scaled, masked scores `(B,NH,T)`, saved for backward; overwritten. */
  lse: View;
  /** Input `(B,T,W)`, W = (NH + 2·NKV)·hs: the query heads, the key heads, the value heads. */
  qkv: View;
}

function shapeText({ B, T, C, NH, NKV = NH }: AttentionShape): string {
  return `(B=${B}, T=${T}, C=${C}, NH=${NH}${NKV === NH ? "" : `, NKV=${NKV}`})`;
}

/** Records the causal attention forward pass: `out (B,T,C)` and `lse (B,NH,T)` from `qkv (B,T,W)`. */
export function attentionForward(rec: Recorder, args: AttentionForwardArgs): void {
  const { B, T, C, NH } = args;
  const hs = headSize(args);
  const W = rowWidth(args);
  const shape = shapeText(args);
  requireLength(args.out, B * T * C, `attention forward out ${shape}`);
  requireLength(args.lse, B * NH * T, `attention forward lse ${shape}`);
  requireLength(args.qkv, B * T * W, `attention forward qkv ${shape}`);
  const sp = kernelSplit(args.split ?? attentionSplit(rec.gpu), hs, 2);
  const tex = useTextures(rec.gpu, args, hs, [[args.qkv, W]]);
  const code = forwardCode(hs, sp, tex);
  for (const [b0, nb] of batchChunks(rec.gpu, B, T * W)) {
    const qkv = slice(args.qkv, b0, nb, T * W);
    rec.dispatch({
      code,
      views: [slice(args.out, b0, nb, T * C), slice(args.lse, b0, nb, NH * T), ...(tex ? [] : [qkv])],
      textures: tex
        ? copyToScratchTextures(rec, "attention", [{ view: qkv, shape: { rows: nb * T, cols: W } }])
        : [],
      uniforms: attentionUniforms(args),
      groups: [Math.ceil(T / (sp.wg * sp.rows)), NH, nb],
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Backward

/**
 * Creates the scratch buffer {@linkcode attentionBackward} needs: `delta (B,NH,T)`. Create it
 * once (with the activations), not per step.
 */
export function createAttentionScratch(gpu: Gpu, shape: { B: number; T: number; NH: number }): View {
  return createView(gpu, shape.B * shape.NH * shape.T, "attention delta");
}

/** Arguments of {@linkcode attentionBackward}. */
export interface AttentionBackwardArgs extends AttentionShape {
  /** Input gradient `(B,T,W)`: dq, dk, dv in the layout of qkv; overwritten (not accumulated into). */
  dqkv: View;
  /** Output gradient `(B,T,C)`. */
  dout: View;
  /** The forward input `(B,T,W)`. */
  qkv: View;
  /** The forward output `(B,T,C)`. */
  out: View;
  /** The forward log-sum-exp `(B,NH,T)`. */
  lse: View;
  /**
   * Scratch `(B,NH,T)` for D_i = dout_i·out_i, written and then read by this pass; from
   * {@linkcode createAttentionScratch}.
   */
  delta: View;
}

/** Records the causal attention backward pass: `dqkv (B,T,W)` from `dout (B,T,C)`. */
export function attentionBackward(rec: Recorder, args: AttentionBackwardArgs): void {
  const { B, T, C, NH, NKV = NH } = args;
  const hs = headSize(args);
  const W = rowWidth(args);
  const shape = shapeText(args);
  requireLength(args.dqkv, B * T * W, `attention backward dqkv ${shape}`);
  requireLength(args.dout, B * T * C, `attention backward dout ${shape}`);
  requireLength(args.qkv, B * T * W, `attention backward qkv ${shape}`);
  requireLength(args.out, B * T * C, `attention backward out ${shape}`);
  requireLength(args.lse, B * NH * T, `attention backward lse ${shape}`);
  requireLength(args.delta, B * NH * T, `attention backward delta ${shape}`);
  const s = args.split ?? attentionSplit(rec.gpu);
  const dqSplit = kernelSplit(s, hs, 3);
  const tex = useTextures(rec.gpu, args, hs, [[args.qkv, W], [args.dout, C]]);
  const dq = dqCode(hs, dqSplit, tex);
  // dk and dv in one kernel, or in two that each hold less state.
  // With textures, lse and delta too, flat (read at every step of the dk/dv loop): whole texels
  // per batch chunk.
  const stats = tex && (NH * T) % 4 === 0 ? flatTexture(rec.gpu, (B * NH * T) / 4) ?? undefined : undefined;
  const dkv = (s.separateDkDv ? [["dk", 3], ["dv", 2]] as const : [["dkdv", 4]] as const).map(
    ([grads, held]) => {
      const sp = kernelSplit(s, hs, held);
      return { grads, sp, code: dkvCode(hs, sp, tex, { grads, stats }) };
    },
  );
  for (const [b0, nb] of batchChunks(rec.gpu, B, T * W)) {
    const at = (v: View, perBatch: number): View => slice(v, b0, nb, perBatch);
    const dqkv = at(args.dqkv, T * W);
    const qkv = at(args.qkv, T * W);
    const dout = at(args.dout, T * C);
    const lse = at(args.lse, NH * T);
    const delta = at(args.delta, NH * T);
    const uniforms = attentionUniforms(args);
    // dq runs per query head, dk and dv per key/value head.
    const groups = (sp: Split, heads: number): [number, number, number] => [
      Math.ceil(T / (sp.wg * sp.rows)),
      heads,
      nb,
    ];
    // dq and dk/dv read the qkv and dout textures, copied once for both.
    const textures = tex
      ? copyToScratchTextures(rec, "attention", [
        { view: qkv, shape: { rows: nb * T, cols: W } },
        { view: dout, shape: { rows: nb * T, cols: C } },
      ])
      : [];
    rec.dispatch({
      code: dq,
      views: [dqkv, delta, ...(tex ? [] : [qkv, dout]), at(args.out, T * C), lse],
      textures,
      uniforms,
      groups: groups(dqSplit, NH),
    });
    // lse and delta (written by the dq kernel just before) as flat textures, whole ones per chunk.
    const statTextures = stats
      ? [lse, delta].map((v, i) => {
        const t = scratchTexture(rec.gpu, `attention stats ${i}`, stats.texture);
        rec.copyFlatToTexture(v, t);
        return t;
      })
      : [];
    for (const { grads, sp, code } of dkv) {
      const dk = grads !== "dv";
      rec.dispatch({
        code,
        views: [dqkv, ...(tex ? [] : [qkv, dout]), ...(stats ? [] : [lse, ...(dk ? [delta] : [])])],
        textures: [...textures, ...(stats ? [statTextures[0], ...(dk ? [statTextures[1]] : [])] : [])],
        uniforms,
        groups: groups(sp, NKV),
      });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// CPU references

/** Result of {@linkcode attentionForwardCpu}. */
export interface AttentionForwardCpuResult {
  /** Output `(B,T,C)`. */
  out: Float64Array;
  /** Log-sum-exp of each query row `(B,NH,T)`. */
  lse: Float64Array;
  /** Attention probabilities `(B,NH,T,T)`, zero for the keys a query does not see. */
  att: Float64Array;
}

/** CPU reference of {@linkcode attentionForward}, in f64, materialising the probabilities. */
export function attentionForwardCpu(
  qkv: ArrayLike<number>,
  shape: AttentionShape,
): AttentionForwardCpuResult {
  const { B, T, C, NH } = shape;
  const hs = headSize(shape);
  const { q, k, v } = cpuOffsets(shape);
  const scale = scoreScale(shape), window = kernelWindow(shape);
  const out = new Float64Array(B * T * C);
  const lse = new Float64Array(B * NH * T);
  const att = new Float64Array(B * NH * T * T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let i = 0; i < T; i++) {
        const qi = q(b, i, h);
        const row = ((b * NH + h) * T + i) * T;
        // The keys query i sees: j0 .. i.
        const j0 = Math.max(0, i - window + 1);
        let max = -Infinity;
        for (let j = j0; j <= i; j++) {
          const kj = k(b, j, h);
          let s = 0;
          for (let d = 0; d < hs; d++) s += qkv[qi + d] * qkv[kj + d];
          att[row + j] = s * scale;
          max = Math.max(max, s * scale);
        }
        let sum = 0;
        for (let j = j0; j <= i; j++) sum += Math.exp(att[row + j] - max);
        for (let j = j0; j <= i; j++) att[row + j] = Math.exp(att[row + j] - max) / sum;
        lse[(b * NH + h) * T + i] = max + Math.log(sum);
        const oi = (b * T + i) * C + h * hs;
        for (let j = j0; j <= i; j++) {
          const vj = v(b, j, h);
          for (let d = 0; d < hs; d++) out[oi + d] += att[row + j] * qkv[vj + d];
        }
      }
    }
  }
  return { out, lse, att };
}

/**
 * Where the CPU references find head h's query (key, value) row of batch entry b, position t in
 * qkv: the key and value of query head h are those of its key/value head h / (NH/NKV).
 */
function cpuOffsets(
  shape: AttentionShape,
): Record<"q" | "k" | "v", (b: number, t: number, h: number) => number> {
  const { T, NH, NKV = NH } = shape;
  const hs = headSize(shape), W = rowWidth(shape), group = NH / NKV;
  return {
    q: (b, t, h) => (b * T + t) * W + h * hs,
    k: (b, t, h) => (b * T + t) * W + (NH + Math.floor(h / group)) * hs,
    v: (b, t, h) => (b * T + t) * W + (NH + NKV + Math.floor(h / group)) * hs,
  };
}

/**
 * CPU reference of {@linkcode attentionBackward}, in f64: `dqkv (B,T,W)` from `dout (B,T,C)`,
 * through the materialised probabilities and the plain softmax backward.
 */
export function attentionBackwardCpu(
  dout: ArrayLike<number>,
  qkv: ArrayLike<number>,
  shape: AttentionShape,
): Float64Array {
  const { B, T, C, NH } = shape;
  const hs = headSize(shape);
  const { q, k, v } = cpuOffsets(shape);
  const scale = scoreScale(shape);
  const { att } = attentionForwardCpu(qkv, shape);
  const dqkv = new Float64Array(B * T * rowWidth(shape));
  const datt = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let i = 0; i < T; i++) {
        const row = ((b * NH + h) * T + i) * T;
        const oi = (b * T + i) * C + h * hs;
        let dsum = 0;
        for (let j = 0; j <= i; j++) {
          const vj = v(b, j, h);
          let s = 0;
          for (let d = 0; d < hs; d++) {
            s += dout[oi + d] * qkv[vj + d];
            dqkv[vj + d] += att[row + j] * dout[oi + d];
          }
          datt[j] = s;
          dsum += att[row + j] * s;
        }
        const qi = q(b, i, h);
        for (let j = 0; j <= i; j++) {
          const ds = att[row + j] * (datt[j] - dsum) * scale;
          const kj = k(b, j, h);
          for (let d = 0; d < hs; d++) {
            dqkv[qi + d] += ds * qkv[kj + d];
            dqkv[kj + d] += ds * qkv[qi + d];
          }
        }
      }
    }
  }
  return dqkv;
}
