/**
 * Causal multi-head self-attention (GPT-2, after the QKV projection and before `c_proj`), forward
 * and backward, flash-attention style, and their CPU references.
 *
 * `qkv (B,T,3C)` holds q = qkv[..., 0:C], k = qkv[..., C:2C], v = qkv[..., 2C:3C]; head h uses
 * channels h·hs .. (h+1)·hs with hs = C/NH. For each (b, h) and query row i:
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
 * Each sum runs in a fixed order in one thread, so the results are deterministic (no atomics).
 *
 * @module
 */
import {
  createView,
  type Gpu,
  GpuError,
  type Recorder,
  requireLength,
  Uniforms,
  type View,
} from "./device.ts";

/** Largest head size the kernels support: one thread keeps up to four rows of it in registers. */
export const ATTENTION_MAX_HEAD_SIZE = 128;

// Each workgroup owns ROWS query rows (forward, dq) or key rows (dk, dv) of one (b, h), one row per
// thread; the rows of the other side stream through workgroup memory in tiles that every thread
// of the workgroup reuses.
const ROWS = 64;

/** Shape of the attention of {@linkcode attentionForward} and {@linkcode attentionBackward}. */
export interface AttentionShape {
  /** Batch size. */
  B: number;
  /** Sequence length. */
  T: number;
  /** Channels (NH · hs). */
  C: number;
  /** Number of heads. */
  NH: number;
}

/** Checks the shape and returns the head size. */
function headSize({ B, T, C, NH }: AttentionShape): number {
  for (const [name, v] of [["B", B], ["T", T], ["C", C], ["NH", NH]] as const) {
    if (!Number.isInteger(v) || v < 1) {
      throw new GpuError(`attention: ${name}=${v} is not a positive integer`);
    }
  }
  if (C % NH !== 0) throw new GpuError(`attention: C=${C} is not a multiple of NH=${NH}`);
  const hs = C / NH;
  if (hs > ATTENTION_MAX_HEAD_SIZE) {
    throw new GpuError(`attention: head size C/NH=${hs} exceeds ${ATTENTION_MAX_HEAD_SIZE}`);
  }
  return hs;
}

