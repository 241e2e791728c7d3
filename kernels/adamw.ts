/**
 * The optimiser step: global gradient-norm clipping and AdamW, with CPU references.
 *
 *   ‖g‖   = √(Σ_tensors Σ_i g_i²),  scale = min(1, maxNorm / (‖g‖ + 1e-6))   (clip_grad_norm_)
 *   g     = grad·scale
 *   p     ← p·(1 − lr·wd)
 *   m     ← β1·m + (1 − β1)·g,        v ← β2·v + (1 − β2)·g²
 *   p     ← p − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + eps)             (torch.optim.AdamW)
 *
 * The step-dependent numbers (lr, bias corrections) live in a small `hyper` buffer the trainer
 * rewrites each step, so one recorded step replays unchanged. Every reduction runs in a fixed
 * order, so the norm is the same bits on every run. Tensors above the storage-binding limit (GPT-2's
 * wte is 154 MB) are bound in aligned chunks.
 *
 * @module
 */
import {
  createUniformView,
  createView,
  type Gpu,
  GpuError,
  type Recorder,
  reductionWorkgroup,
  requireLength,
  Uniforms,
  type View,
  write,
} from "./device.ts";
import { rowChunks, rowView } from "./rows.ts";
import {
  elementType,
  ELEMENTWISE_WG,
  FLAT_INDEX_WGSL,
  grid,
  vec4Elements,
  vec4Reads,
  vec4TexturesFit,
} from "./elementwise.ts";
import { type Operands, useTextureOperands } from "./scratch.ts";

// Elements per launch when tensors are read through textures (AdamW: 4 scratch textures of 4 MiB).
const TEXTURE_SLICE = 1 << 20;

/** `chunk` cut into slices of at most `rows` elements (a positive multiple of 4). */
function slice(chunk: { row0: number; rows: number }, rows: number): { row0: number; rows: number }[] {
  if (!Number.isInteger(rows) || rows < 4 || rows % 4 !== 0) {
    throw new GpuError(`texture slice of ${rows} elements is not a positive multiple of 4`);
  }
  return Array.from({ length: Math.ceil(chunk.rows / rows) }, (_, k) => ({
    row0: chunk.row0 + k * rows,
    rows: Math.min(rows, chunk.rows - k * rows),
  }));
}

// ---------------------------------------------------------------------------------------------
// Global gradient norm

// A fixed-order sum over `n` values (squared when `square`): workgroup w of `groups` takes the
// elements w·wg + lid + k·groups·wg (wg threads per workgroup), reduces them through a fixed tree and writes out[dst + w], or
// adds to it when `add`. Large tensors take two launches (many workgroups into a scratch, then
// one workgroup into the tensor's partial), which keeps every thread's loop short: llvmpipe
// returned wrong sums once a thread looped 65536 times, and one workgroup would leave a real GPU idle.
// With `vec4` (see `vec4Elements`), x is read 4 elements at a time and n counts vec4s; with
// `reads`, through a texture (`x_at`, see `vec4Reads`).
const sumCode = (vec4: boolean, wg: number, reads: string | null): string => /* wgsl */ `
struct P { n: u32, groups: u32, dst: u32, add: u32, square: u32 }
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
${
  reads ?? `@group(0) @binding(1) var<storage, read> x: array<${elementType(vec4)}>;
fn x_at(i: u32) -> ${elementType(vec4)} { return x[i]; }`
}
@group(0) @binding(2) var<uniform> p: P;
var<workgroup> red: array<f32, ${wg}>;
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var i = wid.x * ${wg}u + lid; i < p.n; i += p.groups * ${wg}u) {
    let v = x_at(i);
    s += ${
  vec4 ? "select(dot(v, vec4<f32>(1.0)), dot(v, v), p.square != 0u)" : "select(v, v * v, p.square != 0u)"
};
  }
  red[lid] = s;
  workgroupBarrier();
  for (var k = ${wg / 2}u; k > 0u; k >>= 1u) {
    if (lid < k) { red[lid] += red[lid + k]; }
    workgroupBarrier();
  }
  if (lid == 0u) {
    var total = red[0];
    if (p.add != 0u) { total += out[p.dst + wid.x]; }
    out[p.dst + wid.x] = total;
  }
}`;

