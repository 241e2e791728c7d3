/**
 * Causal multi-head self-attention with grouped-query attention (after the Q, K, V projections and
 * before the output projection), forward and backward, flash-attention style, and their CPU
 * references.
 *
 * Each row of `qkv (B,T,W)`, W = (NH + 2·NKV)·hs, holds the NH query heads, then the NKV key heads,
 * then the NKV value heads, hs = C/NH channels each (GPT-2: NKV = NH, so W = 3C and the row is
 * q | k | v of C channels each, `c_attn`'s output). Query head h reads key/value head
 * g = h / (NH/NKV): NKV = NH is multi-head attention, NKV = 1 multi-query attention. For each
 * (b, h) and query row i:
 *
 *   S_ij = scale · q_i·k_j   (j ≤ i, scale = 1/√hs)      lse_i = log Σ_j exp S_ij
 *   P_ij = exp(S_ij − lse_i)                              out_i = Σ_j P_ij v_j
 *
 * The (B,NH,T,T) matrix P is never stored: at GPT-2 124M, B=4, T=1024 it would be 201 MB, more
 * than one storage binding may hold. The forward pass walks the keys in tiles with an online
 * softmax and saves only `lse (B,NH,T)`; the backward pass recomputes P from it:
 *
 *   D_i   = dout_i·out_i
 *   dS_ij = P_ij (dout_i·v_j − D_i)
 *   dq_i  = scale · Σ_{j≤i} dS_ij k_j
 *   dk_j  = scale · Σ_{i≥j} dS_ij q_i      dv_j = Σ_{i≥j} P_ij dout_i
 *
 * (with grouped heads, dk and dv of a key/value head also sum over the query heads sharing it).
 * Each sum runs in a fixed order in one thread, so the results are deterministic (no atomics).
 *
 * @module
 */
import {
  copyToScratchTextures,
  CPU_WORKGROUP,
  createView,
  type Gpu,
  GpuError,
  type Operands,
  type Recorder,
  requireLength,
  textureFits,
  Uniforms,
  useTextureOperands,
  type View,
} from "./device.ts";

/** Largest head size the kernels support: a thread keeps up to four rows of it in registers. */
export const ATTENTION_MAX_HEAD_SIZE = 128;

/**
 * How the attention kernels split their work (see {@linkcode attentionSplit}).
 */
export interface AttentionSplit {
  /** Invocations per workgroup. */
  wg: number;
  /**
   * Named vec4 variables of row state (q, accumulators) one invocation may hold: it owns as many
   * rows (1 to 8) as fit, reusing each streamed row for all of them.
   */
  rowVectors: number;
  /** Keys (forward, dq) or queries (dk, dv) each loop step streams. */
  step: number;
  /** Whether dk and dv are computed by two kernels, each holding less state, instead of one. */
  separateDkDv: boolean;
}

/**
 * The split the attention kernels use on `gpu` unless told otherwise.
 *
 * On a CPU adapter such as llvmpipe, a workgroup of one SIMD group (8 lanes of 256 bits) is
 * cheapest, and every load an invocation makes is a scalar loop over the lanes, costing far more
 * than arithmetic on registers: so each invocation owns several rows (128 vec4s of state: the
 * largest kernel then compiles in seconds, not minutes), and streams 2 rows per step, rescaling
 * the forward accumulators once per 2 keys.
 *
 * On a GPU, 64 invocations of one row each keep warps full, and what costs is state beyond the
 * 255 registers a thread may hold, which spills to local memory. One streamed row per step, and
 * dk and dv in separate kernels, keep every kernel near 64 floats per held row: (q, dout, dq) in
 * dq, (k, v, dk) in dk, (k, dv) in dv, each plus one streamed row. On an H200 that took the
 * backward pass of GPT-2 124M (B=16) from 1493 to 137 ms per step (`bench/NOTES.md`).
 */
export function attentionSplit(gpu: Gpu): AttentionSplit {
  return gpu.isFallback
    ? { wg: CPU_WORKGROUP, rowVectors: 128, step: 2, separateDkDv: false }
    : { wg: 64, rowVectors: 0, step: 1, separateDkDv: true };
}

/** Shape of the attention of {@linkcode attentionForward} and {@linkcode attentionBackward}. */
export interface AttentionShape {
  /**
   * Where the streamed rows (keys and values; queries and output gradients) are read from:
   * storage buffers, or texture copies of qkv and dout. Defaults to textures on a CPU adapter
   * when the head size is a multiple of 4 and C of 64, else buffers.
   */
  operands?: Operands;
  /** Batch size. */
  B: number;
  /** Sequence length. */
  T: number;
  /** Channels of the queries and of the output (NH · hs). */
  C: number;
  /** Number of query heads. */
  NH: number;
  /** Number of key/value heads, dividing NH (default NH: no grouping). */
  NKV?: number;
  /** Work split of the kernels; defaults to {@linkcode attentionSplit} of the GPU. */
  split?: AttentionSplit;
}

