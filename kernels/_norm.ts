/**
 * Row normalisation kernels shared by LayerNorm (GPT-2) and RMSNorm (LLaMA): both normalise each
 * row of `(N,C)` over its C channels and scale by a weight; LayerNorm also subtracts the row mean
 * and adds a bias. One kernel template serves both (`kind`), so the two cannot drift apart.
 *
 *   layernorm   n = (x - mean)·rstd,  rstd = 1/√(Σ(x - mean)²/C + eps),  out = n·w + b
 *   rmsnorm     n = x·rstd,           rstd = 1/√(Σx²/C + eps),           out = n·w
 *   backward    dn = w·dout
 *
 * where the scale w is `offset + weight`: the weight itself (offset 0), or Gemma's `1 + weight`,
 * whose weight gradient is the same Σ_rows dout·n.
 *
 *               dinp += (dn - [mean_c(dn)] - n·mean_c(dn·n))·rstd       ([...]: LayerNorm only)
 *               dw   += Σ_rows dout·n,  db += Σ_rows dout
 *
 * On a GPU one workgroup normalises one row, reducing through workgroup memory, so any C works;
 * on a CPU adapter the rows and parameters are first copied into rgba32float textures and each
 * invocation normalises one row alone, 4 channels at a time (see `scratchTexture` in scratch.ts).
 * The parameter gradients sum rows in a fixed order, so they are the same bits on every run.
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
  CPU_WORKGROUP,
  type Gpu,
  type Recorder,
  requireLength,
  textureFits,
  Uniforms,
  type View,
} from "./device.ts";
import { copyToScratchTextures, type Operands, TEXEL_WGSL, useTextureOperands } from "./scratch.ts";
import { FLAT_INDEX_WGSL, grid } from "./elementwise.ts";

/** Which normalisation: LayerNorm (mean, bias) or RMSNorm (neither). */
export type NormKind = "layernorm" | "rmsnorm";

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

/** `@group(0)` declarations of `names` in order: `[access, name, type]`, then the uniform `p`. */
function bindings(list: [string, string, string][]): string {
  const decl = list.map(([access, name, type], i) =>
    access === "texture"
      ? `@group(0) @binding(${i}) var ${name}: texture_storage_2d<rgba32float, read>;`
      : `@group(0) @binding(${i}) var<storage, ${access}> ${name}: ${type};`
  );
  return `${decl.join("\n")}\n@group(0) @binding(${list.length}) var<uniform> p: P;`;
}

const F32S = "array<f32>";
const VEC4S = "array<vec4<f32>>";

// ---------------------------------------------------------------------------------------------
// Forward

function forwardCode(kind: NormKind): string {
  const ln = kind === "layernorm";
  return /* wgsl */ `
struct P { N: u32, C: u32, eps: f32, offset: f32 }
${
    bindings([
      ["read_write", "out", F32S],
      ...(ln ? [["read_write", "mean", F32S] as [string, string, string]] : []),
      ["read_write", "rstd", F32S],
      ["read", "inp", F32S],
      ["read", "weight", F32S],
      ...(ln ? [["read", "bias", F32S] as [string, string, string]] : []),
    ])
  }
${FLAT_INDEX_WGSL}
${ROW_SUM_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = flat_index(wid, nwg, 1u);
  if (row >= p.N) { return; }
  let x0 = row * p.C;
  ${
    ln
      ? `var s = 0.0;
  for (var c = lid; c < p.C; c += ${WG}u) { s += inp[x0 + c]; }
  let m = row_sum(lid, s) / f32(p.C);`
      : "let m = 0.0;"
  }
  // Two passes (Σ(x - mean)², not Σx² - mean²) so rows with a large mean keep their precision.
  var v = 0.0;
  for (var c = lid; c < p.C; c += ${WG}u) {
    let d = inp[x0 + c] - m;
    v += d * d;
  }
  let r = 1.0 / sqrt(row_sum(lid, v) / f32(p.C) + p.eps);
  for (var c = lid; c < p.C; c += ${WG}u) {
    out[x0 + c] = (inp[x0 + c] - m) * r * (p.offset + weight[c])${ln ? " + bias[c]" : ""};
  }
  if (lid == 0u) {
    ${ln ? "mean[row] = m;" : ""}
    rstd[row] = r;
  }
}`;
}