// Workgroups of the first launch: enough that each thread loops ≤ 16 times on mid-sized tensors,
// at most SUM_GROUPS (a 128 MiB chunk then loops 128 times per thread).
const SUM_GROUPS = 1024;
const SUM_PER_THREAD = 16;

/** Arguments of {@linkcode gradNormSquared}. */
export interface GradNormSquaredArgs {
  /** Receives one sum of squares per gradient tensor `(≥ grads.length)`. */
  partials: View;
  /** The gradient tensors. */
  grads: View[];
  /** Largest chunk in elements; defaults to the binding limit (tests pass a small one). */
  maxChunk?: number;
  /**
   * Where the gradients are read: their buffers, or flat texture copies in slices of at most
   * `maxSlice` elements (default 2^20). Defaults to textures on a CPU adapter where every slice
   * is whole vec4s.
   */
  operands?: Operands;
  /** Elements per slice with texture operands (tests pass a small one). */
  maxSlice?: number;
}

/**
 * Records `partials[i] = Σ grads[i]²` for every gradient tensor, chunking tensors above the
 * binding limit (or, read through textures, into slices). Tensors above a few thousand elements
 * reduce through a 4 KiB scratch buffer, allocated here once per call and kept alive by the
 * recorded launches.
 */
export function gradNormSquared(rec: Recorder, args: GradNormSquaredArgs): void {
  requireLength(args.partials, args.grads.length, `grad norm partials (${args.grads.length} tensors)`);
  const chunks = args.grads.map((g) =>
    rowChunks(rec.gpu, g, { rows: g.length, cols: 1, maxRows: args.maxChunk })
  );
  const slices = chunks.map((cs) => cs.flatMap((c) => slice(c, args.maxSlice ?? TEXTURE_SLICE)));
  const textures = useTextureOperands(rec.gpu, {
    operands: args.operands,
    fit: slices.every((parts, slot) =>
      parts.every((part) => {
        const x = rowView(args.grads[slot], 1, part);
        return vec4Elements([x], part.rows).vec4 && vec4TexturesFit(rec.gpu, [x]);
      })
    ),
    what: "grad norm",
    needs: "needs slices of whole vec4s, 16-byte aligned",
  });
  const plan = textures ? slices : chunks;
  const wg = reductionWorkgroup(rec.gpu);
  let scratch: View | undefined;
  const sum = (
    out: View,
    x: View,
    u: { groups: number; dst: number; add: boolean; square: boolean; tex?: boolean },
  ): void => {
    const { vec4, count } = vec4Elements([x], x.length);
    const reads = u.tex ? vec4Reads(rec, { x }, { what: "grad norm", first: 1, textures: true }) : null;
    rec.dispatch({
      code: sumCode(vec4, wg, reads?.wgsl ?? null),
      views: reads ? [out] : [out, x],
      textures: reads?.textures,
      uniforms: new Uniforms().u32(count).u32(u.groups).u32(u.dst).u32(
        u.add ? 1 : 0,
      ).u32(u.square ? 1 : 0),
      groups: [u.groups],
    });
  };
  plan.forEach((chunks, slot) => {
    chunks.forEach((chunk, j) => {
      const x = rowView(args.grads[slot], 1, chunk);
      const groups = Math.min(SUM_GROUPS, Math.ceil(chunk.rows / (wg * SUM_PER_THREAD)));
      if (groups <= 1) {
        sum(args.partials, x, { groups: 1, dst: slot, add: j > 0, square: true, tex: textures });
        return;
      }
      scratch ??= createView(rec.gpu, SUM_GROUPS, "grad norm scratch");
      sum(scratch, x, { groups, dst: 0, add: false, square: true, tex: textures });
      sum(args.partials, rowView(scratch, 1, { row0: 0, rows: groups }), {
        groups: 1,
        dst: slot,
        add: j > 0,
        square: false,
      });
    });
  });
}

const CLIP_SCALE = /* wgsl */ `
struct P { count: u32, maxNorm: f32, clip: u32 }
@group(0) @binding(0) var<storage, read_write> scale: array<f32>;
@group(0) @binding(1) var<storage, read> partials: array<f32>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(1)
fn main() {
  var s = 0.0;
  for (var i = 0u; i < p.count; i++) { s += partials[i]; }
  let norm = sqrt(s);
  var c = 1.0;
  if (p.clip != 0u) { c = min(1.0, p.maxNorm / (norm + 1e-6)); }
  scale[0] = c;
  scale[1] = norm;
}`;