/** Checks the shape and returns the head size. */
function headSize({ B, T, C, NH, NKV = NH }: AttentionShape): number {
  for (const [name, v] of [["B", B], ["T", T], ["C", C], ["NH", NH], ["NKV", NKV]] as const) {
    if (!Number.isInteger(v) || v < 1) {
      throw new GpuError(`attention: ${name}=${v} is not a positive integer`);
    }
  }
  if (C % NH !== 0) throw new GpuError(`attention: C=${C} is not a multiple of NH=${NH}`);
  if (NH % NKV !== 0) throw new GpuError(`attention: NKV=${NKV} does not divide NH=${NH}`);
  const hs = C / NH;
  if (hs > ATTENTION_MAX_HEAD_SIZE) {
    throw new GpuError(`attention: head size C/NH=${hs} exceeds ${ATTENTION_MAX_HEAD_SIZE}`);
  }
  return hs;
}

/**
 * How one kernel splits the rows of one (b, h): `wg` invocations per workgroup, each owning `rows`
 * rows (query rows, or key rows for dk/dv), `wg · rows` rows per workgroup, streaming `step` rows
 * per loop step.
 */
interface Split {
  wg: number;
  rows: number;
  step: number;
}

// The split of a kernel whose invocations hold `heldRows` head rows of state per row they own.
function kernelSplit(s: AttentionSplit, hs: number, heldRows: number): Split {
  if (![s.wg, s.step].every((v) => Number.isInteger(v) && v >= 1) || !(s.rowVectors >= 0)) {
    throw new GpuError(`attention split ${JSON.stringify(s)}: wg and step must be positive integers`);
  }
  const rows = Math.max(1, Math.min(8, Math.floor(s.rowVectors / (heldRows * Math.ceil(hs / 4)))));
  return { wg: s.wg, rows, step: s.step };
}

/**
 * Splits the batch so that the largest tensor, `perBatch` elements per batch entry, fits in one
 * storage binding; returns `[first, count]` pairs.
 */
function batchChunks(gpu: Gpu, B: number, perBatch: number): [number, number][] {
  const per = Math.floor(gpu.limits.maxStorageBufferBindingSize / (4 * perBatch));
  if (per < 1) throw new GpuError(`attention: one batch entry exceeds maxStorageBufferBindingSize`);
  const chunks: [number, number][] = [];
  for (let b0 = 0; b0 < B; b0 += per) chunks.push([b0, Math.min(per, B - b0)]);
  return chunks;
}

/** The batch entries `b0 .. b0+nb` of `view`, which holds `perBatch` elements per entry. */
function slice(view: View, b0: number, nb: number, perBatch: number): View {
  return { buffer: view.buffer, offset: view.offset + b0 * perBatch, length: nb * perBatch };
}

/**
 * Whether the streamed rows come from textures: `operands` if given (textures must then fit),
 * else on a CPU adapter when every table fits a texture. `tables` are the views to copy with
 * their floats per row; each holds `nb · T` rows.
 */
function useTextures(
  gpu: Gpu,
  args: AttentionShape,
  hs: number,
  tables: [View, number][],
): boolean {
  return useTextureOperands(gpu, {
    operands: args.operands,
    fit: hs % 4 === 0 &&
      tables.every(([view, cols]) => textureFits(gpu, view, { rows: args.B * args.T, cols })),
    what: `attention (C=${args.C}, NH=${args.NH}, T=${args.T})`,
    needs: "needs a head size that is a multiple of 4, C a multiple of 64, and B·T within the texture size",
  });
}

/** Floats per row of qkv: NH query heads and NKV key and value heads. */
function rowWidth({ C, NH, NKV = NH }: AttentionShape): number {
  return (C / NH) * (NH + 2 * NKV);
}

function attentionUniforms({ T, C, NH, NKV = NH }: AttentionShape): Uniforms {
  const scale = 1 / Math.sqrt(C / NH);
  return new Uniforms().u32(T).u32(C).u32(NH).f32(scale).u32(NKV);
}

// The kernels are generated for one head size and split: each row an invocation owns lives in
// named vec4 variables (q0_0, q0_1, ... for row 0) and every loop over the head, the rows and the
// STEP streamed rows is unrolled. llvmpipe spills dynamically indexed private arrays through a
// slow per-lane path, while named variables stay in SIMD registers or spill as whole vectors.
// The streamed rows are read at addresses that are the same for every invocation of the
// workgroup, which a GPU serves from its cache; so there is no workgroup memory and no barrier.

