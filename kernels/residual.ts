/**
 * The residual connection, forward and backward, with CPU references.
 *
 *   forward    out = a + b
 *   backward   da += dout,  db += dout
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

const forwardCode = (vec4: boolean): string => /* wgsl */ `
struct P { n: u32 }
@group(0) @binding(0) var<storage, read_write> out: array<${elementType(vec4)}>;
@group(0) @binding(1) var<storage, read> a: array<${elementType(vec4)}>;
@group(0) @binding(2) var<storage, read> b: array<${elementType(vec4)}>;
@group(0) @binding(3) var<uniform> p: P;
${FLAT_INDEX_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg, ${WG}u);
  if (i >= p.n) { return; }
  out[i] = a[i] + b[i];
}`;

/** Arguments of {@linkcode residualForward}. */
export interface ResidualForwardArgs {
  /** Output `(n)`. */
  out: View;
  /** First summand `(n)`. */
  a: View;
  /** Second summand `(n)`. */
  b: View;
  /** Elements. */
  n: number;
}

/** Records `out = a + b` element-wise. */
export function residualForward(rec: Recorder, args: ResidualForwardArgs): void {
  requireLength(args.out, args.n, `residual out (n=${args.n})`);
  requireLength(args.a, args.n, `residual a (n=${args.n})`);
  requireLength(args.b, args.n, `residual b (n=${args.n})`);
  const views = [args.out, args.a, args.b];
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
@group(0) @binding(0) var<storage, read_write> da: array<${elementType(vec4)}>;
@group(0) @binding(1) var<storage, read_write> db: array<${elementType(vec4)}>;
@group(0) @binding(2) var<storage, read> dout: array<${elementType(vec4)}>;
@group(0) @binding(3) var<uniform> p: P;
${FLAT_INDEX_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg, ${WG}u);
  if (i >= p.n) { return; }
  let d = dout[i];
  da[i] += d;
  db[i] += d;
}`;

/** Arguments of {@linkcode residualBackward}. */
export interface ResidualBackwardArgs {
  /** Gradient of the first summand `(n)`, accumulated into. */
  da: View;
  /** Gradient of the second summand `(n)`, accumulated into; a different buffer from `da`. */
  db: View;
  /** Output gradient `(n)`. */
  dout: View;
  /** Elements. */
  n: number;
}

/** Records `da += dout` and `db += dout` element-wise. */
export function residualBackward(rec: Recorder, args: ResidualBackwardArgs): void {
  requireLength(args.da, args.n, `residual backward da (n=${args.n})`);
  requireLength(args.db, args.n, `residual backward db (n=${args.n})`);
  requireLength(args.dout, args.n, `residual backward dout (n=${args.n})`);
  const views = [args.da, args.db, args.dout];
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

/** CPU reference of {@linkcode residualForward}: `a + b`, in f64. */
export function residualForwardCpu(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] + b[i];
  return out;
}

/**
 * CPU reference of {@linkcode residualBackward}: the gradient of either summand, which is
 * `dout` itself (the GPU kernel adds it into both).
 */
export function residualBackwardCpu(dout: ArrayLike<number>): Float64Array {
  return Float64Array.from(dout);
}
