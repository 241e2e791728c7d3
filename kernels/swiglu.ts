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
import {
  elementType,
  ELEMENTWISE_WG,
  FLAT_INDEX_WGSL,
  grid,
  type Recorder,
  requireLength,
  Uniforms,
  vec4Elements,
  type View,
} from "./device.ts";

// The kernels work on elements of type `T`, f32 or vec4<f32> (see `vec4Elements`).
const elementWgsl = (vec4: boolean): string => /* wgsl */ `
alias T = ${elementType(vec4)};
fn sigmoid(z: T) -> T {
  return 1.0 / (1.0 + exp(-clamp(z, T(-80.0), T(80.0))));
}
${FLAT_INDEX_WGSL}`;

const forwardCode = (vec4: boolean): string => /* wgsl */ `
struct P { n: u32 }
@group(0) @binding(0) var<storage, read_write> out: array<T>;
@group(0) @binding(1) var<storage, read> gate: array<T>;
@group(0) @binding(2) var<storage, read> up: array<T>;
@group(0) @binding(3) var<uniform> p: P;
${elementWgsl(vec4)}
@compute @workgroup_size(${ELEMENTWISE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg, ${ELEMENTWISE_WG}u);
  if (i >= p.n) { return; }
  let g = gate[i];
  out[i] = g * sigmoid(g) * up[i];
}`;

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
  requireLength(args.out, args.n, `swiglu out (n=${args.n})`);
  requireLength(args.gate, args.n, `swiglu gate (n=${args.n})`);
  requireLength(args.up, args.n, `swiglu up (n=${args.n})`);
  const views = [args.out, args.gate, args.up];
  const { vec4, count } = vec4Elements(views, args.n);
  rec.dispatch({
    code: forwardCode(vec4),
    views,
    uniforms: new Uniforms().u32(count),
    groups: grid(rec.gpu, count, ELEMENTWISE_WG),
  });
}

const backwardCode = (vec4: boolean): string => /* wgsl */ `
struct P { n: u32 }
@group(0) @binding(0) var<storage, read_write> dgate: array<T>;
@group(0) @binding(1) var<storage, read_write> dup: array<T>;
@group(0) @binding(2) var<storage, read> gate: array<T>;
@group(0) @binding(3) var<storage, read> up: array<T>;
@group(0) @binding(4) var<storage, read> dout: array<T>;
@group(0) @binding(5) var<uniform> p: P;
${elementWgsl(vec4)}
@compute @workgroup_size(${ELEMENTWISE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg, ${ELEMENTWISE_WG}u);
  if (i >= p.n) { return; }
  let g = gate[i];
  let s = sigmoid(g);
  let d = dout[i];
  dgate[i] = d * up[i] * s * (1.0 + g * sigmoid(-g));
  dup[i] = d * g * s;
}`;

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
  for (
    const [name, view] of Object.entries({ dgate: args.dgate, dup: args.dup, gate: args.gate, up: args.up })
  ) {
    requireLength(view, args.n, `swiglu backward ${name} (n=${args.n})`);
  }
  requireLength(args.dout, args.n, `swiglu backward dout (n=${args.n})`);
  const views = [args.dgate, args.dup, args.gate, args.up, args.dout];
  const { vec4, count } = vec4Elements(views, args.n);
  rec.dispatch({
    code: backwardCode(vec4),
    views,
    uniforms: new Uniforms().u32(count),
    groups: grid(rec.gpu, count, ELEMENTWISE_WG),
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