/** Expression of vec4 `d` (elements 4d .. 4d+3, zero past `hs`) of the head row at `base` of `buf`. */
function load4(hs: number, buf: string, base: string, d: number): string {
  if (hs % 4 === 0) return `${buf}[(${base}) / 4u + ${d}u]`;
  const el = [0, 1, 2, 3].map((c) => (4 * d + c < hs ? `${buf}[${base} + ${4 * d + c}u]` : "0.0"));
  return `vec4<f32>(${el.join(", ")})`;
}

/** Statements storing the named row `name_0, name_1, ...` times `mul` at `base` of `buf`. */
function store4(hs: number, buf: string, base: string, name: string, mul: string): string[] {
  const lines: string[] = [];
  for (let d = 0; d < Math.ceil(hs / 4); d++) {
    if (hs % 4 === 0) {
      lines.push(`${buf}[(${base}) / 4u + ${d}u] = ${name}_${d} * ${mul};`);
      continue;
    }
    for (let c = 0; c < 4 && 4 * d + c < hs; c++) {
      lines.push(`${buf}[${base} + ${4 * d + c}u] = ${name}_${d}[${c}] * ${mul};`);
    }
  }
  return lines;
}

/** `f(0), f(1), ... f(n-1)`. */
function seq<T>(n: number, f: (i: number) => T): T[] {
  return Array.from({ length: n }, (_, i) => f(i));
}

/** Dot product of the named rows `x_0.. ` and `y_0..` of `n` vec4s, as one fma chain. */
function dot(x: string, y: string, n: number): string {
  let e = `${x}_0 * ${y}_0`;
  for (let d = 1; d < n; d++) e = `fma(${x}_${d}, ${y}_${d}, ${e})`;
  return `dot(${e}, vec4<f32>(1.0))`;
}

// Shared WGSL preamble: the uniform block and the row addressing of qkv (B,T,W) and of the
// per-row statistics (B,NH,T). Workgroup (x, y, z) = (row block, head, batch entry), the head a
// query head (forward, dq) or a key/value head (dk, dv); row r of invocation li of row block x is
// x·BLOCK + r·WG + li.
function header(
  hs: number,
  { wg, rows, step }: Split,
  bindings: [string, string][],
  textures: string[] = [],
): string {
  const arr = hs % 4 === 0 ? "array<vec4<f32>>" : "array<f32>";
  const decl = bindings.map(([access, name], i) =>
    `@group(0) @binding(${i}) var<storage, ${access}> ${name}: ${
      name === "lse" || name === "delta" ? "array<f32>" : arr
    };`
  );
  textures.forEach((name, i) =>
    decl.push(
      `@group(0) @binding(${bindings.length + i}) var ${name}: texture_storage_2d<rgba32float, read>;`,
    )
  );
  return /* wgsl */ `
const HS = ${hs}u;
const WG = ${wg}u;
const BLOCK = ${wg * rows}u;
const STEP = ${step}u;
struct P { T: u32, C: u32, NH: u32, scale: f32, NKV: u32 }
${decl.join("\n")}
@group(0) @binding(${bindings.length + textures.length}) var<uniform> p: P;
// In-row offsets of query head h, key head g and value head g in qkv.
fn q_off(h: u32) -> u32 { return h * HS; }
fn k_off(g: u32) -> u32 { return (p.NH + g) * HS; }
fn v_off(g: u32) -> u32 { return (p.NH + p.NKV + g) * HS; }
// Element 0 of row t of batch entry b in qkv, plus an in-row offset.
fn qkv_at(b: u32, t: u32, off: u32) -> u32 { return (b * p.T + t) * (p.NH + 2u * p.NKV) * HS + off; }
// Element 0 of head h of row t of batch entry b in a (B,T,C) tensor.
fn btc_at(b: u32, t: u32, h: u32) -> u32 { return (b * p.T + t) * p.C + h * HS; }
fn stat_at(b: u32, t: u32, h: u32) -> u32 { return (b * p.NH + h) * p.T + t; }
// Texel (4 floats) d at in-row offset off of row t of batch entry b in the texture copy of qkv
// (B·T rows of W/4 texels) or of a (B,T,C) tensor.
fn tex_at(b: u32, t: u32, off: u32, d: u32) -> vec2<u32> {
  return vec2<u32>(off / 4u + d, b * p.T + t);
}`;
}

/** Where a kernel streams rows from: in buffer `buf` at `base(k)`, or in texture `tex` at in-row offset `off`. */
interface StreamSource {
  tex?: string;
  off: string;
  buf: string;
  base: (k: number) => string;
}

/**
 * `let <name>k_d = ...;` for each streamed row k (row `uc_k`) and each of its `n` vec4s d: a
 * texel of `src.tex` in texture mode, else {@linkcode load4} of `src.buf`.
 */
