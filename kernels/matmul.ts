/**
 * Matrix multiplication, the three products of a linear layer, and their CPU references.
 *
 * `C (M,N) = op(A) · op(B) [+ bias] [+ C]`, where `op(A)` is `A (M,K)` or, transposed, `Aᵀ` of
 * `A (K,M)`; likewise `op(B)` is `B (K,N)` or `Bᵀ` of `B (N,K)`. A linear layer with weight
 * `W (K,N)` (the Hugging Face Conv1D `[in, out]` layout) is then:
 *
 *   forward    Y  = X · W + b        (M,N) = (M,K)·(K,N)
 *   backward   dX += dY · Wᵀ         (M,K) = (M,N)·(N,K)ᵀ
 *              dW += Xᵀ · dY         (K,N) = (M,K)ᵀ·(M,N)
 *              db += Σ_rows dY       (N)
 *
 * @module
 */
import { ELEMENTWISE_WG, type Recorder, requireLength, Uniforms, type View } from "./device.ts";

/** Arguments of {@linkcode matmul}. */
export interface MatmulArgs {
  /** Output `C (M,N)`. */
  out: View;
  /** Left operand: `(M,K)`, or `(K,M)` when `transA`. */
  a: View;
  /** Right operand: `(K,N)`, or `(N,K)` when `transB`. */
  b: View;
  /** Optional bias `(N)` added to every row. */
  bias?: View;
  /** Rows of C. */
  M: number;
  /** Columns of C. */
  N: number;
  /** Inner dimension. */
  K: number;
  /** Read A transposed. */
  transA?: boolean;
  /** Read B transposed. */
  transB?: boolean;
  /** Add into C instead of overwriting it. */
  accumulate?: boolean;
}

// Tiling: a workgroup of 16x16 threads computes a 64x64 tile of C, each thread a 4x4 block held
// in registers; A and B stream through workgroup memory 16 columns of K at a time.
const TILE = 64;
const TILE_K = 16;
const THREADS = 16;

function tiledCode(transA: boolean, transB: boolean, bias: boolean, accumulate: boolean): string {
  const aAt = transA ? "a[k * p.M + m]" : "a[m * p.K + k]";
  const bAt = transB ? "b[n * p.K + k]" : "b[k * p.N + n]";
  return /* wgsl */ `
struct P { M: u32, N: u32, K: u32 }
@group(0) @binding(0) var<storage, read_write> c: array<f32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
${bias ? "@group(0) @binding(3) var<storage, read> bias: array<f32>;" : ""}
@group(0) @binding(${bias ? 4 : 3}) var<uniform> p: P;

var<workgroup> As: array<array<f32, ${TILE}>, ${TILE_K}>; // As[k][m]
var<workgroup> Bs: array<array<f32, ${TILE}>, ${TILE_K}>; // Bs[k][n]

@compute @workgroup_size(${THREADS}, ${THREADS})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let m0 = wid.y * ${TILE}u;
  let n0 = wid.x * ${TILE}u;
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < p.K; k0 += ${TILE_K}u) {
    // 256 threads load 1024 elements of each tile, 4 each.
    for (var i = 0u; i < 4u; i++) {
      let e = li + i * 256u;
      let kk = e % ${TILE_K}u;
      let rr = e / ${TILE_K}u;
      let k = k0 + kk;
      let m = m0 + rr;
      let n = n0 + rr;
      var av = 0.0;
      if (m < p.M && k < p.K) { av = ${aAt}; }
      As[kk][rr] = av;
      var bv = 0.0;
      if (n < p.N && k < p.K) { bv = ${bAt}; }
      Bs[kk][rr] = bv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${TILE_K}u; kk++) {
      var ar: array<f32, 4>;
      var br: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        ar[i] = As[kk][lid.y + i * ${THREADS}u];
        br[i] = Bs[kk][lid.x + i * ${THREADS}u];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
          acc[i][j] = fma(ar[i], br[j], acc[i][j]);
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + lid.y + i * ${THREADS}u;
    if (m >= p.M) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + lid.x + j * ${THREADS}u;
      if (n >= p.N) { continue; }
      var v = acc[i][j];
      ${bias ? "v += bias[n];" : ""}
      ${accumulate ? "v += c[m * p.N + n];" : ""}
      c[m * p.N + n] = v;
    }
  }
}`;
}

