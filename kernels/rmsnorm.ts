/**
 * RMS normalisation over the last dimension (LLaMA), forward and backward, with CPU references.
 *
 *   forward    rstd = 1 / √(Σ_c x² / C + eps),  n = x·rstd,  out = n·s     (no mean, no bias)
 *   backward   dn = s·dout
 *              dinp += (dn - n·mean_c(dn·n))·rstd
 *              dweight += Σ_rows dout·n
 *
 * with the scale s = offset + weight: the weight itself (offset 0), or Gemma's `x̂·(1 + w)`
 * (offset 1), whose weight gradient is unchanged.
 *
 * Per-head q/k norms (Qwen3, Gemma 3 `q_norm`, `k_norm`) are this same norm: queries `(BT, NH·hs)`
 * are `(BT·NH, hs)` rows of one head each, so `N = BT·NH, C = hs` normalises every head's slice
 * with the one `(hs)` weight shared by all heads, and `dweight` sums over rows and heads alike.
 *
 * The kernels are shared with LayerNorm (`_norm.ts`).
 *
 * @module
 */
import type { ColumnSplit } from "./column_sums.ts";
import type { Recorder, View } from "./device.ts";
import type { Operands } from "./scratch.ts";
import { normBackward, normForward } from "./_norm.ts";

/** Arguments of {@linkcode rmsnormForward}. */
export interface RmsnormForwardArgs {
  /** Output `(N,C)`. */
  out: View;
  /** Saved reciprocal root-mean-squares `(N)`, for the backward pass. */
  rstd: View;
  /** Input `(N,C)`. */
  inp: View;
  /** Scale `(C)`. */
  weight: View;
  /** Rows (B·T). */
  N: number;
  /** Channels normalised over. */
  C: number;
  /** Added to the mean square before the square root (`rms_norm_eps`). */
  eps: number;
  /** Added to the weight to give the scale: 0 (the default) or 1 for Gemma's `1 + w`. */
  offset?: number;
  /** Where the rows and the weight are read from; textures by default on a CPU adapter when C is a multiple of 64. */
  operands?: Operands;
}

/** Records `out = inp·rstd·(offset + weight)` per row, saving `rstd`. */
export function rmsnormForward(rec: Recorder, args: RmsnormForwardArgs): void {
  normForward(rec, "rmsnorm", args);
}

/** Arguments of {@linkcode rmsnormBackward}. */
export interface RmsnormBackwardArgs {
  /** Input gradient `(N,C)`, accumulated into (the residual stream's gradient). */
  dinp: View;
  /** Scale gradient `(C)`, accumulated into. */
  dweight: View;
  /** Output gradient `(N,C)`. */
  dout: View;
  /** The forward input `(N,C)`. */
  inp: View;
  /** Scale `(C)`. */
  weight: View;
  /** Reciprocal root-mean-squares `(N)` saved by the forward pass. */
  rstd: View;
  /** Rows (B·T). */
  N: number;
  /** Channels. */
  C: number;
  /** Added to the weight to give the scale, as in the forward pass (default 0). */
  offset?: number;
  /** Work split of the weight-gradient sums; defaults to `columnSplit` of the GPU. */
  split?: ColumnSplit;
  /** Where the kernels read the rows and the weight from (see {@linkcode RmsnormForwardArgs.operands}). */
  operands?: Operands;
}

/** Records `dinp += ∂L/∂inp` and `dweight += ∂L/∂weight` (deterministic). */
export function rmsnormBackward(rec: Recorder, args: RmsnormBackwardArgs): void {
  normBackward(rec, "rmsnorm", args);
}

// ---------------------------------------------------------------------------------------------
// CPU references

/** Result of {@linkcode rmsnormForwardCpu}. */
export interface RmsnormForwardCpuResult {
  /** Output `(N,C)`. */
  out: Float64Array;
  /** Reciprocal root-mean-squares `(N)`. */
  rstd: Float64Array;
}

/** CPU reference of {@linkcode rmsnormForward} for `inp (N,C)`, in f64. */
export function rmsnormForwardCpu(
  inp: ArrayLike<number>,
  args: { weight: ArrayLike<number>; N: number; C: number; eps: number; offset?: number },
): RmsnormForwardCpuResult {
  const { N, C } = args;
  const offset = args.offset ?? 0;
  const out = new Float64Array(N * C);
  const rstd = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    let ss = 0;
    for (let c = 0; c < C; c++) ss += inp[i * C + c] ** 2;
    const r = 1 / Math.sqrt(ss / C + args.eps);
    for (let c = 0; c < C; c++) out[i * C + c] = inp[i * C + c] * r * (offset + args.weight[c]);
    rstd[i] = r;
  }
  return { out, rstd };
}

/** Result of {@linkcode rmsnormBackwardCpu}: the gradients themselves, not accumulated. */
export interface RmsnormBackwardCpuResult {
  /** Input gradient `(N,C)`. */
  dinp: Float64Array;
  /** Scale gradient `(C)`. */
  dweight: Float64Array;
}

/** CPU reference of {@linkcode rmsnormBackward} for the output gradient `dout (N,C)`, in f64. */
export function rmsnormBackwardCpu(
  dout: ArrayLike<number>,
  args: {
    inp: ArrayLike<number>;
    weight: ArrayLike<number>;
    rstd: ArrayLike<number>;
    N: number;
    C: number;
    offset?: number;
  },
): RmsnormBackwardCpuResult {
  const { inp, weight, N, C } = args;
  const offset = args.offset ?? 0;
  const dinp = new Float64Array(N * C);
  const dweight = new Float64Array(C);
  for (let i = 0; i < N; i++) {
    const r = args.rstd[i];
    let dnN = 0;
    for (let c = 0; c < C; c++) {
      const n = inp[i * C + c] * r;
      dnN += (offset + weight[c]) * dout[i * C + c] * n;
      dweight[c] += dout[i * C + c] * n;
    }
    dnN /= C;
    for (let c = 0; c < C; c++) {
      const n = inp[i * C + c] * r;
      dinp[i * C + c] = ((offset + weight[c]) * dout[i * C + c] - n * dnN) * r;
    }
  }
  return { dinp, dweight };
}
