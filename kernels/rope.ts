/**
 * Rotary position embedding (RoPE) of LLaMA's queries and keys, fused with packing q, k and v
 * into the `(BT, (NH + 2·NKV)·hs)` rows the attention kernels read; forward and backward, with CPU
 * references.
 *
 * The engine uses one convention, Hugging Face's "rotate half": dimension d of a head pairs with
 * d + hs/2 (checkpoints in the Meta/GGUF interleaved layout are permuted at load). For row
 * position t and pair d < hs/2, with c = cos(t·θ_d), s = sin(t·θ_d), θ_d = base^(-2d/hs):
 *
 *   forward    y[d] = x[d]·c − x[d+hs/2]·s       y[d+hs/2] = x[d+hs/2]·c + x[d]·s    (q and k)
 *   backward   dx[d] = dy[d]·c + dy[d+hs/2]·s    dx[d+hs/2] = dy[d+hs/2]·c − dy[d]·s
 *
 * v is copied (forward) and its gradient copied back (backward). The cos and sin tables come from
 * {@linkcode ropeTables}, computed on the CPU as PyTorch computes them in f32: WGSL's `cos` is
 * only accurate near zero, and angles reach hundreds of radians.
 *
 * The frequencies θ_d may be scaled for contexts longer than pretraining, as Hugging Face's
 * `rope_type` says ({@linkcode RopeScaling}): `linear` divides every θ_d by `factor` (positions
 * t/factor); `llama3` (Llama 3.1+) keeps the high frequencies, divides the low ones by `factor`
 * and interpolates between. Each layer may have its own base and scaling (Gemma 3: sliding layers
 * 10000, global layers 1e6 scaled): {@linkcode ropeLayerTables} gives each its tables. Explicit
 * per-frequency divisors (`RopeSpec.freqFactors`) state any such scaling as numbers: llama.cpp's
 * `rope_freqs` tensor, which is how its GGUF files carry Llama 3's.
 *
 * @module
 */
import { UserError } from "@inheritune/data/errors";
import { GpuError, type Recorder, requireLength, Uniforms, type View } from "./device.ts";
import { ELEMENTWISE_WG, FLAT_INDEX_WGSL, grid, vec4Reads, vec4TexturesFit } from "./elementwise.ts";
import { type Operands, useTextureOperands } from "./scratch.ts";

/** Shape of the RoPE kernels. */
export interface RopeShape {
  /** Rows (B·T); row r is position r mod T. */
  BT: number;
  /** Sequence length. */
  T: number;
  /** Query heads. */
  NH: number;
  /** Key/value heads (NKV divides NH; NKV = NH without grouped-query attention). */
  NKV: number;
  /** Head size, even. */
  hs: number;
  /**
   * Where the quad kernels (head sizes a multiple of 8, see {@linkcode ropeForward}) read their
   * inputs: storage buffers, or flat textures. Defaults to textures on a CPU adapter.
   */
  operands?: Operands;
}

/** cos and sin of every (position, pair) angle: each `(maxT, hs/2)`. */
export interface RopeTables {
  /** cos(t·θ_d) at `t·hs/2 + d`. */
  cos: Float32Array;
  /** sin(t·θ_d) at `t·hs/2 + d`. */
  sin: Float32Array;
}

/**
 * RoPE frequency scaling, in Hugging Face's terms (`rope_scaling` in v4 configs, `rope_parameters`
 * in v5), with its field names; see {@linkcode ropeScaling} for reading it from a config.
 */
export type RopeScaling =
  | { rope_type: "default" }
  | { rope_type: "linear"; factor: number }
  | {
    rope_type: "llama3";
    factor: number;
    low_freq_factor: number;
    high_freq_factor: number;
    original_max_position_embeddings: number;
  };

/** The RoPE types {@linkcode RopeScaling} knows. */
export const ROPE_TYPES: readonly RopeScaling["rope_type"][] = ["default", "linear", "llama3"];

/** A RoPE configuration this engine does not implement or that makes no sense; one line naming it. */
export class RopeScalingError extends UserError {
  /** Creates the error with its one-line message. */
  constructor(message: string) {
    super(message);
    this.name = "RopeScalingError";
  }
}