function checkMatmul(args: MatmulArgs): void {
  const { M, N, K } = args;
  requireLength(args.out, M * N, `matmul out (M=${M}, N=${N})`);
  requireLength(args.a, M * K, `matmul a (${args.transA ? `K=${K}, M=${M}` : `M=${M}, K=${K}`})`);
  requireLength(args.b, K * N, `matmul b (${args.transB ? `N=${N}, K=${K}` : `K=${K}, N=${N}`})`);
  if (args.bias) requireLength(args.bias, N, `matmul bias (N=${N})`);
}

/** Records `C = op(A)·op(B) [+ bias] [+ C]` with the register-tiled kernel. */
export function matmul(rec: Recorder, args: MatmulArgs): void {
  checkMatmul(args);
  const { M, N, K } = args;
  const code = tiledCode(!!args.transA, !!args.transB, !!args.bias, !!args.accumulate);
  const views = [args.out, args.a, args.b];
  if (args.bias) views.push(args.bias);
  rec.dispatch({
    code,
    views,
    uniforms: new Uniforms().u32(M).u32(N).u32(K),
    groups: [Math.ceil(N / TILE), Math.ceil(M / TILE)],
  });
}

function naiveCode(transA: boolean, transB: boolean): string {
  const aAt = transA ? "a[k * p.M + m]" : "a[m * p.K + k]";
  const bAt = transB ? "b[n * p.K + k]" : "b[k * p.N + n]";
  return /* wgsl */ `
struct P { M: u32, N: u32, K: u32 }
@group(0) @binding(0) var<storage, read_write> c: array<f32>;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<uniform> p: P;
@compute @workgroup_size(16, 16)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let m = g.y;
  let n = g.x;
  if (m >= p.M || n >= p.N) { return; }
  var acc = 0.0;
  for (var k = 0u; k < p.K; k++) { acc = fma(${aAt}, ${bAt}, acc); }
  c[m * p.N + n] = acc;
}`;
}

/** Records `C = op(A)·op(B)` with one thread per output and no tiling: the baseline for benches. */
export function matmulNaive(rec: Recorder, args: MatmulArgs): void {
  checkMatmul(args);
  const { M, N, K } = args;
  rec.dispatch({
    code: naiveCode(!!args.transA, !!args.transB),
    views: [args.out, args.a, args.b],
    uniforms: new Uniforms().u32(M).u32(N).u32(K),
    groups: [Math.ceil(N / 16), Math.ceil(M / 16)],
  });
}

const BIAS_BACKWARD = /* wgsl */ `
struct P { M: u32, N: u32 }
@group(0) @binding(0) var<storage, read_write> dbias: array<f32>;
@group(0) @binding(1) var<storage, read> dout: array<f32>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(${ELEMENTWISE_WG})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let n = g.x;
  if (n >= p.N) { return; }
  var s = 0.0;
  for (var m = 0u; m < p.M; m++) { s += dout[m * p.N + n]; }
  dbias[n] += s;
}`;

/** Arguments of {@linkcode biasBackward}. */
export interface BiasBackwardArgs {
  /** Bias gradient `(N)`, accumulated into. */
  dbias: View;
  /** Output gradient `(M,N)`. */
  dout: View;
  /** Rows. */
  M: number;
  /** Columns. */
  N: number;
}