function streamRows(sp: Split, hs: number, name: string, src: StreamSource): string[] {
  const n = Math.ceil(hs / 4);
  return seq(sp.step, (k) =>
    seq(n, (d) => {
      const v = src.tex
        ? `textureLoad(${src.tex}, tex_at(b, uc${k}, ${src.off}, ${d}u))`
        : load4(hs, src.buf, src.base(k), d);
      return `let ${name}${k}_${d} = ${v};`;
    })).flat();
}

/** The key or value rows of key/value head `g` streamed from qkv, the key row k at `kj_k`. */
function keyValueSource(tex: boolean, part: "k" | "v"): StreamSource {
  return {
    tex: tex ? "tqkv" : undefined,
    off: part === "k" ? "k_off(g)" : "v_off(g)",
    buf: "qkv",
    base: (k) => (part === "k" ? `kj${k}` : `kj${k} + V_SKIP`),
  };
}

// The entry point: `pre` runs once per invocation (rows r: t_r = its row, tc_r clamped to T-1),
// `loop` for each STEP of streamed rows s0 .. s0+STEP-1 (u_k = s0+k, uc_k clamped), `post` last.
// A kernel owns rows of query head h (forward, dq: g is its key/value head) or of key/value head g
// (dk, dv: the loop then runs once per query head h of the group, in order).
function kernel(
  sp: Split,
  owner: "query" | "keyValue",
  range: { from: string; to: string },
  code: { pre: string[]; loop: string[]; post: string[] },
): string {
  const rowLines = seq(
    sp.rows,
    (r) => `let t${r} = wid.x * BLOCK + ${r * sp.wg}u + li;\n  let tc${r} = min(t${r}, p.T - 1u);`,
  );
  const stepLines = seq(sp.step, (k) => `let u${k} = s0 + ${k}u;\n    let uc${k} = min(u${k}, p.T - 1u);`);
  const loop = `for (var s0 = ${range.from}; s0 < ${range.to}; s0 += STEP) {
    ${stepLines.join("\n    ")}
    ${code.loop.join("\n    ")}
  }`;
  return /* wgsl */ `
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let b = wid.z;
  let GRP = p.NH / p.NKV; // query heads per key/value head
  let V_SKIP = p.NKV * HS; // from a key head to its value head in a row of qkv
  ${owner === "query" ? "let h = wid.y;\n  let g = h / GRP;" : "let g = wid.y;"}
  ${rowLines.join("\n  ")}
  ${code.pre.join("\n  ")}
  ${owner === "query" ? loop : `for (var h = g * GRP; h < (g + 1u) * GRP; h++) {\n  ${loop}\n  }`}
  ${code.post.join("\n  ")}
}`;
}

// ---------------------------------------------------------------------------------------------
// Forward

// Each invocation owns query rows t_r; keys j = u_k ≤ t_r stream STEP at a time through an online
// softmax (m_r running max, l_r running sum of exp(S − m_r), a_r unnormalised output). Keys past
// t_r (or past T, read clamped) score -3e38, so exp gives 0 for them; key 0 is in every row's
// first step, so m_r is finite before any exp(m_r − mt) matters.
function forwardCode(hs: number, sp: Split, tex: boolean): string {
  const n = Math.ceil(hs / 4);
  const R = seq(sp.rows, (r) => r);
  const K = seq(sp.step, (k) => k);
  const D = seq(n, (d) => d);
  const pre = [
    ...R.map((r) => `let qi${r} = qkv_at(b, tc${r}, q_off(h));`),
    ...R.flatMap((r) => D.map((d) => `let q${r}_${d} = ${load4(hs, "qkv", `qi${r}`, d)} * p.scale;`)),
    ...R.flatMap((r) => D.map((d) => `var a${r}_${d} = vec4<f32>(0.0);`)),
    ...R.map((r) => `var m${r} = -3.0e38;\n  var l${r} = 0.0;`),
  ];
  const loop = [
    ...K.map((k) => `let kj${k} = qkv_at(b, uc${k}, k_off(g));`),
    ...streamRows(sp, hs, "k", keyValueSource(tex, "k")),
    ...R.flatMap((r) =>
      K.map((k) => `let s${r}_${k} = select(-3.0e38, ${dot(`q${r}`, `k${k}`, n)}, u${k} <= t${r});`)
    ),
    ...R.flatMap((r) => [
      `let mt${r} = ${K.reduce((e, k) => `max(${e}, s${r}_${k})`, `m${r}`)};`,
      `let c${r} = exp(m${r} - mt${r});`,
      ...K.map((k) => `let p${r}_${k} = exp(s${r}_${k} - mt${r});`),
      `l${r} = l${r} * c${r} + ${K.map((k) => `p${r}_${k}`).join(" + ")};`,
      `m${r} = mt${r};`,
    ]),
    ...streamRows(sp, hs, "v", keyValueSource(tex, "v")),
    ...R.flatMap((r) =>
      D.map((d) =>
        `a${r}_${d} = ${
          K.reduce((e, k) => `fma(vec4<f32>(p${r}_${k}), v${k}_${d}, ${e})`, `a${r}_${d} * c${r}`)
        };`
      )
    ),
  ];
  const post = R.map((r) =>
    [
      `if (t${r} < p.T) {`,
      `  let oi = btc_at(b, t${r}, h);`,
      `  let inv = 1.0 / l${r};`,
      ...store4(hs, "out", "oi", `a${r}`, "inv").map((s) => `  ${s}`),
      `  lse[stat_at(b, t${r}, h)] = m${r} + log(l${r});`,
      `}`,
    ].join("\n  ")
  );
  return header(
    hs,
    sp,
    [["read_write", "out"], ["read_write", "lse"], ["read", "qkv"]],
    tex ? ["tqkv"] : [],
  ) +
    kernel(sp, "query", { from: "0u", to: "min(p.T, (wid.x + 1u) * BLOCK)" }, { pre, loop, post });
}