/** Arguments of {@linkcode clipScale}. */
export interface ClipScaleArgs {
  /** Receives `[min(1, maxNorm / (‖g‖ + 1e-6)), ‖g‖]` `(2)`. */
  scale: View;
  /** Sums of squares from {@linkcode gradNormSquared}. */
  partials: View;
  /** Number of partials to sum. */
  count: number;
  /** Largest allowed norm; 0 or Infinity turns clipping off (scale 1, the norm is still written). */
  maxNorm: number;
}

/** Records the clipping factor and the global gradient norm from the per-tensor partials. */
export function clipScale(rec: Recorder, args: ClipScaleArgs): void {
  requireLength(args.scale, 2, "clip scale out");
  requireLength(args.partials, args.count, `clip scale partials (count=${args.count})`);
  if (!(args.maxNorm >= 0)) throw new GpuError(`clip scale: maxNorm ${args.maxNorm} must be ≥ 0`);
  const clip = args.maxNorm > 0 && Number.isFinite(args.maxNorm);
  rec.dispatch({
    code: CLIP_SCALE,
    views: [args.scale, args.partials],
    uniforms: new Uniforms().u32(args.count).f32(clip ? args.maxNorm : 0).u32(clip ? 1 : 0),
    groups: [1],
  });
}

// ---------------------------------------------------------------------------------------------
// AdamW

/** Elements of the `hyper` buffer written by {@linkcode writeAdamwHyper}. */
export const ADAMW_HYPER_LENGTH = 8;

/** The step's AdamW settings, as the trainer knows them. */
export interface AdamwHyper {
  /** Learning rate of this step. */
  lr: number;
  /** First-moment decay (GPT-2 recipes: 0.9). */
  beta1: number;
  /** Second-moment decay (0.95 or 0.999). */
  beta2: number;
  /** Added to the denominator (1e-8). */
  eps: number;
  /** Step number t, counting from 1. */
  step: number;
}

/**
 * Writes the step's settings into `hyper`: lr, β1, β2, eps, 1 − β1, 1 − β2, lr / (1 − β1ᵗ) and
 * √(1 − β2ᵗ), computed in f64 as PyTorch does on the host, then rounded once to f32.
 *
 * @throws {GpuError} on a step below 1 or a view shorter than {@linkcode ADAMW_HYPER_LENGTH}.
 */
export function writeAdamwHyper(gpu: Gpu, hyper: View, h: AdamwHyper): void {
  requireLength(hyper, ADAMW_HYPER_LENGTH, "adamw hyper");
  if (!Number.isInteger(h.step) || h.step < 1) {
    throw new GpuError(`adamw: step ${h.step} must be an integer ≥ 1`);
  }
  const bc1 = 1 - h.beta1 ** h.step;
  const bc2 = 1 - h.beta2 ** h.step;
  write(
    gpu,
    hyper,
    new Float32Array([h.lr, h.beta1, h.beta2, h.eps, 1 - h.beta1, 1 - h.beta2, h.lr / bc1, Math.sqrt(bc2)]),
  );
}

// Mirrors torch's single-tensor AdamW: m.lerp_(g, 1-β1), v.mul_(β2).addcmul_(g, g, 1-β2),
// p.addcdiv_(m, √v/√bc2 + eps, -lr/bc1).
// With `vec4`, each invocation updates 4 elements (n counts vec4s): the tensors in 16-byte loads.
// The step's settings (hyper, then the clip scale) come as a uniform block `s`, copied from their
// storage buffers before the launch: a uniform load is one load for all lanes on a CPU adapter,
// where reading them from storage took 30% of the kernel (139 against 97 ms of CPU time for 3.3M
// parameters).
//
// `reads`: the four tensors read through textures (see `vec4Reads`: `grad_at`, `param_at`,
// `m_at`, `v_at`), or null to read the buffers.
const adamwCode = (vec4: boolean, reads: string | null): string => /* wgsl */ `
alias T = ${elementType(vec4)};
struct P { n: u32, wd: f32 }
struct S {
  lr: f32, beta1: f32, beta2: f32, eps: f32, one_minus_beta1: f32, one_minus_beta2: f32, step_size: f32,
  bc2_sqrt: f32, scale: f32,
}
@group(0) @binding(0) var<storage, read_write> param: array<T>;
@group(0) @binding(1) var<storage, read_write> m: array<T>;
@group(0) @binding(2) var<storage, read_write> v: array<T>;
@group(0) @binding(3) var<uniform> s: S;
${
  reads ?? `@group(0) @binding(4) var<storage, read> grad: array<T>;
