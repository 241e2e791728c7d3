/**
 * Layer normalisation over the last dimension, forward and backward, with CPU references.
 *
 *   forward    mean = Σ_c x / C,  var = Σ_c (x - mean)² / C  (biased, as PyTorch)
 *              rstd = 1 / √(var + eps),  n = (x - mean)·rstd,  out = n·w + b
 *   backward   dn = w·dout
 *              dinp += (dn - mean_c(dn) - n·mean_c(dn·n))·rstd
 *              dw   += Σ_rows dout·n,  db += Σ_rows dout
 *
 * One workgroup normalises one row, reducing through workgroup memory, so any C works; the
 * parameter gradients sum rows in a fixed order, so they are the same bits on every run.
 *
 * @module
 */
import {
  type ColumnSplit,
  columnSumsCode,
  columnSumsTextureCode,
  resolveColumnSplit,
} from "./column_sums.ts";
import {
  copyToScratchTextures,
  CPU_WORKGROUP,
  FLAT_INDEX_WGSL,
  type Gpu,
  grid,
  type Operands,
  type Recorder,
  requireLength,
  TEXEL_WGSL,
  textureFits,
  Uniforms,
  useTextureOperands,
  type View,
} from "./device.ts";

// Threads per row: one warp, as llm.c's kernel. More threads buy nothing for C in the hundreds and
// cost more barrier steps (4096 rows of 768: 98 ms with 32 threads, 430 ms with 256 on lavapipe).
const WG = 32;

// Every thread of the workgroup must call it (it holds barriers); returns the sum of all `v`.
const ROW_SUM_WGSL = /* wgsl */ `
var<workgroup> red: array<f32, ${WG}>;
fn row_sum(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let total = red[0];
  workgroupBarrier();
  return total;
}`;

// ---------------------------------------------------------------------------------------------
// Forward

const FORWARD = /* wgsl */ `
struct P { N: u32, C: u32, eps: f32 }
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read_write> mean: array<f32>;
@group(0) @binding(2) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(3) var<storage, read> inp: array<f32>;
@group(0) @binding(4) var<storage, read> weight: array<f32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;
@group(0) @binding(6) var<uniform> p: P;
${FLAT_INDEX_WGSL}
${ROW_SUM_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = flat_index(wid, nwg, 1u);
  if (row >= p.N) { return; }
  let x0 = row * p.C;
  var s = 0.0;
  for (var c = lid; c < p.C; c += ${WG}u) { s += inp[x0 + c]; }
  let m = row_sum(lid, s) / f32(p.C);
  // Two passes (Σ(x - mean)², not Σx² - mean²) so rows with a large mean keep their precision.
  var v = 0.0;
  for (var c = lid; c < p.C; c += ${WG}u) {
    let d = inp[x0 + c] - m;
    v += d * d;
  }
  let r = 1.0 / sqrt(row_sum(lid, v) / f32(p.C) + p.eps);
  for (var c = lid; c < p.C; c += ${WG}u) {
    out[x0 + c] = (inp[x0 + c] - m) * r * weight[c] + bias[c];
  }
  if (lid == 0u) {
    mean[row] = m;
    rstd[row] = r;
  }
}`;

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
  const { N, C } = args;
  requireLength(args.out, N * C, `layernorm out (N=${N}, C=${C})`);
  requireLength(args.mean, N, `layernorm mean (N=${N})`);
  requireLength(args.rstd, N, `layernorm rstd (N=${N})`);
  requireLength(args.inp, N * C, `layernorm inp (N=${N}, C=${C})`);
  requireLength(args.weight, C, `layernorm weight (C=${C})`);
  requireLength(args.bias, C, `layernorm bias (C=${C})`);
  const uniforms = new Uniforms().u32(N).u32(C).f32(args.eps);
  if (useTextures(rec.gpu, args, { rows: [args.inp], params: [args.weight, args.bias], out: args.out })) {
    rec.dispatch({
      code: FORWARD_TEXTURE,
      views: [args.out, args.mean, args.rstd],
      textures: copyToScratchTextures(rec, "layernorm", [
        { view: args.inp, shape: { rows: N, cols: C } },
        { view: args.weight, shape: { rows: 1, cols: C } },
        { view: args.bias, shape: { rows: 1, cols: C } },
      ]),
      uniforms,
      groups: grid(rec.gpu, N, CPU_WORKGROUP),
    });
    return;
  }
  rec.dispatch({
    code: FORWARD,
    views: [args.out, args.mean, args.rstd, args.inp, args.weight, args.bias],
    uniforms,
    groups: grid(rec.gpu, N, 1),
  });
}

// ---------------------------------------------------------------------------------------------
// Backward

