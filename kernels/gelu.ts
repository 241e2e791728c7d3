/**
 * GELU with GPT-2's tanh approximation, forward and backward, with CPU references.
 *
 *   forward    u = √(2/π)·(x + 0.044715·x³),  out = 0.5·x·(1 + tanh u)
 *   backward   dinp = (0.5·(1 + tanh u) + 0.5·x·(1 - tanh² u)·du/dx)·dout   (overwrites dinp)
 *
 * The kernels use the identity 0.5·(1 + tanh u) = σ(2u) with σ the logistic function: WGSL's
 * `tanh` may be computed from `exp(2u)` and overflow to NaN for large |x|, whereas σ with its
 * argument clamped stays finite, and `1 - σ(z)` is computed as `σ(-z)` so the negative tail
 * keeps its relative precision.
 *
 * @module
 */
import type { Recorder, View } from "./device.ts";
import { dispatchElementwise, SIGMOID_WGSL } from "./elementwise.ts";

const GELU_SCALE = Math.sqrt(2 / Math.PI);

/**
 * WGSL `gelu(x)` and its derivative `gelu_grad(x)` on elements of type `T` (f32 or vec4), for the
 * element-wise kernels: GELU itself and the GeGLU gate (`glu.ts`).
 */
export const GELU_WGSL: string = /* wgsl */ `
const GELU_SCALE = ${GELU_SCALE};
${SIGMOID_WGSL}
fn gelu(x: T) -> T {
  return x * sigmoid(2.0 * GELU_SCALE * (x + 0.044715 * x * x * x));
}
// d/dx [x·σ(2u)] = σ(2u) + 2·x·σ(2u)·σ(-2u)·du/dx
fn gelu_grad(x: T) -> T {
  let x2 = x * x;
  let z = 2.0 * GELU_SCALE * (x + 0.044715 * x2 * x);
  let s = sigmoid(z);
  return s + 2.0 * x * s * sigmoid(-z) * GELU_SCALE * (1.0 + 3.0 * 0.044715 * x2);
}`;

/** Arguments of {@linkcode geluForward}. */
export interface GeluForwardArgs {
  /** Output `(n)`. */
  out: View;
  /** Input `(n)`. */
  inp: View;
  /** Elements. */
  n: number;
}

/** Records `out = gelu(inp)` element-wise. */
export function geluForward(rec: Recorder, args: GeluForwardArgs): void {
  dispatchElementwise(rec, {
    what: "gelu",
    writes: { out: args.out },
    reads: { inp: args.inp },
    n: args.n,
    helpers: GELU_WGSL,
    body: "  out[i] = gelu(inp);",
  });
}

/** Arguments of {@linkcode geluBackward}. */
export interface GeluBackwardArgs {
  /** Input gradient `(n)`, overwritten. */
  dinp: View;
  /** The forward input `(n)`. */
  inp: View;
  /** Output gradient `(n)`. */
  dout: View;
  /** Elements. */
  n: number;
}

/** Records `dinp = gelu'(inp)·dout` element-wise (overwrites `dinp`). */
export function geluBackward(rec: Recorder, args: GeluBackwardArgs): void {
  dispatchElementwise(rec, {
    what: "gelu backward",
    writes: { dinp: args.dinp },
    reads: { inp: args.inp, dout: args.dout },
    n: args.n,
    helpers: GELU_WGSL,
    body: "  dinp[i] = gelu_grad(inp) * dout;",
  });
}

// ---------------------------------------------------------------------------------------------
// CPU references

/** CPU reference of {@linkcode geluForward}, in f64 with the tanh form as written by GPT-2. */
export function geluForwardCpu(inp: ArrayLike<number>): Float64Array {
  const out = new Float64Array(inp.length);
  for (let i = 0; i < inp.length; i++) {
    const x = inp[i];
    out[i] = 0.5 * x * (1 + Math.tanh(GELU_SCALE * (x + 0.044715 * x ** 3)));
  }
  return out;
}

/** CPU reference of {@linkcode geluBackward}: `gelu'(inp)·dout`, in f64. */
export function geluBackwardCpu(inp: ArrayLike<number>, dout: ArrayLike<number>): Float64Array {
  const out = new Float64Array(inp.length);
  for (let i = 0; i < inp.length; i++) {
    const x = inp[i];
    const t = Math.tanh(GELU_SCALE * (x + 0.044715 * x ** 3));
    const du = GELU_SCALE * (1 + 3 * 0.044715 * x * x);
    out[i] = (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du) * dout[i];
  }
  return out;
}