function forwardTextureCode(kind: NormKind): string {
  const ln = kind === "layernorm";
  return /* wgsl */ `
struct P { N: u32, C: u32, eps: f32, offset: f32 }
${
    bindings([
      ["read_write", "out", VEC4S],
      ...(ln ? [["read_write", "mean", F32S] as [string, string, string]] : []),
      ["read_write", "rstd", F32S],
      ["texture", "tinp", ""],
      ["texture", "tweight", ""],
      ...(ln ? [["texture", "tbias", ""] as [string, string, string]] : []),
    ])
  }
${FLAT_INDEX_WGSL}
${TEXEL_WGSL}
@compute @workgroup_size(${CPU_WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = flat_index(gid, nwg, ${CPU_WORKGROUP}u);
  if (row >= p.N) { return; }
  let n4 = p.C / 4u;
  ${
    ln
      ? `// Sums of x - x0 rather than of x: one thread adds the whole row in order, and deviations from
  // the row's first element keep the partial sums small, so rows with a large mean stay precise.
  let x0 = texel(tinp, 0u, row).x;
  var s = vec4<f32>();
  for (var c4 = 0u; c4 < n4; c4++) { s += texel(tinp, c4, row) - x0; }
  let m = x0 + dot(s, vec4<f32>(1.0)) / f32(p.C);`
      : "let m = 0.0;"
  }
  var v = vec4<f32>();
  for (var c4 = 0u; c4 < n4; c4++) {
    let d = texel(tinp, c4, row) - m;
    v += d * d;
  }
  let r = 1.0 / sqrt(dot(v, vec4<f32>(1.0)) / f32(p.C) + p.eps);
  for (var c4 = 0u; c4 < n4; c4++) {
    out[row * n4 + c4] = (texel(tinp, c4, row) - m) * r * (p.offset + texel(tweight, c4, 0u))${
    ln ? " + texel(tbias, c4, 0u)" : ""
  };
  }
  ${ln ? "mean[row] = m;" : ""}
  rstd[row] = r;
}`;
}

/** Arguments of {@linkcode normForward}. */
export interface NormForwardArgs {
  /** Output `(N,C)`. */
  out: View;
  /** Saved row means `(N)` (LayerNorm only). */
  mean?: View;
  /** Saved reciprocal root-mean-squares `(N)`, for the backward pass. */
  rstd: View;
  /** Input `(N,C)`. */
  inp: View;
  /** Scale `(C)`. */
  weight: View;
  /** Shift `(C)` (LayerNorm only). */
  bias?: View;
  /** Rows. */
  N: number;
  /** Channels normalised over. */
  C: number;
  /** Added to the variance (or mean square) before the square root. */
  eps: number;
  /** Added to the weight to give the scale (default 0; Gemma's RMSNorm: 1). */
  offset?: number;
  /** Where the rows and parameters are read from; defaults as `useTextures` says. */
  operands?: Operands;
}

/** The views a kind binds: LayerNorm's mean and bias, or nothing extra for RMSNorm. */
function extra<T>(kind: NormKind, value: T | undefined): T[] {
  return kind === "layernorm" ? [value!] : [];
}