/** Rows per shared-memory tile: two tiles of `tile × hs` f32 (hs padded to vec4s) must fit in workgroup memory. */
function tileRows(gpu: Gpu, hs: number): number {
  return Math.min(ROWS, Math.floor(gpu.limits.maxComputeWorkgroupStorageSize / (32 * Math.ceil(hs / 4))));
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

// Shared WGSL preamble: the uniform block and the row addressing of qkv (B,T,3C) and of the
// per-row statistics (B,NH,T). Workgroup (x, y, z) = (row block, head, batch entry).
const PARAMS = /* wgsl */ `
struct P { T: u32, C: u32, NH: u32, scale: f32 }
// Element 0 of head h of row t of batch entry b in q; k and v follow at +C and +2C.
fn qkv_at(b: u32, t: u32, h: u32) -> u32 { return (b * p.T + t) * 3u * p.C + h * HS; }
// Element 0 of head h of row t of batch entry b in a (B,T,C) tensor.
fn btc_at(b: u32, t: u32, h: u32) -> u32 { return (b * p.T + t) * p.C + h * HS; }
fn stat_at(b: u32, t: u32, h: u32) -> u32 { return (b * p.NH + h) * p.T + t; }
fn hsum(x: vec4<f32>) -> f32 { return (x.x + x.y) + (x.z + x.w); }
`;

function attentionUniforms(T: number, C: number, NH: number): Uniforms {
  const scale = 1 / Math.sqrt(C / NH);
  return new Uniforms().u32(T).u32(C).u32(NH).f32(scale);
}

function header(hs: number, tile: number): string {
  return `const HS = ${hs}u;\nconst HS4 = ${
    Math.ceil(hs / 4)
  }u;\nconst TILE = ${tile}u;\nconst ROWS = ${ROWS}u;\n${PARAMS}`;
}

// Declares load4_<name>(base, d4): elements 4·d4 .. 4·d4+3 of a head starting at base, zero
// past the head size, so that head sizes not divisible by 4 pad with zeros.
function load4(name: string): string {
  return /* wgsl */ `
fn load4_${name}(base: u32, d4: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  for (var c = 0u; c < 4u; c++) {
    if (d4 * 4u + c < HS) { r[c] = ${name}[base + d4 * 4u + c]; }
  }
  return r;
}`;
}

// Declares store4_<name>(base, d4, v): the counterpart of load4_<name>.
function store4(name: string): string {
  return /* wgsl */ `
fn store4_${name}(base: u32, d4: u32, v: vec4<f32>) {
  for (var c = 0u; c < 4u; c++) {
    if (d4 * 4u + c < HS) { ${name}[base + d4 * 4u + c] = v[c]; }
  }
}`;
}

// Workgroup tiles of TILE key and value rows of one head, and the loop that fills them; each
// thread then reads whole rows of them. Needs load4("qkv").
const KV_TILE = /* wgsl */ `
var<workgroup> Ks: array<vec4<f32>, TILE * HS4>;
var<workgroup> Vs: array<vec4<f32>, TILE * HS4>;
fn load_kv_tile(b: u32, h: u32, j0: u32, li: u32) {
  for (var e = li; e < TILE * HS4; e += ROWS) {
    let j = j0 + e / HS4;
    var kk = vec4<f32>(0.0);
    var vv = vec4<f32>(0.0);
    if (j < p.T) {
      let kj = qkv_at(b, j, h) + p.C;
      kk = load4_qkv(kj, e % HS4);
      vv = load4_qkv(kj + p.C, e % HS4);
    }
    Ks[e] = kk;
    Vs[e] = vv;
  }
}`;

// ---------------------------------------------------------------------------------------------
// Forward

function forwardCode(hs: number, tile: number): string {
  return /* wgsl */ `${header(hs, tile)}
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read_write> lse: array<f32>;
@group(0) @binding(2) var<storage, read> qkv: array<f32>;
@group(0) @binding(3) var<uniform> p: P;
${load4("qkv")}
${store4("out")}
${KV_TILE}

@compute @workgroup_size(${ROWS})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let h = wid.y;
  let b = wid.z;
  let i = wid.x * ROWS + li;
  let valid = i < p.T;
  var q: array<vec4<f32>, HS4>;
  var acc: array<vec4<f32>, HS4>;
  if (valid) {
    let qi = qkv_at(b, i, h);
    for (var d = 0u; d < HS4; d++) { q[d] = load4_qkv(qi, d) * p.scale; }
  }
  // Running max and sum of exp(S - m) of this row; every row sees key 0 in the first tile, so
  // the initial -3e38 is replaced before it is used.
  var m = -3.0e38;
  var l = 0.0;
  let end = min(p.T, (wid.x + 1u) * ROWS);
  for (var j0 = 0u; j0 < end; j0 += TILE) {
    load_kv_tile(b, h, j0, li);
    workgroupBarrier();
    if (valid && j0 <= i) {
      let n = min(TILE, i + 1u - j0);
      var s: array<f32, TILE>;
      var mt = m;
      for (var jj = 0u; jj < n; jj++) {
        var dot4 = vec4<f32>(0.0);
        for (var d = 0u; d < HS4; d++) { dot4 = fma(q[d], Ks[jj * HS4 + d], dot4); }
        s[jj] = hsum(dot4);
        mt = max(mt, s[jj]);
      }
      let corr = exp(m - mt);
      l *= corr;
      for (var d = 0u; d < HS4; d++) { acc[d] *= corr; }
      for (var jj = 0u; jj < n; jj++) {
        let pj = exp(s[jj] - mt);
        l += pj;
        for (var d = 0u; d < HS4; d++) { acc[d] = fma(vec4<f32>(pj), Vs[jj * HS4 + d], acc[d]); }
      }
      m = mt;
    }
    workgroupBarrier();
  }
  if (valid) {
    let oi = btc_at(b, i, h);
    let inv = 1.0 / l;
    for (var d = 0u; d < HS4; d++) { store4_out(oi, d, acc[d] * inv); }
    lse[stat_at(b, i, h)] = m + log(l);
  }
}`;
}

/** Arguments of {@linkcode attentionForward}. */
export interface AttentionForwardArgs extends AttentionShape {
  /** Output `(B,T,C)`, head h at channels h·hs..; overwritten. */
  out: View;
  /** Log-sum-exp of each query row's scaled, masked scores `(B,NH,T)`, saved for backward; overwritten. */
  lse: View;
  /** Input `(B,T,3C)`: q, k, v. */
  qkv: View;
}

/** Records the causal attention forward pass: `out (B,T,C)` and `lse (B,NH,T)` from `qkv (B,T,3C)`. */
export function attentionForward(rec: Recorder, args: AttentionForwardArgs): void {
  const { B, T, C, NH } = args;
  const hs = headSize(args);
  const shape = `(B=${B}, T=${T}, C=${C}, NH=${NH})`;
  requireLength(args.out, B * T * C, `attention forward out ${shape}`);
  requireLength(args.lse, B * NH * T, `attention forward lse ${shape}`);
  requireLength(args.qkv, B * T * 3 * C, `attention forward qkv ${shape}`);
  const code = forwardCode(hs, tileRows(rec.gpu, hs));
  for (const [b0, nb] of batchChunks(rec.gpu, B, T * 3 * C)) {
    rec.dispatch({
      code,
      views: [
        slice(args.out, b0, nb, T * C),
        slice(args.lse, b0, nb, NH * T),
        slice(args.qkv, b0, nb, T * 3 * C),
      ],
      uniforms: attentionUniforms(T, C, NH),
      groups: [Math.ceil(T / ROWS), NH, nb],
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Backward

// One thread per query row: dq_i over the keys j ≤ i, tiled like the forward pass. It computes
// D_i = dout_i·out_i for itself and saves it for the dk/dv kernel.
function dqCode(hs: number, tile: number): string {
  return /* wgsl */ `${header(hs, tile)}
@group(0) @binding(0) var<storage, read_write> dqkv: array<f32>;
@group(0) @binding(1) var<storage, read_write> delta: array<f32>;
@group(0) @binding(2) var<storage, read> qkv: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read> out: array<f32>;
@group(0) @binding(5) var<storage, read> lse: array<f32>;
@group(0) @binding(6) var<uniform> p: P;
${load4("qkv")}
${load4("dout")}
${load4("out")}
${store4("dqkv")}
${KV_TILE}

@compute @workgroup_size(${ROWS})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let h = wid.y;
  let b = wid.z;
  let i = wid.x * ROWS + li;
  let valid = i < p.T;
  var q: array<vec4<f32>, HS4>;
  var dO: array<vec4<f32>, HS4>;
  var dq: array<vec4<f32>, HS4>;
  var Di = 0.0;
  var lse_i = 0.0;
  if (valid) {
    let qi = qkv_at(b, i, h);
    let oi = btc_at(b, i, h);
    for (var d = 0u; d < HS4; d++) {
      q[d] = load4_qkv(qi, d) * p.scale;
      dO[d] = load4_dout(oi, d);
      Di += dot(dO[d], load4_out(oi, d));
    }
    let si = stat_at(b, i, h);
    delta[si] = Di;
    lse_i = lse[si];
  }
  let end = min(p.T, (wid.x + 1u) * ROWS);
  for (var j0 = 0u; j0 < end; j0 += TILE) {
    load_kv_tile(b, h, j0, li);
    workgroupBarrier();
    if (valid && j0 <= i) {
      let n = min(TILE, i + 1u - j0);
      for (var jj = 0u; jj < n; jj++) {
        var s = vec4<f32>(0.0);
        var dp = vec4<f32>(0.0);
        for (var d = 0u; d < HS4; d++) {
          s = fma(q[d], Ks[jj * HS4 + d], s);
          dp = fma(dO[d], Vs[jj * HS4 + d], dp);
        }
        let ds = exp(hsum(s) - lse_i) * (hsum(dp) - Di);
        for (var d = 0u; d < HS4; d++) { dq[d] = fma(vec4<f32>(ds), Ks[jj * HS4 + d], dq[d]); }
      }
    }
    workgroupBarrier();
  }
  if (valid) {
    let qi = qkv_at(b, i, h);
    for (var d = 0u; d < HS4; d++) { store4_dqkv(qi, d, dq[d] * p.scale); }
  }
}`;
}

// One thread per key row: dk_j and dv_j over the queries i ≥ j; q and dout stream through
// workgroup memory.
function dkvCode(hs: number, tile: number): string {
  return /* wgsl */ `${header(hs, tile)}
@group(0) @binding(0) var<storage, read_write> dqkv: array<f32>;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> dout: array<f32>;
@group(0) @binding(3) var<storage, read> lse: array<f32>;
@group(0) @binding(4) var<storage, read> delta: array<f32>;
@group(0) @binding(5) var<uniform> p: P;
${load4("qkv")}
${load4("dout")}
${store4("dqkv")}

var<workgroup> Qs: array<vec4<f32>, TILE * HS4>;
var<workgroup> dOs: array<vec4<f32>, TILE * HS4>;

@compute @workgroup_size(${ROWS})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let h = wid.y;
  let b = wid.z;
  let j = wid.x * ROWS + li;
  let valid = j < p.T;
  var k: array<vec4<f32>, HS4>;
  var v: array<vec4<f32>, HS4>;
  var dk: array<vec4<f32>, HS4>;
  var dv: array<vec4<f32>, HS4>;
  if (valid) {
    let kj = qkv_at(b, j, h) + p.C;
    for (var d = 0u; d < HS4; d++) {
      k[d] = load4_qkv(kj, d) * p.scale;
      v[d] = load4_qkv(kj + p.C, d);
    }
  }
  for (var i0 = wid.x * ROWS; i0 < p.T; i0 += TILE) {
    for (var e = li; e < TILE * HS4; e += ROWS) {
      let i = i0 + e / HS4;
      var qq = vec4<f32>(0.0);
      var oo = vec4<f32>(0.0);
      if (i < p.T) {
        qq = load4_qkv(qkv_at(b, i, h), e % HS4);
        oo = load4_dout(btc_at(b, i, h), e % HS4);
      }
      Qs[e] = qq;
      dOs[e] = oo;
    }
    workgroupBarrier();
    if (valid && i0 + TILE > j) {
      let first = select(0u, j - i0, j > i0);
      let n = min(TILE, p.T - i0);
      for (var ii = first; ii < n; ii++) {
        let si = stat_at(b, i0 + ii, h);
        var s = vec4<f32>(0.0);
        var dp = vec4<f32>(0.0);
        for (var d = 0u; d < HS4; d++) {
          s = fma(k[d], Qs[ii * HS4 + d], s);
          dp = fma(v[d], dOs[ii * HS4 + d], dp);
        }
        let pij = exp(hsum(s) - lse[si]);
        let ds = pij * (hsum(dp) - delta[si]);
        for (var d = 0u; d < HS4; d++) {
          dv[d] = fma(vec4<f32>(pij), dOs[ii * HS4 + d], dv[d]);
          dk[d] = fma(vec4<f32>(ds), Qs[ii * HS4 + d], dk[d]);
        }
      }
    }
    workgroupBarrier();
  }
  if (valid) {
    let kj = qkv_at(b, j, h) + p.C;
    for (var d = 0u; d < HS4; d++) {
      store4_dqkv(kj, d, dk[d] * p.scale);
      store4_dqkv(kj + p.C, d, dv[d]);
    }
  }
}`;
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
  /** Input gradient `(B,T,3C)`: dq, dk, dv; overwritten (not accumulated into). */
  dqkv: View;
  /** Output gradient `(B,T,C)`. */
  dout: View;
  /** The forward input `(B,T,3C)`. */
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

/** Records the causal attention backward pass: `dqkv (B,T,3C)` from `dout (B,T,C)`. */
export function attentionBackward(rec: Recorder, args: AttentionBackwardArgs): void {
  const { B, T, C, NH } = args;
  const hs = headSize(args);
  const shape = `(B=${B}, T=${T}, C=${C}, NH=${NH})`;
  requireLength(args.dqkv, B * T * 3 * C, `attention backward dqkv ${shape}`);
  requireLength(args.dout, B * T * C, `attention backward dout ${shape}`);
  requireLength(args.qkv, B * T * 3 * C, `attention backward qkv ${shape}`);
  requireLength(args.out, B * T * C, `attention backward out ${shape}`);
  requireLength(args.lse, B * NH * T, `attention backward lse ${shape}`);
  requireLength(args.delta, B * NH * T, `attention backward delta ${shape}`);
  const tile = tileRows(rec.gpu, hs);
  const dq = dqCode(hs, tile);
  const dkv = dkvCode(hs, tile);
  for (const [b0, nb] of batchChunks(rec.gpu, B, T * 3 * C)) {
    const at = (v: View, perBatch: number): View => slice(v, b0, nb, perBatch);
    const dqkv = at(args.dqkv, T * 3 * C);
    const qkv = at(args.qkv, T * 3 * C);
    const dout = at(args.dout, T * C);
    const lse = at(args.lse, NH * T);
    const delta = at(args.delta, NH * T);
    const uniforms = attentionUniforms(T, C, NH);
    const groups: [number, number, number] = [Math.ceil(T / ROWS), NH, nb];
    rec.dispatch({ code: dq, views: [dqkv, delta, qkv, dout, at(args.out, T * C), lse], uniforms, groups });
    rec.dispatch({ code: dkv, views: [dqkv, qkv, dout, lse, delta], uniforms, groups });
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
  const scale = 1 / Math.sqrt(hs);
  const out = new Float64Array(B * T * C);
  const lse = new Float64Array(B * NH * T);
  const att = new Float64Array(B * NH * T * T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let i = 0; i < T; i++) {
        const qi = (b * T + i) * 3 * C + h * hs;
        const row = ((b * NH + h) * T + i) * T;
        let max = -Infinity;
        for (let j = 0; j <= i; j++) {
          const kj = (b * T + j) * 3 * C + C + h * hs;
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
          const vj = (b * T + j) * 3 * C + 2 * C + h * hs;
          for (let d = 0; d < hs; d++) out[oi + d] += att[row + j] * qkv[vj + d];
        }
      }
    }
  }
  return { out, lse, att };
}

/**
 * CPU reference of {@linkcode attentionBackward}, in f64: `dqkv (B,T,3C)` from `dout (B,T,C)`,
 * through the materialised probabilities and the plain softmax backward.
 */
export function attentionBackwardCpu(
  dout: ArrayLike<number>,
  qkv: ArrayLike<number>,
  shape: AttentionShape,
): Float64Array {
  const { B, T, C, NH } = shape;
  const hs = headSize(shape);
  const scale = 1 / Math.sqrt(hs);
  const { att } = attentionForwardCpu(qkv, shape);
  const dqkv = new Float64Array(B * T * 3 * C);
  const datt = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < NH; h++) {
      for (let i = 0; i < T; i++) {
        const row = ((b * NH + h) * T + i) * T;
        const oi = (b * T + i) * C + h * hs;
        let dsum = 0;
        for (let j = 0; j <= i; j++) {
          const vj = (b * T + j) * 3 * C + 2 * C + h * hs;
          let s = 0;
          for (let d = 0; d < hs; d++) {
            s += dout[oi + d] * qkv[vj + d];
            dqkv[vj + d] += att[row + j] * dout[oi + d];
          }
          datt[j] = s;
          dsum += att[row + j] * s;
        }
        const qi = (b * T + i) * 3 * C + h * hs;
        for (let j = 0; j <= i; j++) {
          const ds = att[row + j] * (datt[j] - dsum) * scale;
          const kj = (b * T + j) * 3 * C + C + h * hs;
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