const BACKWARD_INPUT = /* wgsl */ `
struct P { N: u32, C: u32 }
@group(0) @binding(0) var<storage, read_write> dinp: array<f32>;
@group(0) @binding(1) var<storage, read> dout: array<f32>;
@group(0) @binding(2) var<storage, read> inp: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read> mean: array<f32>;
@group(0) @binding(5) var<storage, read> rstd: array<f32>;
@group(0) @binding(6) var<uniform> p: P;
${FLAT_INDEX_WGSL}
${ROW_SUM_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = flat_index(wid, nwg, 1u);
  if (row >= p.N) { return; }
  let x0 = row * p.C;
  let m = mean[row];
  let r = rstd[row];
  var s1 = 0.0;
  var s2 = 0.0;
  for (var c = lid; c < p.C; c += ${WG}u) {
    let dn = weight[c] * dout[x0 + c];
    s1 += dn;
    s2 += dn * (inp[x0 + c] - m) * r;
  }
  let dn_mean = row_sum(lid, s1) / f32(p.C);
  let dn_n_mean = row_sum(lid, s2) / f32(p.C);
  for (var c = lid; c < p.C; c += ${WG}u) {
    let n = (inp[x0 + c] - m) * r;
    dinp[x0 + c] += (weight[c] * dout[x0 + c] - dn_mean - n * dn_n_mean) * r;
  }
}`;

// ---------------------------------------------------------------------------------------------
// Texture operands (see `scratchTexture` in device.ts for why)
//
// On a CPU adapter the rows, the output gradient and the weight and bias are first copied into
// rgba32float textures, and each invocation normalises one row alone, 4 channels at a time: the
// reads become vector code and there is no workgroup reduction. Only the writes touch storage.

const TEX_HEADER = /* wgsl */ `
${FLAT_INDEX_WGSL}
${TEXEL_WGSL}`;

const FORWARD_TEXTURE = /* wgsl */ `
struct P { N: u32, C: u32, eps: f32 }
@group(0) @binding(0) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> mean: array<f32>;
@group(0) @binding(2) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(3) var tinp: texture_storage_2d<rgba32float, read>;
@group(0) @binding(4) var tweight: texture_storage_2d<rgba32float, read>;
@group(0) @binding(5) var tbias: texture_storage_2d<rgba32float, read>;
@group(0) @binding(6) var<uniform> p: P;
${TEX_HEADER}
@compute @workgroup_size(${CPU_WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = flat_index(gid, nwg, ${CPU_WORKGROUP}u);
  if (row >= p.N) { return; }
  let n4 = p.C / 4u;
  // Sums of x - x0 rather than of x: one thread adds the whole row in order, and deviations from
  // the row's first element keep the partial sums small, so rows with a large mean stay precise.
  let x0 = texel(tinp, 0u, row).x;
  var s = vec4<f32>();
  for (var c4 = 0u; c4 < n4; c4++) { s += texel(tinp, c4, row) - x0; }
  let m = x0 + dot(s, vec4<f32>(1.0)) / f32(p.C);
  var v = vec4<f32>();
  for (var c4 = 0u; c4 < n4; c4++) {
    let d = texel(tinp, c4, row) - m;
    v += d * d;
  }
  let r = 1.0 / sqrt(dot(v, vec4<f32>(1.0)) / f32(p.C) + p.eps);
  for (var c4 = 0u; c4 < n4; c4++) {
    out[row * n4 + c4] = (texel(tinp, c4, row) - m) * r * texel(tweight, c4, 0u) + texel(tbias, c4, 0u);
  }
  mean[row] = m;
  rstd[row] = r;
}`;

const BACKWARD_INPUT_TEXTURE = /* wgsl */ `
struct P { N: u32, C: u32 }
@group(0) @binding(0) var<storage, read_write> dinp: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> mean: array<f32>;
@group(0) @binding(2) var<storage, read> rstd: array<f32>;
@group(0) @binding(3) var tdout: texture_storage_2d<rgba32float, read>;
@group(0) @binding(4) var tinp: texture_storage_2d<rgba32float, read>;
@group(0) @binding(5) var tweight: texture_storage_2d<rgba32float, read>;
@group(0) @binding(6) var<uniform> p: P;
${TEX_HEADER}
@compute @workgroup_size(${CPU_WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = flat_index(gid, nwg, ${CPU_WORKGROUP}u);
  if (row >= p.N) { return; }
  let n4 = p.C / 4u;
  let m = mean[row];
  let r = rstd[row];
  var s1 = vec4<f32>();
  var s2 = vec4<f32>();
  for (var c4 = 0u; c4 < n4; c4++) {
    let dn = texel(tweight, c4, 0u) * texel(tdout, c4, row);
    s1 += dn;
    s2 += dn * (texel(tinp, c4, row) - m) * r;
  }
  let dn_mean = dot(s1, vec4<f32>(1.0)) / f32(p.C);
  let dn_n_mean = dot(s2, vec4<f32>(1.0)) / f32(p.C);
  for (var c4 = 0u; c4 < n4; c4++) {
    let n = (texel(tinp, c4, row) - m) * r;
    let dn = texel(tweight, c4, 0u) * texel(tdout, c4, row);
    dinp[row * n4 + c4] += (dn - dn_mean - n * dn_n_mean) * r;
  }
}`;