function unsupported(what: string, type: unknown): RopeScalingError {
  return new RopeScalingError(
    `${what}: rope_type ${JSON.stringify(type)} is not supported (${ROPE_TYPES.join(", ")})`,
  );
}

// The fields each type requires besides `rope_type`, and the keys any type may carry: the v4
// alias `type`, and `rope_theta`, which v5 keeps in the same object (the caller reads it).
const FIELDS: Record<RopeScaling["rope_type"], string[]> = {
  default: [],
  linear: ["factor"],
  llama3: ["factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"],
};
const SHARED_KEYS = ["rope_type", "type", "rope_theta"];

/**
 * Reads a Hugging Face `rope_scaling` (v4) or `rope_parameters` (v5, one layer type's) object:
 * `null`, absent or `{}` is plain RoPE; `rope_type` (or v4's `type`) must be one of
 * {@linkcode ROPE_TYPES} with its fields, positive numbers. As transformers does, a `llama3`
 * object without `original_max_position_embeddings` takes `max_position_embeddings`.
 *
 * @throws {RopeScalingError} `"<what>: ..."` naming an unknown `rope_type`, a key it does not
 * understand, or a missing or bad field.
 */
export function ropeScaling(
  value: unknown,
  context: { what: string; max_position_embeddings?: number },
): RopeScaling {
  const { what } = context;
  if (value === null || value === undefined) return { rope_type: "default" };
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new RopeScalingError(`${what}: expected an object, got ${JSON.stringify(value)}`);
  }
  const obj = value as Record<string, unknown>;
  const type = obj.rope_type ?? obj.type ?? "default";
  if (!ROPE_TYPES.includes(type as RopeScaling["rope_type"])) throw unsupported(what, type);
  const rope_type = type as RopeScaling["rope_type"];
  const fields = FIELDS[rope_type];
  for (const key of Object.keys(obj)) {
    if (key === "partial_rotary_factor" && obj[key] === 1) continue; // all dimensions rotate, as here
    if (!SHARED_KEYS.includes(key) && !fields.includes(key)) {
      throw new RopeScalingError(`${what}: key ${key} is not understood for rope_type ${rope_type}`);
    }
  }
  const out: Record<string, unknown> = { rope_type };
  for (const key of fields) {
    const v = key === "original_max_position_embeddings"
      ? obj[key] ?? context.max_position_embeddings
      : obj[key];
    if (typeof v !== "number" || !(v > 0) || !Number.isFinite(v)) {
      throw new RopeScalingError(
        `${what}: ${rope_type} needs ${key} a positive number, got ${JSON.stringify(v)}`,
      );
    }
    out[key] = v;
  }
  if (rope_type === "llama3" && !((out.high_freq_factor as number) > (out.low_freq_factor as number))) {
    throw new RopeScalingError(
      `${what}: llama3 needs high_freq_factor > low_freq_factor, got ${out.high_freq_factor} and ${out.low_freq_factor}`,
    );
  }
  return out as RopeScaling;
}

/** Base and scaling of one layer's RoPE. */
export interface RopeSpec {
  /** The base θ (`rope_theta`; Gemma 3's sliding layers: `rope_local_base_freq`). */
  theta: number;
  /** Frequency scaling; plain RoPE when absent. */
  scaling?: RopeScaling;
  /**
   * Divisors of the `hs/2` frequencies, pair by pair, after `scaling`: llama.cpp's `rope_freqs`
   * (Llama 3's scaling in GGUF files); none when absent.
   */
  freqFactors?: readonly number[];
}

/**
 * The `hs/2` inverse frequencies θ_d of a head of `hs` dimensions, rounded step by step as
 * transformers computes them in f32: `1 / theta^(2d/hs)`, then the scaling of `spec.scaling`
 * (`_compute_linear_scaling_rope_parameters`, `_compute_llama3_parameters`), then the division
 * by `spec.freqFactors`.
 *
 * @throws {GpuError} when `hs` is not even or `freqFactors` are not `hs/2` positive numbers;
 * {@linkcode RopeScalingError} on an unknown `rope_type`.
 */
