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
import {
  elementType,
  FLAT_INDEX_WGSL,
  grid,
  type Recorder,
  requireLength,
  Uniforms,
  vec4Elements,
  type View,
} from "./device.ts";

const WG = 256;
const GELU_SCALE = Math.sqrt(2 / Math.PI);

// The kernels work on elements of type `T`, f32 or vec4<f32> (see `vec4Elements`); this
// declares T and sigmoid(T). exp(±80) is finite in f32 and σ(80) already rounds to 1.
const elementWgsl = (vec4: boolean): string => /* wgsl */ `
alias T = ${elementType(vec4)};
const GELU_SCALE = ${GELU_SCALE};
fn sigmoid(z: T) -> T {
  return 1.0 / (1.0 + exp(-clamp(z, T(-80.0), T(80.0))));
}
${FLAT_INDEX_WGSL}`;

const forwardCode = (vec4: boolean): string => /* wgsl */ `
struct P { n: u32 }
@group(0) @binding(0) var<storage, read_write> out: array<T>;
@group(0) @binding(1) var<storage, read> inp: array<T>;
@group(0) @binding(2) var<uniform> p: P;
${elementWgsl(vec4)}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg, ${WG}u);
  if (i >= p.n) { return; }
  let x = inp[i];
  out[i] = x * sigmoid(2.0 * GELU_SCALE * (x + 0.044715 * x * x * x));
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
  requireLength(args.out, args.n, `gelu out (n=${args.n})`);
  requireLength(args.inp, args.n, `gelu inp (n=${args.n})`);
  const views = [args.out, args.inp];
  const { vec4, count } = vec4Elements(views, args.n);
  rec.dispatch({
    code: forwardCode(vec4),
    views,
    uniforms: new Uniforms().u32(count),
    groups: grid(rec.gpu, count, WG),
  });
}

const backwardCode = (vec4: boolean): string => /* wgsl */ `
struct P { n: u32 }
@group(0) @binding(0) var<storage, read_write> dinp: array<T>;
@group(0) @binding(1) var<storage, read> inp: array<T>;
@group(0) @binding(2) var<storage, read> dout: array<T>;
@group(0) @binding(3) var<uniform> p: P;
${elementWgsl(vec4)}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg, ${WG}u);
  if (i >= p.n) { return; }
  let x = inp[i];
  let x2 = x * x;
  let z = 2.0 * GELU_SCALE * (x + 0.044715 * x2 * x);
  let s = sigmoid(z);
  let du = GELU_SCALE * (1.0 + 3.0 * 0.044715 * x2);
  // d/dx [x·σ(2u)] = σ(2u) + 2·x·σ(2u)·σ(-2u)·du/dx
  dinp[i] = (s + 2.0 * x * s * sigmoid(-z) * du) * dout[i];
}`;

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
  requireLength(args.dinp, args.n, `gelu backward dinp (n=${args.n})`);
  requireLength(args.inp, args.n, `gelu backward inp (n=${args.n})`);
  requireLength(args.dout, args.n, `gelu backward dout (n=${args.n})`);
  const views = [args.dinp, args.inp, args.dout];
  const { vec4, count } = vec4Elements(views, args.n);
  rec.dispatch({
    code: backwardCode(vec4),
    views,
    uniforms: new Uniforms().u32(count),
    groups: grid(rec.gpu, count, WG),
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