const BACKWARD_PARAMS_TEXTURE = columnSumsTextureCode({
  header: /* wgsl */ `
struct P { rows: u32, cols: u32 }
@group(0) @binding(0) var<storage, read_write> dweight: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dbias: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> mean: array<f32>;
@group(0) @binding(3) var<storage, read> rstd: array<f32>;
@group(0) @binding(4) var tdout: texture_storage_2d<rgba32float, read>;
@group(0) @binding(5) var tinp: texture_storage_2d<rgba32float, read>;
@group(0) @binding(6) var<uniform> p: P;`,
  prelude: "let d = texel(tdout, c4, row);",
  sums: [
    { out: "dweight", term: "d * (texel(tinp, c4, row) - mean[row]) * rstd[row]" },
    { out: "dbias", term: "d" },
  ],
});

/**
 * Whether the LayerNorm kernels read their `(N,C)` tables (`rows`) and `(C)` vectors (`params`)
 * from textures (see `useTextureOperands`); `out` is the output written as vec4s.
 *
 * @throws {GpuError} when texture operands are asked for and do not fit.
 */
function useTextures(
  gpu: Gpu,
  args: { N: number; C: number; operands?: Operands },
  tables: { rows: View[]; params: View[]; out: View },
): boolean {
  const { N, C } = args;
  return useTextureOperands(gpu, {
    operands: args.operands,
    fit: tables.rows.every((v) => textureFits(gpu, v, { rows: N, cols: C })) &&
      tables.params.every((v) => textureFits(gpu, v, { rows: 1, cols: C })) && tables.out.offset % 4 === 0,
    what: `layernorm (N=${N}, C=${C})`,
    needs: "needs C a multiple of 64, N within the texture size and 16-byte aligned views",
  });
}

const BACKWARD_PARAMS_HEADER = /* wgsl */ `
struct P { rows: u32, cols: u32 }
@group(0) @binding(0) var<storage, read_write> dweight: array<f32>;
@group(0) @binding(1) var<storage, read_write> dbias: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read> inp: array<f32>;
@group(0) @binding(4) var<storage, read> mean: array<f32>;
@group(0) @binding(5) var<storage, read> rstd: array<f32>;
@group(0) @binding(6) var<uniform> p: P;`;

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
   * Where the input-gradient kernel reads the rows and the weight from (see
   * {@linkcode LayernormForwardArgs.operands}).
   */
  operands?: Operands;
}

/** Records `dinp += ∂L/∂inp`, `dweight += ∂L/∂weight`, `dbias += ∂L/∂bias` (deterministic). */
export function layernormBackward(rec: Recorder, args: LayernormBackwardArgs): void {
  const { N, C } = args;
  requireLength(args.dinp, N * C, `layernorm backward dinp (N=${N}, C=${C})`);
  requireLength(args.dweight, C, `layernorm backward dweight (C=${C})`);
  requireLength(args.dbias, C, `layernorm backward dbias (C=${C})`);
  requireLength(args.dout, N * C, `layernorm backward dout (N=${N}, C=${C})`);
  requireLength(args.inp, N * C, `layernorm backward inp (N=${N}, C=${C})`);
  requireLength(args.weight, C, `layernorm backward weight (C=${C})`);
  requireLength(args.mean, N, `layernorm backward mean (N=${N})`);
  requireLength(args.rstd, N, `layernorm backward rstd (N=${N})`);
  const uniforms = new Uniforms().u32(N).u32(C);
  const tables = {
    rows: [args.dout, args.inp],
    params: [args.weight, args.dweight, args.dbias],
    out: args.dinp,
  };
  if (useTextures(rec.gpu, args, tables)) {
    const [tdout, tinp, tweight] = copyToScratchTextures(rec, "layernorm", [
      { view: args.dout, shape: { rows: N, cols: C } },
      { view: args.inp, shape: { rows: N, cols: C } },
      { view: args.weight, shape: { rows: 1, cols: C } },
    ]);
    rec.dispatch({
      code: BACKWARD_INPUT_TEXTURE,
      views: [args.dinp, args.mean, args.rstd],
      textures: [tdout, tinp, tweight],
      uniforms,
      groups: grid(rec.gpu, N, CPU_WORKGROUP),
    });
    rec.dispatch({
      code: BACKWARD_PARAMS_TEXTURE,
      views: [args.dweight, args.dbias, args.mean, args.rstd],
      textures: [tdout, tinp],
      uniforms,
      groups: grid(rec.gpu, C / 4, CPU_WORKGROUP),
    });
    return;
  }
  rec.dispatch({
    code: BACKWARD_INPUT,
    views: [args.dinp, args.dout, args.inp, args.weight, args.mean, args.rstd],
    uniforms,
    groups: grid(rec.gpu, N, 1),
  });
  const split = resolveColumnSplit(rec.gpu, args.split);
  rec.dispatch({
    code: columnSumsCode({
      header: BACKWARD_PARAMS_HEADER,
      prelude: "let d = dout[row * p.cols + c];",
      sums: [
        { out: "dweight", term: "d * (inp[row * p.cols + c] - mean[row]) * rstd[row]" },
        { out: "dbias", term: "d" },
      ],
      split,
    }),
    views: [args.dweight, args.dbias, args.dout, args.inp, args.mean, args.rstd],
    uniforms,
    groups: [Math.ceil(C / split.cols)],
  });
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