/** Records the forward pass of `kind` (see the module documentation). */
export function normForward(rec: Recorder, kind: NormKind, args: NormForwardArgs): void {
  const { N, C } = args;
  const shape = `(N=${N}, C=${C})`;
  requireLength(args.out, N * C, `${kind} out ${shape}`);
  requireLength(args.rstd, N, `${kind} rstd (N=${N})`);
  requireLength(args.inp, N * C, `${kind} inp ${shape}`);
  requireLength(args.weight, C, `${kind} weight (C=${C})`);
  if (kind === "layernorm") {
    requireLength(args.mean!, N, `${kind} mean (N=${N})`);
    requireLength(args.bias!, C, `${kind} bias (C=${C})`);
  }
  const uniforms = new Uniforms().u32(N).u32(C).f32(args.eps).f32(args.offset ?? 0);
  const params = [args.weight, ...extra(kind, args.bias)];
  if (useTextures(rec.gpu, kind, args, { rows: [args.inp], params, out: args.out })) {
    rec.dispatch({
      code: forwardTextureCode(kind),
      views: [args.out, ...extra(kind, args.mean), args.rstd],
      textures: copyToScratchTextures(rec, "norm", [
        { view: args.inp, shape: { rows: N, cols: C } },
        ...params.map((view) => ({ view, shape: { rows: 1, cols: C } })),
      ]),
      uniforms,
      groups: grid(rec.gpu, N, CPU_WORKGROUP),
    });
    return;
  }
  rec.dispatch({
    code: forwardCode(kind),
    views: [args.out, ...extra(kind, args.mean), args.rstd, args.inp, ...params],
    uniforms,
    groups: grid(rec.gpu, N, 1),
  });
}

// ---------------------------------------------------------------------------------------------
// Backward

// The row statistics a kernel reads: `m` (0 for RMSNorm) and `r` of `row`.
function rowStats(kind: NormKind): string {
  return `let m = ${kind === "layernorm" ? "mean[row]" : "0.0"};\n  let r = rstd[row];`;
}

function backwardInputCode(kind: NormKind): string {
  const ln = kind === "layernorm";
  return /* wgsl */ `
struct P { N: u32, C: u32, offset: f32 }
${
    bindings([
      ["read_write", "dinp", F32S],
      ["read", "dout", F32S],
      ["read", "inp", F32S],
      ["read", "weight", F32S],
      ...(ln ? [["read", "mean", F32S] as [string, string, string]] : []),
      ["read", "rstd", F32S],
    ])
  }
${FLAT_INDEX_WGSL}
${ROW_SUM_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = flat_index(wid, nwg, 1u);
  if (row >= p.N) { return; }
  let x0 = row * p.C;
  ${rowStats(kind)}
  var s1 = 0.0;
  var s2 = 0.0;
  for (var c = lid; c < p.C; c += ${WG}u) {
    let dn = (p.offset + weight[c]) * dout[x0 + c];
    s1 += dn;
    s2 += dn * (inp[x0 + c] - m) * r;
  }
  let dn_mean = ${ln ? "row_sum(lid, s1) / f32(p.C)" : "0.0"};
  let dn_n_mean = row_sum(lid, s2) / f32(p.C);
  for (var c = lid; c < p.C; c += ${WG}u) {
    let n = (inp[x0 + c] - m) * r;
    dinp[x0 + c] += ((p.offset + weight[c]) * dout[x0 + c] - dn_mean - n * dn_n_mean) * r;
  }
}`;
}

function backwardInputTextureCode(kind: NormKind): string {
  const ln = kind === "layernorm";
  return /* wgsl */ `
struct P { N: u32, C: u32, offset: f32 }
${
    bindings([
      ["read_write", "dinp", VEC4S],
      ...(ln ? [["read", "mean", F32S] as [string, string, string]] : []),
      ["read", "rstd", F32S],
      ["texture", "tdout", ""],
      ["texture", "tinp", ""],
      ["texture", "tweight", ""],
      ["texture", "tdinp", ""],
    ])
  }
${FLAT_INDEX_WGSL}
${TEXEL_WGSL}
// dinp is accumulated into: its old rows come from a texture copy (tdinp), since reading them from
// the buffer, lane by lane, took about half of this kernel on a CPU adapter.
@compute @workgroup_size(${CPU_WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = flat_index(gid, nwg, ${CPU_WORKGROUP}u);
  if (row >= p.N) { return; }
  let n4 = p.C / 4u;
  ${rowStats(kind)}
  var s1 = vec4<f32>();
  var s2 = vec4<f32>();
  for (var c4 = 0u; c4 < n4; c4++) {
    let dn = (p.offset + texel(tweight, c4, 0u)) * texel(tdout, c4, row);
    s1 += dn;
    s2 += dn * (texel(tinp, c4, row) - m) * r;
  }
  let dn_mean = ${ln ? "dot(s1, vec4<f32>(1.0)) / f32(p.C)" : "0.0"};
  let dn_n_mean = dot(s2, vec4<f32>(1.0)) / f32(p.C);
  for (var c4 = 0u; c4 < n4; c4++) {
    let n = (texel(tinp, c4, row) - m) * r;
    let dn = (p.offset + texel(tweight, c4, 0u)) * texel(tdout, c4, row);
    dinp[row * n4 + c4] = texel(tdinp, c4, row) + (dn - dn_mean - n * dn_n_mean) * r;
  }
}`;
}