fn grad_at(i: u32) -> T { return grad[i]; }
fn param_at(i: u32) -> T { return param[i]; }
fn m_at(i: u32) -> T { return m[i]; }
fn v_at(i: u32) -> T { return v[i]; }`
}
@group(0) @binding(${reads ? 8 : 5}) var<uniform> p: P;
${FLAT_INDEX_WGSL}
@compute @workgroup_size(${ELEMENTWISE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg, ${ELEMENTWISE_WG}u);
  if (i >= p.n) { return; }
  let lr = s.lr;
  let beta2 = s.beta2;
  let eps = s.eps;
  let one_minus_beta1 = s.one_minus_beta1;
  let one_minus_beta2 = s.one_minus_beta2;
  let step_size = s.step_size;
  let bc2_sqrt = s.bc2_sqrt;
  let g = grad_at(i) * s.scale;
  let w = param_at(i) * (1.0 - lr * p.wd);
  let m0 = m_at(i);
  let mi = m0 + one_minus_beta1 * (g - m0);
  let vi = v_at(i) * beta2 + one_minus_beta2 * g * g;
  m[i] = mi;
  v[i] = vi;
  param[i] = w - step_size * (mi / (sqrt(vi) / bc2_sqrt + eps));
}`;

/** Arguments of {@linkcode adamwUpdate}. */
export interface AdamwUpdateArgs {
  /** Parameter tensor `(n)`, updated in place. */
  param: View;
  /** Its gradient `(n)`. */
  grad: View;
  /** First moment `(n)`, updated in place (zero before step 1). */
  m: View;
  /** Second moment `(n)`, updated in place (zero before step 1). */
  v: View;
  /** The step's settings `(8)`, from {@linkcode writeAdamwHyper}. */
  hyper: View;
  /** Gradient multiplier in element 0, e.g. from {@linkcode clipScale}. */
  scale: View;
  /** Decoupled weight decay of this tensor (0 for biases and LayerNorm weights). */
  weightDecay: number;
  /** Elements. */
  n: number;
  /** Largest chunk in elements; defaults to the binding limit (tests pass a small one). */
  maxChunk?: number;
  /**
   * Where the tensors are read (written, always, to their buffers): the buffers, or flat texture
   * copies, a slice of at most `maxSlice` elements (default 2^20) per launch. Defaults to
   * textures on a CPU adapter where every slice is whole vec4s: buffer loads go lane by lane
   * there, and 3.3M parameters took 99-105 ms of CPU time from the buffers, 21-30 from textures.
   */
  operands?: Operands;
  /** Elements per launch with texture operands (tests pass a small one). */
  maxSlice?: number;
}