export function ropeInvFreq(hs: number, spec: RopeSpec): Float32Array {
  if (!Number.isInteger(hs) || hs < 2 || hs % 2 !== 0) {
    throw new GpuError(`rope: head size ${hs} is not even`);
  }
  const f = Math.fround;
  const inv = Float32Array.from({ length: hs / 2 }, (_, d) => f(1 / f(spec.theta ** f((2 * d) / hs))));
  const scaled = scaleInvFreq(inv, spec.scaling ?? { rope_type: "default" });
  const factors = spec.freqFactors;
  if (factors === undefined) return scaled;
  if (factors.length !== hs / 2 || !factors.every((x) => x > 0 && Number.isFinite(x))) {
    throw new GpuError(`rope: freqFactors must be ${hs / 2} positive numbers, got [${factors}]`);
  }
  return scaled.map((v, d) => f(v / f(factors[d])));
}

function scaleInvFreq(inv: Float32Array, s: RopeScaling): Float32Array {
  const f = Math.fround;
  switch (s.rope_type) {
    case "default":
      return inv;
    case "linear":
      return inv.map((v) => f(v / f(s.factor)));
    case "llama3":
      return inv.map((v) => llama3InvFreq(v, s));
    default:
      throw unsupported("rope", (s as { rope_type: unknown }).rope_type);
  }
}

/**
 * Llama 3.1's rule for one inverse frequency: wavelengths 2π/θ below `original / high_freq_factor`
 * stay, those above `original / low_freq_factor` are divided by `factor`, those between are
 * interpolated with the weight `(original / wavelength − low) / (high − low)`. f32 steps as
 * PyTorch takes them (`a / tensor` is `tensor.reciprocal() · a`).
 */
function llama3InvFreq(inv: number, s: Extract<RopeScaling, { rope_type: "llama3" }>): number {
  const f = Math.fround;
  const old = s.original_max_position_embeddings;
  const lowWavelen = f(old / s.low_freq_factor), highWavelen = f(old / s.high_freq_factor);
  const wavelen = f(f(1 / inv) * f(2 * Math.PI));
  const scaled = wavelen > lowWavelen ? f(inv / f(s.factor)) : inv;
  if (wavelen < highWavelen || wavelen > lowWavelen) return scaled;
  const smooth = f(
    f(f(f(1 / wavelen) * f(old)) - f(s.low_freq_factor)) / f(s.high_freq_factor - s.low_freq_factor),
  );
  return f(f(f(f(1 - smooth) * scaled) / f(s.factor)) + f(smooth * scaled));
}

/**
 * The angle tables for positions `0 .. maxT-1` of a head of `hs` dimensions and base `theta`,
 * optionally scaled, rounded as Hugging Face computes them in f32: the inverse frequencies of
 * {@linkcode ropeInvFreq}, `angle = t·inv_freq`, then cos and sin of the f32 angle.
 */