/** Arguments of {@linkcode attentionForward}. */
export interface AttentionForwardArgs extends AttentionShape {
  /** Output `(B,T,C)`, head h at channels h·hs..; overwritten. */
  out: View;
  /** Log-sum-exp of each query row's scaled, masked scores `(B,NH,T)`, saved for backward; overwritten. */
  lse: View;
  /** Input `(B,T,W)`, W = (NH + 2·NKV)·hs: the query heads, the key heads, the value heads. */
  qkv: View;
}

function shapeText({ B, T, C, NH, NKV = NH }: AttentionShape): string {
  return `(B=${B}, T=${T}, C=${C}, NH=${NH}${NKV === NH ? "" : `, NKV=${NKV}`})`;
}

/** Records the causal attention forward pass: `out (B,T,C)` and `lse (B,NH,T)` from `qkv (B,T,W)`. */
export function attentionForward(rec: Recorder, args: AttentionForwardArgs): void {
  const { B, T, C, NH } = args;
  const hs = headSize(args);
  const W = rowWidth(args);
  const shape = shapeText(args);
  requireLength(args.out, B * T * C, `attention forward out ${shape}`);
  requireLength(args.lse, B * NH * T, `attention forward lse ${shape}`);
  requireLength(args.qkv, B * T * W, `attention forward qkv ${shape}`);
  const sp = kernelSplit(args.split ?? attentionSplit(rec.gpu), hs, 2);
  const tex = useTextures(rec.gpu, args, hs, [[args.qkv, W]]);
  const code = forwardCode(hs, sp, tex);
  for (const [b0, nb] of batchChunks(rec.gpu, B, T * W)) {
    const qkv = slice(args.qkv, b0, nb, T * W);
    rec.dispatch({
      code,
      views: [slice(args.out, b0, nb, T * C), slice(args.lse, b0, nb, NH * T), qkv],
      textures: tex
        ? copyToScratchTextures(rec, "attention", [{ view: qkv, shape: { rows: nb * T, cols: W } }])
        : [],
      uniforms: attentionUniforms(args),
      groups: [Math.ceil(T / (sp.wg * sp.rows)), NH, nb],
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Backward

// Each invocation owns query rows t_r: dq_r over the keys j = u_k ≤ t_r. It computes
// D_r = dout_r·out_r for itself and saves it for the dk/dv kernel.
function dqCode(hs: number, sp: Split, tex: boolean): string {
  const n = Math.ceil(hs / 4);
  const R = seq(sp.rows, (r) => r);
  const K = seq(sp.step, (k) => k);
  const D = seq(n, (d) => d);
  const pre = [
    ...R.map((r) => `let qi${r} = qkv_at(b, tc${r}, q_off(h));\n  let oi${r} = btc_at(b, tc${r}, h);`),
    ...R.flatMap((r) => D.map((d) => `let q${r}_${d} = ${load4(hs, "qkv", `qi${r}`, d)} * p.scale;`)),
    ...R.flatMap((r) => D.map((d) => `let o${r}_${d} = ${load4(hs, "dout", `oi${r}`, d)};`)),
    ...R.flatMap((r) => D.map((d) => `let y${r}_${d} = ${load4(hs, "out", `oi${r}`, d)};`)),
    ...R.map((r) => `let D${r} = ${dot(`o${r}`, `y${r}`, n)};\n  let L${r} = lse[stat_at(b, tc${r}, h)];`),
    ...R.flatMap((r) => D.map((d) => `var g${r}_${d} = vec4<f32>(0.0);`)),
  ];
  const loop = [
    ...K.map((k) => `let kj${k} = qkv_at(b, uc${k}, k_off(g));`),
    ...streamRows(sp, hs, "k", keyValueSource(tex, "k")),
    ...streamRows(sp, hs, "v", keyValueSource(tex, "v")),
    ...R.flatMap((r) =>
      K.map((k) =>
        `let ds${r}_${k} = select(0.0, exp(${dot(`q${r}`, `k${k}`, n)} - L${r}) * (${
          dot(`o${r}`, `v${k}`, n)
        } - D${r}), u${k} <= t${r});`
      )
    ),
    ...R.flatMap((r) =>
      D.map((d) =>
        `g${r}_${d} = ${K.reduce((e, k) => `fma(vec4<f32>(ds${r}_${k}), k${k}_${d}, ${e})`, `g${r}_${d}`)};`
      )
    ),
  ];
  const post = R.map((r) =>
    [
      `if (t${r} < p.T) {`,
      `  delta[stat_at(b, t${r}, h)] = D${r};`,
      ...store4(hs, "dqkv", `qi${r}`, `g${r}`, "p.scale").map((s) => `  ${s}`),
      `}`,
    ].join("\n  ")
  );
  return header(hs, sp, [
    ["read_write", "dqkv"],
    ["read_write", "delta"],
    ["read", "qkv"],
    ["read", "dout"],
    ["read", "out"],
    ["read", "lse"],
  ], tex ? ["tqkv"] : []) +
    kernel(sp, "query", { from: "0u", to: "min(p.T, (wid.x + 1u) * BLOCK)" }, { pre, loop, post });
}

// Each invocation owns key rows t_r: dk_r and dv_r over the queries i = u_k ≥ t_r, or only one of
// them (`grads`), which needs less state: dk needs k, v and the output gradient rows, dv only k.
function dkvCode(hs: number, sp: Split, tex: boolean, grads: "dk" | "dv" | "dkdv"): string {
  const n = Math.ceil(hs / 4);
  const R = seq(sp.rows, (r) => r);
  const K = seq(sp.step, (k) => k);
  const D = seq(n, (d) => d);
  const dk = grads !== "dv", dv = grads !== "dk";
  const pre = [
    ...R.map((r) => `let kj${r} = qkv_at(b, tc${r}, k_off(g));`),
    ...R.flatMap((r) => D.map((d) => `let k${r}_${d} = ${load4(hs, "qkv", `kj${r}`, d)} * p.scale;`)),
    ...(dk
      ? R.flatMap((r) => D.map((d) => `let v${r}_${d} = ${load4(hs, "qkv", `kj${r} + V_SKIP`, d)};`))
      : []),
    ...(dk ? R.flatMap((r) => D.map((d) => `var gk${r}_${d} = vec4<f32>(0.0);`)) : []),
    ...(dv ? R.flatMap((r) => D.map((d) => `var gv${r}_${d} = vec4<f32>(0.0);`)) : []),
  ];
  const loop = [
    ...K.map((k) =>
      `let qi${k} = qkv_at(b, uc${k}, q_off(h));\n    let oi${k} = btc_at(b, uc${k}, h);\n    let si${k} = stat_at(b, uc${k}, h);`
    ),
    ...streamRows(sp, hs, "q", {
      tex: tex ? "tqkv" : undefined,
      off: "q_off(h)",
      buf: "qkv",
      base: (k) => `qi${k}`,
    }),
    ...streamRows(sp, hs, "o", {
      tex: tex ? "tdout" : undefined,
      off: "h * HS",
      buf: "dout",
      base: (k) => `oi${k}`,
    }),
    ...K.map((k) => `let L${k} = lse[si${k}];${dk ? `\n    let D${k} = delta[si${k}];` : ""}`),
    ...R.flatMap((r) =>
      K.flatMap((k) => [
        `let p${r}_${k} = select(0.0, exp(${
          dot(`k${r}`, `q${k}`, n)
        } - L${k}), u${k} >= t${r} && u${k} < p.T);`,
        ...(dk ? [`let ds${r}_${k} = p${r}_${k} * (${dot(`v${r}`, `o${k}`, n)} - D${k});`] : []),
      ])
    ),
    ...R.flatMap((r) =>
      D.flatMap((d) => [
        ...(dv
          ? [`gv${r}_${d} = ${
            K.reduce((e, k) => `fma(vec4<f32>(p${r}_${k}), o${k}_${d}, ${e})`, `gv${r}_${d}`)
          };`]
          : []),
        ...(dk
          ? [`gk${r}_${d} = ${
            K.reduce((e, k) => `fma(vec4<f32>(ds${r}_${k}), q${k}_${d}, ${e})`, `gk${r}_${d}`)
          };`]
          : []),
      ])
    ),
  ];
  const post = R.map((r) =>
    [
      `if (t${r} < p.T) {`,
      ...(dk ? store4(hs, "dqkv", `kj${r}`, `gk${r}`, "p.scale").map((s) => `  ${s}`) : []),
      ...(dv ? store4(hs, "dqkv", `kj${r} + V_SKIP`, `gv${r}`, "1.0").map((s) => `  ${s}`) : []),
      `}`,
    ].join("\n  ")
  );
  // With textures, dout is only streamed, so its buffer is not bound; dv alone reads no delta.
  const bindings: [string, string][] = [
    ["read_write", "dqkv"],
    ["read", "qkv"],
    ...(tex ? [] : [["read", "dout"] as [string, string]]),
    ["read", "lse"],
    ...(dk ? [["read", "delta"] as [string, string]] : []),
  ];
  return header(hs, sp, bindings, tex ? ["tqkv", "tdout"] : []) +
    kernel(sp, "keyValue", { from: "wid.x * BLOCK", to: "p.T" }, { pre, loop, post });
}

/**
 * Creates the scratch buffer {@linkcode attentionBackward} needs: `delta (B,NH,T)`. Create it
 * once (with the activations), not per step.
 */
export function createAttentionScratch(gpu: Gpu, shape: { B: number; T: number; NH: number }): View {
  return createView(gpu, shape.B * shape.NH * shape.T, "attention delta");
}

/** Arguments of {@linkcode attentionBackward}. */
export interface AttentionBackwardArgs extends AttentionShape {
  /** Input gradient `(B,T,W)`: dq, dk, dv in the layout of qkv; overwritten (not accumulated into). */
  dqkv: View;
  /** Output gradient `(B,T,C)`. */
  dout: View;
  /** The forward input `(B,T,W)`. */
  qkv: View;
  /** The forward output `(B,T,C)`. */
  out: View;
  /** The forward log-sum-exp `(B,NH,T)`. */
  lse: View;
  /**
   * Scratch `(B,NH,T)` for D_i = dout_i·out_i, written and then read by this pass; from
   * {@linkcode createAttentionScratch}.
   */
  delta: View;
}

/** Records the causal attention backward pass: `dqkv (B,T,W)` from `dout (B,T,C)`. */
export function attentionBackward(rec: Recorder, args: AttentionBackwardArgs): void {
  const { B, T, C, NH, NKV = NH } = args;
  const hs = headSize(args);
  const W = rowWidth(args);
  const shape = shapeText(args);
  requireLength(args.dqkv, B * T * W, `attention backward dqkv ${shape}`);
  requireLength(args.dout, B * T * C, `attention backward dout ${shape}`);
  requireLength(args.qkv, B * T * W, `attention backward qkv ${shape}`);
  requireLength(args.out, B * T * C, `attention backward out ${shape}`);
  requireLength(args.lse, B * NH * T, `attention backward lse ${shape}`);
  requireLength(args.delta, B * NH * T, `attention backward delta ${shape}`);
  const s = args.split ?? attentionSplit(rec.gpu);
  const dqSplit = kernelSplit(s, hs, 3);
  const tex = useTextures(rec.gpu, args, hs, [[args.qkv, W], [args.dout, C]]);
  const dq = dqCode(hs, dqSplit, tex);
  // dk and dv in one kernel, or in two that each hold less state.
  const dkv = (s.separateDkDv ? [["dk", 3], ["dv", 2]] as const : [["dkdv", 4]] as const).map(
    ([grads, held]) => {
      const sp = kernelSplit(s, hs, held);
      return { grads, sp, code: dkvCode(hs, sp, tex, grads) };
    },
  );
  for (const [b0, nb] of batchChunks(rec.gpu, B, T * W)) {
    const at = (v: View, perBatch: number): View => slice(v, b0, nb, perBatch);
    const dqkv = at(args.dqkv, T * W);
    const qkv = at(args.qkv, T * W);
    const dout = at(args.dout, T * C);
    const lse = at(args.lse, NH * T);
    const delta = at(args.delta, NH * T);
    const uniforms = attentionUniforms(args);
    // dq runs per query head, dk and dv per key/value head.
    const groups = (sp: Split, heads: number): [number, number, number] => [
      Math.ceil(T / (sp.wg * sp.rows)),
      heads,
      nb,
    ];
    // dq reads the qkv texture; dk/dv reads it and the dout texture, copied once for both.
    const textures = tex
      ? copyToScratchTextures(rec, "attention", [
        { view: qkv, shape: { rows: nb * T, cols: W } },
        { view: dout, shape: { rows: nb * T, cols: C } },
      ])
      : [];
    rec.dispatch({
      code: dq,
      views: [dqkv, delta, qkv, dout, at(args.out, T * C), lse],
      textures: textures.slice(0, 1),
      uniforms,
      groups: groups(dqSplit, NH),
    });
    for (const { grads, sp, code } of dkv) {
      rec.dispatch({
        code,
        views: [dqkv, qkv, ...(tex ? [] : [dout]), lse, ...(grads === "dv" ? [] : [delta])],
        textures,
        uniforms,
        groups: groups(sp, NKV),
      });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// CPU references

/** Result of {@linkcode attentionForwardCpu}. */
export interface AttentionForwardCpuResult {
  /** Output `(B,T,C)`. */
  out: Float64Array;
  /** Log-sum-exp of each query row `(B,NH,T)`. */
  lse: Float64Array;
  /** Attention probabilities `(B,NH,T,T)`, zero above the diagonal. */
  att: Float64Array;
}

/** CPU reference of {@linkcode attentionForward}, in f64, materialising the probabilities. */
export function attentionForwardCpu(
  qkv: ArrayLike<number>,
  shape: AttentionShape,
): AttentionForwardCpuResult {
  const { B, T, C, NH } = shape;
  const hs = headSize(shape);
  const { q, k, v } = cpuOffsets(shape);
  const scale = 1 / Math.sqrt(hs);
  const out = new Float64Array(B * T * C);
  const lse = new Float64Array(B * NH * T);
  const att = new Float64Array(B * NH * T * T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let i = 0; i < T; i++) {
        const qi = q(b, i, h);
        const row = ((b * NH + h) * T + i) * T;
        let max = -Infinity;
        for (let j = 0; j <= i; j++) {
          const kj = k(b, j, h);
          let s = 0;
          for (let d = 0; d < hs; d++) s += qkv[qi + d] * qkv[kj + d];
          att[row + j] = s * scale;
          max = Math.max(max, s * scale);
        }
        let sum = 0;
        for (let j = 0; j <= i; j++) sum += Math.exp(att[row + j] - max);
        for (let j = 0; j <= i; j++) att[row + j] = Math.exp(att[row + j] - max) / sum;
        lse[(b * NH + h) * T + i] = max + Math.log(sum);
        const oi = (b * T + i) * C + h * hs;
        for (let j = 0; j <= i; j++) {
          const vj = v(b, j, h);
          for (let d = 0; d < hs; d++) out[oi + d] += att[row + j] * qkv[vj + d];
        }
      }
    }
  }
  return { out, lse, att };
}

/**
 * Where the CPU references find head h's query (key, value) row of batch entry b, position t in
 * qkv: the key and value of query head h are those of its key/value head h / (NH/NKV).
 */
function cpuOffsets(
  shape: AttentionShape,
): Record<"q" | "k" | "v", (b: number, t: number, h: number) => number> {
  const { T, NH, NKV = NH } = shape;
  const hs = headSize(shape), W = rowWidth(shape), group = NH / NKV;
  return {
    q: (b, t, h) => (b * T + t) * W + h * hs,
    k: (b, t, h) => (b * T + t) * W + (NH + Math.floor(h / group)) * hs,
    v: (b, t, h) => (b * T + t) * W + (NH + NKV + Math.floor(h / group)) * hs,
  };
}

/**
 * CPU reference of {@linkcode attentionBackward}, in f64: `dqkv (B,T,W)` from `dout (B,T,C)`,
 * through the materialised probabilities and the plain softmax backward.
 */
export function attentionBackwardCpu(
  dout: ArrayLike<number>,
  qkv: ArrayLike<number>,
  shape: AttentionShape,
): Float64Array {
  const { B, T, C, NH } = shape;
  const hs = headSize(shape);
  const { q, k, v } = cpuOffsets(shape);
  const scale = 1 / Math.sqrt(hs);
  const { att } = attentionForwardCpu(qkv, shape);
  const dqkv = new Float64Array(B * T * rowWidth(shape));
  const datt = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let i = 0; i < T; i++) {
        const row = ((b * NH + h) * T + i) * T;
        const oi = (b * T + i) * C + h * hs;
        let dsum = 0;
        for (let j = 0; j <= i; j++) {
          const vj = v(b, j, h);
          let s = 0;
          for (let d = 0; d < hs; d++) {
            s += dout[oi + d] * qkv[vj + d];
            dqkv[vj + d] += att[row + j] * dout[oi + d];
          }
          datt[j] = s;
          dsum += att[row + j] * s;
        }
        const qi = q(b, i, h);
        for (let j = 0; j <= i; j++) {
          const ds = att[row + j] * (datt[j] - dsum) * scale;
          const kj = k(b, j, h);
          for (let d = 0; d < hs; d++) {
            dqkv[qi + d] += ds * qkv[kj + d];
            dqkv[kj + d] += ds * qkv[qi + d];
          }
        }
      }
    }
  }
  return dqkv;
}