/** Records one AdamW step of one tensor, with torch.optim.AdamW's arithmetic. */
export function adamwUpdate(rec: Recorder, args: AdamwUpdateArgs): void {
  const { n } = args;
  requireLength(args.param, n, `adamw param (n=${n})`);
  requireLength(args.grad, n, `adamw grad (n=${n})`);
  requireLength(args.m, n, `adamw m (n=${n})`);
  requireLength(args.v, n, `adamw v (n=${n})`);
  requireLength(args.hyper, ADAMW_HYPER_LENGTH, "adamw hyper");
  requireLength(args.scale, 1, "adamw scale");
  if (!Number.isFinite(args.weightDecay)) {
    throw new GpuError(`adamw: weightDecay ${args.weightDecay} is not finite`);
  }
  // The settings block: hyper, then the clip scale, refreshed from them in queue order (the
  // trainer rewrites hyper each step), kept alive by the recorded launches.
  const chunks = rowChunks(rec.gpu, args.param, { rows: n, cols: 1, maxRows: args.maxChunk });
  const settings = createUniformView(rec.gpu, 12, "adamw settings");
  rec.copy(args.hyper, settings, { from: 0, to: 0, length: ADAMW_HYPER_LENGTH });
  rec.copy(args.scale, settings, { from: 0, to: ADAMW_HYPER_LENGTH, length: 1 });
  const slices = chunks.flatMap((chunk) => slice(chunk, args.maxSlice ?? TEXTURE_SLICE));
  const parts = (part: { row0: number; rows: number }): View[] =>
    [args.param, args.m, args.v, args.grad].map((t) => rowView(t, 1, part));
  const textures = useTextureOperands(rec.gpu, {
    operands: args.operands,
    fit: slices.every((part) => {
      const views = parts(part);
      return vec4Elements(views, part.rows).vec4 && vec4TexturesFit(rec.gpu, views);
    }),
    what: `adamw (n=${n})`,
    needs: "needs slices of whole vec4s, 16-byte aligned",
  });
  for (const part of textures ? slices : chunks) {
    const [param, m, v, grad] = parts(part);
    const { vec4, count } = vec4Elements([param, m, v, grad], part.rows);
    const reads = textures
      ? vec4Reads(rec, { grad, param, m, v }, { what: "adamw", first: 4, textures: true })
      : null;
    rec.dispatch({
      code: adamwCode(vec4, reads?.wgsl ?? null),
      views: [param, m, v, settings, ...(reads ? [] : [grad])],
      textures: reads?.textures,
      uniforms: new Uniforms().u32(count).f32(args.weightDecay),
      groups: grid(rec.gpu, count),
    });
  }
}

// ---------------------------------------------------------------------------------------------
// CPU references

/** CPU reference of {@linkcode gradNormSquared}: the sum of squares of each tensor, in f64. */
export function gradNormSquaredCpu(grads: ArrayLike<number>[]): Float64Array {
  return Float64Array.from(grads, (g) => {
    let s = 0;
    for (let i = 0; i < g.length; i++) s += g[i] * g[i];
    return s;
  });
}

/** CPU reference of {@linkcode clipScale}: `[scale, norm]`, in f64. */
export function clipScaleCpu(partials: ArrayLike<number>, maxNorm: number): Float64Array {
  let s = 0;
  for (let i = 0; i < partials.length; i++) s += partials[i];
  const norm = Math.sqrt(s);
  const clip = maxNorm > 0 && Number.isFinite(maxNorm);
  return new Float64Array([clip ? Math.min(1, maxNorm / (norm + 1e-6)) : 1, norm]);
}

/** Inputs of {@linkcode adamwCpu} besides the parameter and gradient. */
export interface AdamwCpuArgs extends AdamwHyper {
  /** First moment before the step. */
  m: ArrayLike<number>;
  /** Second moment before the step. */
  v: ArrayLike<number>;
  /** Decoupled weight decay. */
  weightDecay: number;
  /** Gradient multiplier (clip scale); 1 when omitted. */
  scale?: number;
}

/** Output of {@linkcode adamwCpu}. */
export interface AdamwCpuResult {
  /** Parameter after the step. */
  param: Float64Array;
  /** First moment after the step. */
  m: Float64Array;
  /** Second moment after the step. */
  v: Float64Array;
}

/** CPU reference of {@linkcode adamwUpdate}: one AdamW step, in f64. */
export function adamwCpu(
  param: ArrayLike<number>,
  grad: ArrayLike<number>,
  args: AdamwCpuArgs,
): AdamwCpuResult {
  const { lr, beta1, beta2, eps, step, weightDecay } = args;
  const scale = args.scale ?? 1;
  const bc1 = 1 - beta1 ** step;
  const bc2 = 1 - beta2 ** step;
  const n = param.length;
  const out = { param: new Float64Array(n), m: new Float64Array(n), v: new Float64Array(n) };
  for (let i = 0; i < n; i++) {
    const g = grad[i] * scale;
    const m = beta1 * args.m[i] + (1 - beta1) * g;
    const v = beta2 * args.v[i] + (1 - beta2) * g * g;
    const p = param[i] * (1 - lr * weightDecay);
    out.m[i] = m;
    out.v[i] = v;
    out.param[i] = p - (lr / bc1) * m / (Math.sqrt(v / bc2) + eps);
  }
  return out;
}