export function ropeTables(shape: { hs: number; maxT: number } & RopeSpec): RopeTables {
  const { hs, maxT } = shape;
  const inv = ropeInvFreq(hs, shape);
  const half = hs / 2;
  const cos = new Float32Array(maxT * half);
  const sin = new Float32Array(maxT * half);
  for (let d = 0; d < half; d++) {
    for (let t = 0; t < maxT; t++) {
      const angle = Math.fround(t * inv[d]);
      cos[t * half + d] = Math.cos(angle);
      sin[t * half + d] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

/** Result of {@linkcode ropeLayerTables}. */
export interface RopeLayerTables {
  /** One table pair per distinct {@linkcode RopeSpec}, in order of first use. */
  tables: RopeTables[];
  /** For each layer, the index of its tables in `tables`. */
  layer: number[];
}

/**
 * The tables of every layer from its own base and scaling (`layers[l]`), computed once per
 * distinct spec: Gemma 3's sliding and global layers share two pairs between them.
 */
export function ropeLayerTables(layers: RopeSpec[], shape: { hs: number; maxT: number }): RopeLayerTables {
  const seen = new Map<string, number>();
  const tables: RopeTables[] = [];
  const layer = layers.map((spec) => {
    const key = JSON.stringify([spec.theta, spec.scaling ?? { rope_type: "default" }, spec.freqFactors]);
    let i = seen.get(key);
    if (i === undefined) {
      seen.set(key, i = tables.length);
      tables.push(ropeTables({ ...shape, ...spec }));
    }
    return i;
  });
  return { tables, layer };
}

function check(shape: RopeShape, what: string): number {
  const { BT, T, NH, NKV, hs } = shape;
  for (const [name, v] of Object.entries({ BT, T, NH, NKV, hs })) {
    if (!Number.isInteger(v) || v < 1) throw new GpuError(`${what}: ${name}=${v} is not a positive integer`);
  }
  if (hs % 2 !== 0) throw new GpuError(`${what}: head size ${hs} is not even`);
  if (NH % NKV !== 0) throw new GpuError(`${what}: NKV=${NKV} does not divide NH=${NH}`);
  if (BT % T !== 0) throw new GpuError(`${what}: BT=${BT} is not a multiple of T=${T}`);
  return (NH + 2 * NKV) * hs;
}

// One invocation per pair (d, d + hs/2) of one head of one packed row: heads 0..NH-1 are q,
// NH..NH+NKV-1 k, the rest v, which rotates by angle 0 (cos 1, sin 0): a copy.
const HEADER = /* wgsl */ `
struct P { count: u32, T: u32, NH: u32, NKV: u32, half: u32 }
${FLAT_INDEX_WGSL}
// Invocation i's pair: packed row r, head h, dimension d, the pair's first element o in the
// packed row, and the rotation's cos and sin.
struct Pair { r: u32, h: u32, d: u32, o: u32, c: f32, s: f32 }
fn pair_of(i: u32) -> Pair {
  let pairs = width() / 2u;
  let r = i / pairs;
  let h = (i % pairs) / p.half;
  let d = i % p.half;
  let a = (r % p.T) * p.half + d;
  let v = part(h) == 2u;
  return Pair(r, h, d, r * width() + h * 2u * p.half + d, select(cos_t[a], 1.0, v), select(sin_t[a], 0.0, v));
}
// Packed row width in floats, and where head h's element d of row r lies unpacked: its buffer
// (0 q, 1 k, 2 v) and the offset in it.
fn width() -> u32 { return (p.NH + 2u * p.NKV) * 2u * p.half; }
fn part(h: u32) -> u32 { return select(select(2u, 1u, h < p.NH + p.NKV), 0u, h < p.NH); }
fn unpacked(r: u32, h: u32, d: u32) -> u32 {
  let hs = 2u * p.half;
  switch part(h) {
    case 0u: { return r * p.NH * hs + h * hs + d; }
    case 1u: { return r * p.NKV * hs + (h - p.NH) * hs + d; }
    default: { return r * p.NKV * hs + (h - p.NH - p.NKV) * hs + d; }
  }
}`;

const FORWARD = /* wgsl */ `
@group(0) @binding(0) var<storage, read_write> qkv: array<f32>;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> cos_t: array<f32>;
@group(0) @binding(5) var<storage, read> sin_t: array<f32>;
@group(0) @binding(6) var<uniform> p: P;
${HEADER}
fn load(h: u32, i: u32) -> f32 {
  switch part(h) {
    case 0u: { return q[i]; }
    case 1u: { return k[i]; }
    default: { return v[i]; }
  }
}
@compute @workgroup_size(${ELEMENTWISE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg, ${ELEMENTWISE_WG}u);
  if (i >= p.count) { return; }
  let q = pair_of(i);
  let x1 = load(q.h, unpacked(q.r, q.h, q.d));
  let x2 = load(q.h, unpacked(q.r, q.h, q.d + p.half));
  qkv[q.o] = x1 * q.c - x2 * q.s;
  qkv[q.o + p.half] = x2 * q.c + x1 * q.s;
}`;

/** Arguments of {@linkcode ropeForward}. */
export interface RopeForwardArgs extends RopeShape {
  /** Packed output `(BT, (NH + 2·NKV)·hs)`: rotated q, rotated k, v; overwritten. */
  qkv: View;
  /** Queries `(BT, NH·hs)`. */
  q: View;
  /** Keys `(BT, NKV·hs)`. */
  k: View;
  /** Values `(BT, NKV·hs)`. */
  v: View;
  /** cos table `(≥T, hs/2)` from {@linkcode ropeTables}. */
  cos: View;
  /** sin table `(≥T, hs/2)`. */
  sin: View;
}

/** Invocations of the kernels: one per rotated pair of a packed row. */
function pairCount(shape: RopeShape): number {
  return (shape.BT * (shape.NH + 2 * shape.NKV) * shape.hs) / 2;
}

function uniforms(shape: RopeShape): Uniforms {
  return new Uniforms().u32(pairCount(shape)).u32(shape.T).u32(shape.NH).u32(shape.NKV).u32(shape.hs / 2);
}

function checkViews(
  what: string,
  shape: RopeShape,
  views: { qkv: View; q: View; k: View; v: View; cos: View; sin: View },
): void {
  const width = check(shape, what);
  const { BT, T, NH, NKV, hs } = shape;
  const s = `(BT=${BT}, NH=${NH}, NKV=${NKV}, hs=${hs})`;
  requireLength(views.qkv, BT * width, `${what} qkv ${s}`);
  requireLength(views.q, BT * NH * hs, `${what} q ${s}`);
  requireLength(views.k, BT * NKV * hs, `${what} k ${s}`);
  requireLength(views.v, BT * NKV * hs, `${what} v ${s}`);
  requireLength(views.cos, (T * hs) / 2, `${what} cos table (T=${T}, hs=${hs})`);
  requireLength(views.sin, (T * hs) / 2, `${what} sin table (T=${T}, hs=${hs})`);
}

/**
 * Records `qkv = [rope(q), rope(k), v]` per row. For head sizes that are a multiple of 8, with
 * 16-byte aligned views, the quad kernel rotates 4 pairs per invocation, once for each of q, k
 * and v; otherwise one invocation rotates one pair.
 */
export function ropeForward(rec: Recorder, args: RopeForwardArgs): void {
  checkViews("rope", args, args);
  if (quads(args, [args.qkv, args.q, args.k, args.v, args.cos, args.sin])) {
    parts(args).forEach(({ x, heads, col, rotate }) =>
      dispatchQuads(rec, { ...args, packed: args.qkv, x: args[x], heads, col, rotate, backward: false })
    );
    return;
  }
  rec.dispatch({
    code: FORWARD,
    views: [args.qkv, args.q, args.k, args.v, args.cos, args.sin],
    uniforms: uniforms(args),
    groups: grid(rec.gpu, pairCount(args)),
  });
}

const BACKWARD = /* wgsl */ `
@group(0) @binding(0) var<storage, read_write> dq: array<f32>;
@group(0) @binding(1) var<storage, read_write> dk: array<f32>;
@group(0) @binding(2) var<storage, read_write> dv: array<f32>;
@group(0) @binding(3) var<storage, read> dqkv: array<f32>;
@group(0) @binding(4) var<storage, read> cos_t: array<f32>;
@group(0) @binding(5) var<storage, read> sin_t: array<f32>;
@group(0) @binding(6) var<uniform> p: P;
${HEADER}
fn store(h: u32, i: u32, x: f32) {
  switch part(h) {
    case 0u: { dq[i] = x; }
    case 1u: { dk[i] = x; }
    default: { dv[i] = x; }
  }
}
@compute @workgroup_size(${ELEMENTWISE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg, ${ELEMENTWISE_WG}u);
  if (i >= p.count) { return; }
  let q = pair_of(i);
  let g1 = dqkv[q.o];
  let g2 = dqkv[q.o + p.half];
  store(q.h, unpacked(q.r, q.h, q.d), g1 * q.c + g2 * q.s);
  store(q.h, unpacked(q.r, q.h, q.d + p.half), g2 * q.c - g1 * q.s);
}`;

/** Arguments of {@linkcode ropeBackward}. */
export interface RopeBackwardArgs extends RopeShape {
  /** Query gradient `(BT, NH·hs)`, overwritten. */
  dq: View;
  /** Key gradient `(BT, NKV·hs)`, overwritten. */
  dk: View;
  /** Value gradient `(BT, NKV·hs)`, overwritten. */
  dv: View;
  /** Gradient of the packed output `(BT, (NH + 2·NKV)·hs)`. */
  dqkv: View;
  /** cos table `(≥T, hs/2)`. */
  cos: View;
  /** sin table `(≥T, hs/2)`. */
  sin: View;
}

/** Records the gradients of q, k and v from that of the packed, rotated `qkv` (as {@linkcode ropeForward}). */
export function ropeBackward(rec: Recorder, args: RopeBackwardArgs): void {
  checkViews("rope backward", args, { qkv: args.dqkv, q: args.dq, k: args.dk, v: args.dv, ...args });
  const grads = { q: args.dq, k: args.dk, v: args.dv };
  if (quads(args, [args.dqkv, args.dq, args.dk, args.dv, args.cos, args.sin])) {
    parts(args).forEach(({ x, heads, col, rotate }) =>
      dispatchQuads(rec, { ...args, packed: args.dqkv, x: grads[x], heads, col, rotate, backward: true })
    );
    return;
  }
  rec.dispatch({
    code: BACKWARD,
    views: [args.dq, args.dk, args.dv, args.dqkv, args.cos, args.sin],
    uniforms: uniforms(args),
    groups: grid(rec.gpu, pairCount(args)),
  });
}

// ---------------------------------------------------------------------------------------------
// Quads: 4 pairs per invocation, one launch per part (q, k, v)

// Invocation i = (r·heads + h)·QUADS + j rotates pairs 4j .. 4j+3 of head h of row r of one part
// x (BT, heads·hs), vec4 `o` of the packed row holding them; v's part is a copy (cos 1, sin 0).
// Forward: packed = rope(x); backward: x = rope⁻¹(packed).
function quadCode(backward: boolean, reads: string): string {
  const rotate = backward
    ? `out[src] = g1 * c + g2 * s;\n  out[src + p.quads] = g2 * c - g1 * s;`
    : `out[o] = g1 * c - g2 * s;\n  out[o + p.quads] = g2 * c + g1 * s;`;
  const load = backward ? "packed_at(o)" : "x_at(src)";
  const load2 = backward ? "packed_at(o + p.quads)" : "x_at(src + p.quads)";
  return /* wgsl */ `
struct P { count: u32, T: u32, heads: u32, quads: u32, W4: u32, col4: u32, rotate: u32 }
@group(0) @binding(0) var<storage, read_write> out: array<vec4<f32>>;
${reads}
@group(0) @binding(4) var<uniform> p: P;
${FLAT_INDEX_WGSL}
@compute @workgroup_size(${ELEMENTWISE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg, ${ELEMENTWISE_WG}u);
  if (i >= p.count) { return; }
  let j = i % p.quads;
  let rh = i / p.quads; // r·heads + h
  let r = rh / p.heads;
  let hs4 = 2u * p.quads;
  let src = rh * hs4 + j;
  let o = r * p.W4 + p.col4 + (rh - r * p.heads) * hs4 + j;
  var c = vec4<f32>(1.0);
  var s = vec4<f32>(0.0);
  if (p.rotate != 0u) {
    let a = (r % p.T) * p.quads + j;
    c = cos_t_at(a);
    s = sin_t_at(a);
  }
  let g1 = ${load};
  let g2 = ${load2};
  ${rotate}
}`;
}

/** Whether the quad kernels take this shape: head size a multiple of 8, every view 16-byte aligned. */
function quads(shape: RopeShape, views: View[]): boolean {
  return shape.hs % 8 === 0 && views.every((v) => v.offset % 4 === 0);
}

/** The three parts of a packed row: which tensor, its heads, its first column, whether it rotates. */
function parts(shape: RopeShape): { x: "q" | "k" | "v"; heads: number; col: number; rotate: boolean }[] {
  const { NH, NKV, hs } = shape;
  return [
    { x: "q", heads: NH, col: 0, rotate: true },
    { x: "k", heads: NKV, col: NH * hs, rotate: true },
    { x: "v", heads: NKV, col: (NH + NKV) * hs, rotate: false },
  ];
}

function dispatchQuads(
  rec: Recorder,
  args: RopeShape & {
    packed: View;
    x: View;
    cos: View;
    sin: View;
    heads: number;
    col: number;
    rotate: boolean;
    backward: boolean;
  },
): void {
  const { BT, T, NH, NKV, hs, heads, backward } = args;
  const W = (NH + 2 * NKV) * hs;
  const x = { ...args.x, length: BT * heads * hs };
  const packed = { ...args.packed, length: BT * W };
  const tables = {
    cos_t: { ...args.cos, length: (T * hs) / 2 },
    sin_t: { ...args.sin, length: (T * hs) / 2 },
  };
  const reads = backward ? { packed, ...tables } : { x, ...tables };
  const what = `rope${backward ? " backward" : ""} quads`;
  const textures = useTextureOperands(rec.gpu, {
    operands: args.operands,
    fit: vec4TexturesFit(rec.gpu, Object.values(reads)),
    what,
    needs: "needs tables within a texture",
  });
  const bound = vec4Reads(rec, reads, { what, first: 1, textures });
  const count = (BT * heads * hs) / 8;
  rec.dispatch({
    code: quadCode(backward, bound.wgsl),
    views: [backward ? x : packed, ...bound.views],
    textures: bound.textures,
    uniforms: new Uniforms().u32(count).u32(T).u32(heads).u32(hs / 8).u32(W / 4).u32(args.col / 4)
      .u32(args.rotate ? 1 : 0),
    groups: grid(rec.gpu, count),
  });
}

// ---------------------------------------------------------------------------------------------
// CPU references

/** CPU reference of {@linkcode ropeForward}: the packed `(BT, (NH + 2·NKV)·hs)` rows, in f64. */
export function ropeForwardCpu(
  x: { q: ArrayLike<number>; k: ArrayLike<number>; v: ArrayLike<number> },
  shape: RopeShape & RopeTables,
): Float64Array {
  const width = check(shape, "rope");
  const { BT, T, NH, NKV, hs } = shape;
  const half = hs / 2;
  const out = new Float64Array(BT * width);
  for (let r = 0; r < BT; r++) {
    for (let h = 0; h < NH + 2 * NKV; h++) {
      const [src, base] = h < NH
        ? [x.q, r * NH * hs + h * hs]
        : h < NH + NKV
        ? [x.k, r * NKV * hs + (h - NH) * hs]
        : [x.v, r * NKV * hs + (h - NH - NKV) * hs];
      const o = r * width + h * hs;
      for (let d = 0; d < half; d++) {
        const x1 = src[base + d], x2 = src[base + d + half];
        const [c, s] = h < NH + NKV ? [shape.cos[(r % T) * half + d], shape.sin[(r % T) * half + d]] : [1, 0];
        out[o + d] = x1 * c - x2 * s;
        out[o + d + half] = x2 * c + x1 * s;
      }
    }
  }
  return out;
}

/** CPU reference of {@linkcode ropeBackward}: the gradients of q, k and v, in f64. */
export function ropeBackwardCpu(
  dqkv: ArrayLike<number>,
  shape: RopeShape & RopeTables,
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const width = check(shape, "rope backward");
  const { BT, T, NH, NKV, hs } = shape;
  const half = hs / 2;
  const dq = new Float64Array(BT * NH * hs);
  const dk = new Float64Array(BT * NKV * hs);
  const dv = new Float64Array(BT * NKV * hs);
  for (let r = 0; r < BT; r++) {
    for (let h = 0; h < NH + 2 * NKV; h++) {
      const [dst, base] = h < NH
        ? [dq, r * NH * hs + h * hs]
        : h < NH + NKV
        ? [dk, r * NKV * hs + (h - NH) * hs]
        : [dv, r * NKV * hs + (h - NH - NKV) * hs];
      const o = r * width + h * hs;
      for (let d = 0; d < half; d++) {
        const g1 = dqkv[o + d], g2 = dqkv[o + d + half];
        const [c, s] = h < NH + NKV ? [shape.cos[(r % T) * half + d], shape.sin[(r % T) * half + d]] : [1, 0];
        dst[base + d] = g1 * c + g2 * s;
        dst[base + d + half] = g2 * c - g1 * s;
      }
    }
  }
  return { dq, dk, dv };
}
