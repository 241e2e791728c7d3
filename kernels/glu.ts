/**
 * The gated middle of the LLaMA-like MLPs, `mlp(x) = down(act(gate(x)) · up(x))`, forward and
 * backward, with CPU references, for the two activations the families use:
 *
 *   silu        SwiGLU: LLaMA, Qwen, Mistral, Phi-3 (Hugging Face `hidden_act: "silu"`)
 *   gelu_tanh   GeGLU: Gemma (`hidden_activation: "gelu_pytorch_tanh"`), GELU's tanh form (gelu.ts)
 *
 *   forward    out = act(g)·u
 *   backward   dg = dout·u·act'(g)        du = dout·act(g)        (both overwritten)
 *
 *   silu(g) = g·σ(g),  silu'(g) = σ(g)·(1 + g·σ(-g))
 *
 * σ takes its argument clamped to ±80 (exp(80) is finite in f32, σ(80) rounds to 1), and
 * `1 - σ(g)` is computed as `σ(-g)` so the negative tail keeps its relative precision.
 *
 * @module
 */
import type { Recorder, View } from "./device.ts";
import { dispatchElementwise, SIGMOID_WGSL } from "./elementwise.ts";
import { GELU_WGSL, geluBackwardCpu, geluForwardCpu } from "./gelu.ts";

/** The activation of the gate: SwiGLU's SiLU or GeGLU's tanh-approximated GELU. */
export type GluKind = "silu" | "gelu_tanh";

const SILU_WGSL = /* wgsl */ `
${SIGMOID_WGSL}
fn silu(g: T) -> T {
  return g * sigmoid(g);
}
fn silu_grad(g: T) -> T {
  return sigmoid(g) * (1.0 + g * sigmoid(-g));
}`;

// Each kind's name in errors, its WGSL helpers and the names of act and act' in them.
const KINDS: Record<GluKind, { what: string; helpers: string; act: string; grad: string }> = {
  silu: { what: "swiglu", helpers: SILU_WGSL, act: "silu", grad: "silu_grad" },
  gelu_tanh: { what: "geglu", helpers: GELU_WGSL, act: "gelu", grad: "gelu_grad" },
};

/** Arguments of {@linkcode gluForward}. */
export interface GluForwardArgs {
  /** The gate's activation. */
  kind: GluKind;
  /** Output `(n)`, e.g. `(BT,H)`. */
  out: View;
  /** Gate projection `(n)`. */
  gate: View;
  /** Up projection `(n)`. */
  up: View;
  /** Elements. */
  n: number;
}

/** Records `out = act(gate)·up` element-wise. */
export function gluForward(rec: Recorder, args: GluForwardArgs): void {
  const k = KINDS[args.kind];
  dispatchElementwise(rec, {
    what: k.what,
    writes: { out: args.out },
    reads: { gate: args.gate, up: args.up },
    n: args.n,
    helpers: k.helpers,
    body: `  out[i] = ${k.act}(gate) * up;`,
  });
}

/** Arguments of {@linkcode gluBackward}. */
export interface GluBackwardArgs {
  /** The gate's activation. */
  kind: GluKind;
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
export function gluBackward(rec: Recorder, args: GluBackwardArgs): void {
  const k = KINDS[args.kind];
  dispatchElementwise(rec, {
    what: `${k.what} backward`,
    writes: { dgate: args.dgate, dup: args.dup },
    reads: { gate: args.gate, up: args.up, dout: args.dout },
    n: args.n,
    helpers: k.helpers,
    body: /* wgsl */ `
  dgate[i] = dout * up * ${k.grad}(gate);
  dup[i] = dout * ${k.act}(gate);`,
  });
}

// ---------------------------------------------------------------------------------------------
// CPU references

function siluForwardCpu(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (g) => g / (1 + Math.exp(-g)));
}

function siluBackwardCpu(x: ArrayLike<number>, dout: ArrayLike<number>): Float64Array {
  return Float64Array.from(x, (g, i) => {
    const s = 1 / (1 + Math.exp(-g));
    return dout[i] * s * (1 + g * (1 - s));
  });
}

// act(x) and act'(x)·dout of each kind, in f64.
const CPU: Record<
  GluKind,
  {
    act: (x: ArrayLike<number>) => Float64Array;
    grad: (x: ArrayLike<number>, dout: ArrayLike<number>) => Float64Array;
  }
> = {
  silu: { act: siluForwardCpu, grad: siluBackwardCpu },
  gelu_tanh: { act: geluForwardCpu, grad: geluBackwardCpu },
};

/** CPU reference of {@linkcode gluForward}: `act(gate)·up`, in f64. */
export function gluForwardCpu(
  kind: GluKind,
  x: { gate: ArrayLike<number>; up: ArrayLike<number> },
): Float64Array {
  return CPU[kind].act(x.gate).map((a, i) => a * x.up[i]);
}

/** CPU reference of {@linkcode gluBackward}: the gradients of gate and up, in f64. */
export function gluBackwardCpu(
  kind: GluKind,
  x: { gate: ArrayLike<number>; up: ArrayLike<number>; dout: ArrayLike<number> },
): { dgate: Float64Array; dup: Float64Array } {
  const { gate, up, dout } = x;
  return {
    dgate: CPU[kind].grad(gate, Float64Array.from(dout, (d, i) => d * up[i])),
    dup: CPU[kind].act(gate).map((a, i) => a * dout[i]),
  };
}
