/**
 * Layer normalisation over the last dimension (GPT-2), forward and backward, with CPU references.
 *
 *   forward    mean = Σ_c x / C,  var = Σ_c (x - mean)² / C  (biased, as PyTorch)
 *              rstd = 1 / √(var + eps),  n = (x - mean)·rstd,  out = n·w + b
 *   backward   dn = w·dout
 *              dinp += (dn - mean_c(dn) - n·mean_c(dn·n))·rstd
 *              dw   += Σ_rows dout·n,  db += Σ_rows dout
 *
 * The kernels are shared with RMSNorm (`_norm.ts`).
 *
 * @module
 */
import type { ColumnSplit } from "./column_sums.ts";
import type { Recorder, View } from "./device.ts";
import type { Operands } from "./scratch.ts";
import { normBackward, normForward } from "./_norm.ts";

/** Arguments of {@linkcode layernormForward}. */
export interface LayernormForwardArgs {
  /** Output `(N,C)`. */
  out: View;
  /** Saved row means `(N)`, for the backward pass. */
  mean: View;
  /** Saved reciprocal standard deviations `(N)`, for the backward pass. */
  rstd: View;
  /** Input `(N,C)`. */
  inp: View;
  /** Scale `(C)`. */
  weight: View;
  /** Shift `(C)`. */
  bias: View;
  /** Rows (B·T). */
  N: number;
  /** Channels normalised over. */
  C: number;
  /** Added to the variance before the square root (GPT-2: 1e-5). */
  eps: number;
  /**
   * Where the rows and parameters are read from: storage buffers, or texture copies. Defaults to
   * textures on a CPU adapter when C is a multiple of 64, else buffers.
   */
  operands?: Operands;
}

/** Records `out = (inp - mean)·rstd·weight + bias` per row, saving `mean` and `rstd`. */
export function layernormForward(rec: Recorder, args: LayernormForwardArgs): void {
  normForward(rec, "layernorm", args);
}

/** Arguments of {@linkcode layernormBackward}. */
export interface LayernormBackwardArgs {
  /** Input gradient `(N,C)`, accumulated into (the residual stream's gradient). */
  dinp: View;
  /** Scale gradient `(C)`, accumulated into. */
  dweight: View;
  /** Shift gradient `(C)`, accumulated into. */
  dbias: View;
  /** Output gradient `(N,C)`. */
  dout: View;
  /** The forward input `(N,C)`. */
  inp: View;
  /** Scale `(C)`. */
  weight: View;
  /** Row means `(N)` saved by the forward pass. */
  mean: View;
  /** Reciprocal standard deviations `(N)` saved by the forward pass. */
  rstd: View;
  /** Rows (B·T). */
  N: number;
  /** Channels. */
  C: number;
  /** Work split of the parameter-gradient sums; defaults to `columnSplit` of the GPU. */
  split?: ColumnSplit;
  /**
   * Where the kernels read the rows and the weight from (see
   * {@linkcode LayernormForwardArgs.operands}).
   */
  operands?: Operands;
}

/** Records `dinp += ∂L/∂inp`, `dweight += ∂L/∂weight`, `dbias += ∂L/∂bias` (deterministic). */
export function layernormBackward(rec: Recorder, args: LayernormBackwardArgs): void {
  normBackward(rec, "layernorm", args);
}

// ---------------------------------------------------------------------------------------------
// CPU references

/** Parameters and shape of {@linkcode layernormForwardCpu}. */
export interface LayernormForwardCpuArgs {
  /** Scale `(C)`. */
  weight: ArrayLike<number>;
  /** Shift `(C)`. */
  bias: ArrayLike<number>;
  /** Rows. */
  N: number;
  /** Channels. */
  C: number;
  /** Added to the variance. */
  eps: number;
}

/** Result of {@linkcode layernormForwardCpu}. */
export interface LayernormForwardCpuResult {
  /** Output `(N,C)`. */
  out: Float64Array;
  /** Row means `(N)`. */
  mean: Float64Array;
  /** Reciprocal standard deviations `(N)`. */
  rstd: Float64Array;
}

/** CPU reference of {@linkcode layernormForward} for `inp (N,C)`, in f64. */
export function layernormForwardCpu(
  inp: ArrayLike<number>,
  args: LayernormForwardCpuArgs,
): LayernormForwardCpuResult {
  const { N, C } = args;
  const out = new Float64Array(N * C);
  const mean = new Float64Array(N);
  const rstd = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    let m = 0;
    for (let c = 0; c < C; c++) m += inp[i * C + c];
    m /= C;
    let v = 0;
    for (let c = 0; c < C; c++) v += (inp[i * C + c] - m) ** 2;
    const r = 1 / Math.sqrt(v / C + args.eps);
    for (let c = 0; c < C; c++) {
      out[i * C + c] = (inp[i * C + c] - m) * r * args.weight[c] + args.bias[c];
    }
    mean[i] = m;
    rstd[i] = r;
  }
  return { out, mean, rstd };
}

/** Forward values and shape of {@linkcode layernormBackwardCpu}. */
export interface LayernormBackwardCpuArgs {
  /** The forward input `(N,C)`. */
  inp: ArrayLike<number>;
  /** Scale `(C)`. */
  weight: ArrayLike<number>;
  /** Row means `(N)`. */
  mean: ArrayLike<number>;
  /** Reciprocal standard deviations `(N)`. */
  rstd: ArrayLike<number>;
  /** Rows. */
  N: number;
  /** Channels. */
  C: number;
}

/** Result of {@linkcode layernormBackwardCpu}: the gradients themselves, not accumulated. */
export interface LayernormBackwardCpuResult {
  /** Input gradient `(N,C)`. */
  dinp: Float64Array;
  /** Scale gradient `(C)`. */
  dweight: Float64Array;
  /** Shift gradient `(C)`. */
  dbias: Float64Array;
}

/** CPU reference of {@linkcode layernormBackward} for the output gradient `dout (N,C)`, in f64. */
export function layernormBackwardCpu(
  dout: ArrayLike<number>,
  args: LayernormBackwardCpuArgs,
): LayernormBackwardCpuResult {
  const { inp, weight, N, C } = args;
  const dinp = new Float64Array(N * C);
  const dweight = new Float64Array(C);
  const dbias = new Float64Array(C);
  for (let i = 0; i < N; i++) {
    const m = args.mean[i];
    const r = args.rstd[i];
    let dnMean = 0;
    let dnNMean = 0;
    for (let c = 0; c < C; c++) {
      const n = (inp[i * C + c] - m) * r;
      const dn = weight[c] * dout[i * C + c];
      dnMean += dn;
      dnNMean += dn * n;
      dweight[c] += dout[i * C + c] * n;
      dbias[c] += dout[i * C + c];
    }
    dnMean /= C;
    dnNMean /= C;
    for (let c = 0; c < C; c++) {
      const n = (inp[i * C + c] - m) * r;
      dinp[i * C + c] = (weight[c] * dout[i * C + c] - dnMean - n * dnNMean) * r;
    }
  }
  return { dinp, dweight, dbias };
}