// The parameter-gradient sums: dweight (and LayerNorm's dbias) over rows.
function paramSums(kind: NormKind, n: string): { out: string; term: string }[] {
  return [
    { out: "dweight", term: `d * ${n}` },
    ...(kind === "layernorm" ? [{ out: "dbias", term: "d" }] : []),
  ];
}

function backwardParamsTextureCode(kind: NormKind): string {
  const ln = kind === "layernorm";
  return columnSumsTextureCode({
    header: /* wgsl */ `
struct P { rows: u32, cols: u32 }
${
      bindings([
        ["read_write", "dweight", VEC4S],
        ...(ln ? [["read_write", "dbias", VEC4S] as [string, string, string]] : []),
        ...(ln ? [["read", "mean", F32S] as [string, string, string]] : []),
        ["read", "rstd", F32S],
        ["texture", "tdout", ""],
        ["texture", "tinp", ""],
      ])
    }`,
    prelude: "let d = texel(tdout, c4, row);",
    sums: paramSums(kind, `(texel(tinp, c4, row) - ${ln ? "mean[row]" : "0.0"}) * rstd[row]`),
  });
}

function backwardParamsCode(kind: NormKind, split: ColumnSplit): string {
  const ln = kind === "layernorm";
  return columnSumsCode({
    header: /* wgsl */ `
struct P { rows: u32, cols: u32 }
${
      bindings([
        ["read_write", "dweight", F32S],
        ...(ln ? [["read_write", "dbias", F32S] as [string, string, string]] : []),
        ["read", "dout", F32S],
        ["read", "inp", F32S],
        ...(ln ? [["read", "mean", F32S] as [string, string, string]] : []),
        ["read", "rstd", F32S],
      ])
    }`,
    prelude: "let d = dout[row * p.cols + c];",
    sums: paramSums(kind, `(inp[row * p.cols + c] - ${ln ? "mean[row]" : "0.0"}) * rstd[row]`),
    split,
  });
}

/** Arguments of {@linkcode normBackward}. */
export interface NormBackwardArgs {
  /** Input gradient `(N,C)`, accumulated into (the residual stream's gradient). */
  dinp: View;
  /** Scale gradient `(C)`, accumulated into. */
  dweight: View;
  /** Shift gradient `(C)`, accumulated into (LayerNorm only). */
  dbias?: View;
  /** Output gradient `(N,C)`. */
  dout: View;
  /** The forward input `(N,C)`. */
  inp: View;
  /** Scale `(C)`. */
  weight: View;
  /** Row means `(N)` saved by the forward pass (LayerNorm only). */
  mean?: View;
  /** Reciprocal root-mean-squares `(N)` saved by the forward pass. */
  rstd: View;
  /** Rows. */
  N: number;
  /** Channels. */
  C: number;
  /** Added to the weight to give the scale, as in the forward pass (default 0). */
  offset?: number;
  /** Work split of the parameter-gradient sums; defaults to `columnSplit` of the GPU. */
  split?: ColumnSplit;
  /** Where the kernels read the rows and the weight from; defaults as `useTextures` says. */
  operands?: Operands;
}