/** Records `db += Σ_rows dY` (deterministic: one thread per column, rows in order). */
export function biasBackward(rec: Recorder, args: BiasBackwardArgs): void {
  requireLength(args.dbias, args.N, `bias backward dbias (N=${args.N})`);
  requireLength(args.dout, args.M * args.N, `bias backward dout (M=${args.M}, N=${args.N})`);
  rec.dispatch({
    code: BIAS_BACKWARD,
    views: [args.dbias, args.dout],
    uniforms: new Uniforms().u32(args.M).u32(args.N),
    groups: [Math.ceil(args.N / ELEMENTWISE_WG)],
  });
}

/** Arguments of {@linkcode linearForward}. */
export interface LinearForwardArgs {
  /** Output `(M,N)`. */
  out: View;
  /** Input `(M,K)`. */
  inp: View;
  /** Weight `(K,N)`, Conv1D `[in, out]` layout. */
  weight: View;
  /** Optional bias `(N)`. */
  bias?: View;
  /** Rows (B·T). */
  M: number;
  /** Input features. */
  K: number;
  /** Output features. */
  N: number;
}

/** Records `Y = X·W + b`. */
export function linearForward(rec: Recorder, args: LinearForwardArgs): void {
  matmul(rec, { out: args.out, a: args.inp, b: args.weight, bias: args.bias, M: args.M, N: args.N, K: args.K });
}

/** Arguments of {@linkcode linearBackward}. */
export interface LinearBackwardArgs {
  /** Input gradient `(M,K)`, accumulated into; omitted when not needed (first layer). */
  dinp?: View;
  /** Weight gradient `(K,N)`, accumulated into. */
  dweight: View;
  /** Bias gradient `(N)`, accumulated into. */
  dbias?: View;
  /** Output gradient `(M,N)`. */
  dout: View;
  /** The forward input `(M,K)`. */
  inp: View;
  /** The weight `(K,N)`. */
  weight: View;
  /** Rows (B·T). */
  M: number;
  /** Input features. */
  K: number;
  /** Output features. */
  N: number;
}

/** Records `dX += dY·Wᵀ`, `dW += Xᵀ·dY` and `db += Σ dY`. */
export function linearBackward(rec: Recorder, args: LinearBackwardArgs): void {
  const { M, K, N } = args;
  if (args.dinp) {
    matmul(rec, { out: args.dinp, a: args.dout, b: args.weight, M, N: K, K: N, transB: true, accumulate: true });
  }
  matmul(rec, { out: args.dweight, a: args.inp, b: args.dout, M: K, N, K: M, transA: true, accumulate: true });
  if (args.dbias) biasBackward(rec, { dbias: args.dbias, dout: args.dout, M, N });
}

// ---------------------------------------------------------------------------------------------
// CPU references

/** Shape and flags of {@linkcode matmulCpu}. */
export interface MatmulCpuArgs {
  /** Rows of C. */
  M: number;
  /** Columns of C. */
  N: number;
  /** Inner dimension. */
  K: number;
  /** Read A transposed. */
  transA?: boolean;
  /** Read B transposed. */
  transB?: boolean;
  /** Optional bias (N). */
  bias?: ArrayLike<number>;
  /** Initial C to add into. */
  c?: ArrayLike<number>;
}

/** CPU reference of {@linkcode matmul}, in f64. */
export function matmulCpu(a: ArrayLike<number>, b: ArrayLike<number>, args: MatmulCpuArgs): Float64Array {
  const { M, N, K } = args;
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = args.bias ? args.bias[n] : 0;
      if (args.c) s += args.c[m * N + n];
      for (let k = 0; k < K; k++) {
        const av = args.transA ? a[k * M + m] : a[m * K + k];
        const bv = args.transB ? b[n * K + k] : b[k * N + n];
        s += av * bv;
      }
      out[m * N + n] = s;
    }
  }
  return out;
}

/** CPU reference of {@linkcode biasBackward}: column sums of `dout (M,N)`. */
export function biasBackwardCpu(dout: ArrayLike<number>, M: number, N: number): Float64Array {
  const out = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    let s = 0;
    for (let m = 0; m < M; m++) s += dout[m * N + n];
    out[n] = s;
  }
  return out;
}
