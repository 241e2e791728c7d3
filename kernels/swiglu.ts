/**
 * The SwiGLU gate of LLaMA's MLP, forward and backward, with CPU references:
 * `mlp(x) = down(silu(gate(x)) · up(x))`, of which this is the element-wise middle.
 *
 *   forward    out = silu(g)·u,  silu(g) = g·σ(g)
 *   backward   dg = dout·u·σ(g)·(1 + g·σ(-g))        du = dout·silu(g)      (both overwritten)
 *
 * σ takes its argument clamped to ±80 (exp(80) is finite in f32, σ(80) rounds to 1), and
 * `1 - σ(g)` is computed as `σ(-g)` so the negative tail keeps its relative precision.
 *
 * @module
 */
import type { Recorder, View } from "./device.ts";
import { dispatchElementwise, SIGMOID_WGSL } from "./elementwise.ts";

/** Arguments of {@linkcode swigluForward}. */
export interface SwigluForwardArgs {
  /** Output `(n)`, e.g. `(BT,H)`. */
  out: View;
  /** Gate projection `(n)`. */
  gate: View;
  /** Up projection `(n)`. */
  up: View;
  /** Elements. */
  n: number;
}

/** Records `out = silu(gate)·up` element-wise. */
export function swigluForward(rec: Recorder, args: SwigluForwardArgs): void {
  dispatchElementwise(rec, {
    what: "swiglu",
    writes: { out: args.out },
    reads: { gate: args.gate, up: args.up },
    n: args.n,
    helpers: SIGMOID_WGSL,
    body: /* wgsl */ `
  out[i] = gate * sigmoid(gate) * up;`,
  });
}

/** Arguments of {@linkcode swigluBackward}. */
export interface SwigluBackwardArgs {
  /** Gradient of the gate projection `(n)`, overwritten. */
  dgate: View;
  /** Gradient of the up projection `(n)`, overwritten; a different buffer from `dgate`. */
  dup: View;
  /** The forward gate input `(n)`. */
  gate: View;
  /** The forward up input `(n)`. */
  up: View;
  /** Output gradient `(n)`. */
  dout: View;
  /** Elements. */
  n: number;
}

/** Records `dgate = ∂out/∂gate·dout` and `dup = ∂out/∂up·dout` element-wise (overwrites both). */
export function swigluBackward(rec: Recorder, args: SwigluBackwardArgs): void {
  dispatchElementwise(rec, {
    what: "swiglu backward",
    writes: { dgate: args.dgate, dup: args.dup },
    reads: { gate: args.gate, up: args.up, dout: args.dout },
    n: args.n,
    helpers: SIGMOID_WGSL,
    body: /* wgsl */ `
  let s = sigmoid(gate);
  dgate[i] = dout * up * s * (1.0 + gate * sigmoid(-gate));
  dup[i] = dout * gate * s;`,
  });
}

// ---------------------------------------------------------------------------------------------
// CPU references

const sigmoidCpu = (z: number): number => 1 / (1 + Math.exp(-z));

/** CPU reference of {@linkcode swigluForward}: `silu(gate)·up`, in f64. */
export function swigluForwardCpu(gate: ArrayLike<number>, up: ArrayLike<number>): Float64Array {
  const out = new Float64Array(gate.length);
  for (let i = 0; i < gate.length; i++) out[i] = gate[i] * sigmoidCpu(gate[i]) * up[i];
  return out;
}

/** CPU reference of {@linkcode swigluBackward}: the gradients of gate and up, in f64. */
export function swigluBackwardCpu(
  gate: ArrayLike<number>,
  up: ArrayLike<number>,
  dout: ArrayLike<number>,
): { dgate: Float64Array; dup: Float64Array } {
  const dgate = new Float64Array(gate.length);
  const dup = new Float64Array(gate.length);
  for (let i = 0; i < gate.length; i++) {
    const s = sigmoidCpu(gate[i]);
    dgate[i] = dout[i] * up[i] * s * (1 + gate[i] * (1 - s));
    dup[i] = dout[i] * gate[i] * s;
  }
  return { dgate, dup };
}