/** Records the backward pass of `kind`: accumulates into `dinp`, `dweight` (and `dbias`), deterministically. */
export function normBackward(rec: Recorder, kind: NormKind, args: NormBackwardArgs): void {
  const { N, C } = args;
  const shape = `(N=${N}, C=${C})`;
  requireLength(args.dinp, N * C, `${kind} backward dinp ${shape}`);
  requireLength(args.dweight, C, `${kind} backward dweight (C=${C})`);
  requireLength(args.dout, N * C, `${kind} backward dout ${shape}`);
  requireLength(args.inp, N * C, `${kind} backward inp ${shape}`);
  requireLength(args.weight, C, `${kind} backward weight (C=${C})`);
  requireLength(args.rstd, N, `${kind} backward rstd (N=${N})`);
  if (kind === "layernorm") {
    requireLength(args.dbias!, C, `${kind} backward dbias (C=${C})`);
    requireLength(args.mean!, N, `${kind} backward mean (N=${N})`);
  }
  // The parameter-gradient kernels read the first two fields (rows, cols) of the same uniforms.
  const uniforms = new Uniforms().u32(N).u32(C).f32(args.offset ?? 0);
  const grads = [args.dweight, ...extra(kind, args.dbias)];
  const stats = [...extra(kind, args.mean), args.rstd];
  const tables = { rows: [args.dout, args.inp, args.dinp], params: [args.weight, ...grads], out: args.dinp };
  if (useTextures(rec.gpu, kind, args, tables)) {
    const [tdout, tinp, tweight, tdinp] = copyToScratchTextures(rec, "norm", [
      { view: args.dout, shape: { rows: N, cols: C } },
      { view: args.inp, shape: { rows: N, cols: C } },
      { view: args.weight, shape: { rows: 1, cols: C } },
      { view: args.dinp, shape: { rows: N, cols: C } },
    ]);
    rec.dispatch({
      code: backwardInputTextureCode(kind),
      views: [args.dinp, ...stats],
      textures: [tdout, tinp, tweight, tdinp],
      uniforms,
      groups: grid(rec.gpu, N, CPU_WORKGROUP),
    });
    rec.dispatch({
      code: backwardParamsTextureCode(kind),
      views: [...grads, ...stats],
      textures: [tdout, tinp],
      uniforms,
      groups: grid(rec.gpu, C / 4, CPU_WORKGROUP),
    });
    return;
  }
  rec.dispatch({
    code: backwardInputCode(kind),
    views: [args.dinp, args.dout, args.inp, args.weight, ...stats],
    uniforms,
    groups: grid(rec.gpu, N, 1),
  });
  const split = resolveColumnSplit(rec.gpu, args.split);
  rec.dispatch({
    code: backwardParamsCode(kind, split),
    views: [...grads, args.dout, args.inp, ...stats],
    uniforms,
    groups: [Math.ceil(C / split.cols)],
  });
}

/**
 * Whether the kernels read their `(N,C)` tables (`rows`) and `(C)` vectors (`params`) from
 * textures (see `useTextureOperands`); `out` is the output written as vec4s.
 *
 * @throws {GpuError} when texture operands are asked for and do not fit.
 */
function useTextures(
  gpu: Gpu,
  kind: NormKind,
  args: { N: number; C: number; operands?: Operands },
  tables: { rows: View[]; params: View[]; out: View },
): boolean {
  const { N, C } = args;
  return useTextureOperands(gpu, {
    operands: args.operands,
    fit: tables.rows.every((v) => textureFits(gpu, v, { rows: N, cols: C })) &&
      tables.params.every((v) => textureFits(gpu, v, { rows: 1, cols: C })) && tables.out.offset % 4 === 0,
    what: `${kind} (N=${N}, C=${C})`,
    needs: "needs C a multiple of 64, N within the texture size and 16-byte aligned views",
  });
}
