/**
 * Matrix-multiplication variants that only the benches use, kept apart from the kernels the
 * models run (as llm.c keeps its kernel variants in `dev/`), each checked against `matmulCpu` in
 * `tests/bench/matmul_variants_test.ts`.
 *
 * @module
 */
import { type MatmulArgs, type Recorder, Uniforms } from "@inheritune/kernels";

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

/**
 * Records `C = op(A)·op(B)` with one thread per output and no tiling: the baseline the benches
 * measure `matmul` against. Unchecked: the views must hold the shapes (`Recorder.dispatch` still
 * rejects a binding past its buffer).
 */
export function matmulNaive(rec: Recorder, args: MatmulArgs): void {
  const { M, N, K } = args;
  rec.dispatch({
    code: naiveCode(!!args.transA, !!args.transB),
    views: [args.out, args.a, args.b],
    uniforms: new Uniforms().u32(M).u32(N).u32(K),
    groups: [Math.ceil(N / 16), Math.ceil(M / 16)],
  });
}
