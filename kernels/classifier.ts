/**
 * The LM head fused with softmax and cross-entropy, over chunks of the vocabulary, with CPU
 * references.
 *
 *   forward    logits (BT,V) = inp (BT,C) · wteᵀ        (the head is tied to the token embedding)
 *              [logits = c·tanh(logits/c)]              (optional soft-capping, softcap.ts)
 *              lse = log Σ_v exp(logits),  loss = lse - logits[target]
 *   backward   dlogits = (softmax(logits) - onehot(target))·dlossScale  [·(1 - (logits/c)²)]
 *              dinp += dlogits · wte,  dwte += dlogitsᵀ · inp
 *
 * For GPT-2 124M with B·T = 4096 the logits take 823 MB and wte 154 MB, both above the 128 MiB
 * storage-binding limit, so the logits are never materialised whole: the vocabulary is cut into
 * chunks of `Vc` rows of wte, each chunk's logits (BT,Vc) are computed into one reused scratch
 * buffer, and an online softmax carries a running max and a rescaled running sum per row from
 * chunk to chunk. The backward pass recomputes each chunk's logits from the saved `lse` instead
 * of storing them, unless all the logits fit one binding: then the scratch keeps every chunk's,
 * as PyTorch keeps its logits, and the backward pass skips a quarter of the classifier's products.
 *
 * @module
 */
import {
  createView,
  type Gpu,
  GpuError,
  type GpuLimits,
  type Recorder,
  reductionWorkgroup,
  requireLength,
  Uniforms,
  type View,
} from "./device.ts";
import {
  elementType,
  FLAT_INDEX_WGSL,
  grid,
  ROW_INDEX_WGSL,
  rowGrid,
  vec4Reads,
  vec4TexturesFit,
} from "./elementwise.ts";
import { matmul } from "./matmul.ts";
import { checkSoftcap, softcapBackwardCpu, softcapForward, softcapForwardCpu } from "./softcap.ts";
import { type Operands, useTextureOperands } from "./scratch.ts";

/** A target equal to this id contributes loss 0 and no gradient (PyTorch's `ignore_index`, as u32). */
export const IGNORE_INDEX = 0xffffffff;

// ---------------------------------------------------------------------------------------------
// Chunking and scratch

/** Shape of the classifier: positions, channels, vocabulary. */
export interface ClassifierShape {
  /** Positions (B·T). */
  BT: number;
  /** Channels. */
  C: number;
  /** Vocabulary size (rows of wte). */
  V: number;
  /** Largest chunk in vocabulary rows (tests pass a small one to split a tiny vocabulary). */
  maxChunk?: number;
  /**
   * Whether the scratch keeps the logits of every chunk for the backward pass (default: when
   * all of them, B·T·V floats, fit one storage binding).
   */
  keepLogits?: boolean;
}

/**
 * Picks the vocabulary chunk `Vc`: a multiple of 64 rows (and of the offset alignment), so every
 * chunk of wte starts on an aligned byte offset whatever C is, with the logits chunk (BT,Vc) and
 * the wte chunk (Vc,C) each within one storage binding. Among the fewest chunks that fit, it
 * takes the smallest `Vc`, so the chunks are balanced and the scratch no larger than needed.
 *
 * @throws {GpuError} when not even 64 rows fit one binding.
 */
export function classifierChunk(
  limits: Pick<
    GpuLimits,
    "maxStorageBufferBindingSize" | "maxBufferSize" | "minStorageBufferOffsetAlignment"
  >,
  shape: ClassifierShape,
): number {
  const { BT, C, V } = shape;
  for (const [name, n] of Object.entries({ BT, C, V })) {
    if (!Number.isInteger(n) || n < 1) throw new GpuError(`classifier: invalid ${name} ${n}`);
  }
  const unit = Math.max(64, limits.minStorageBufferOffsetAlignment / 4);
  const elems = Math.floor(Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize) / 4);
  let most = Math.floor(Math.min(elems / BT, elems / C) / unit) * unit;
  if (shape.maxChunk !== undefined) most = Math.min(most, Math.floor(shape.maxChunk / unit) * unit);
  if (most < unit) {
    throw new GpuError(
      `classifier: no vocabulary chunk of ${unit} rows fits one binding of ` +
        `${limits.maxStorageBufferBindingSize} bytes with BT=${BT}, C=${C}` +
        (shape.maxChunk !== undefined ? ` and maxChunk=${shape.maxChunk}` : ""),
    );
  }
  const chunks = Math.ceil(V / most);
  return Math.ceil(Math.ceil(V / chunks) / unit) * unit;
}

/** Buffers the classifier kernels reuse every step, allocated once for one shape. */
export interface ClassifierScratch {
  /** Positions it was made for. */
  readonly BT: number;
  /** Channels it was made for. */
  readonly C: number;
  /** Vocabulary it was made for. */
  readonly V: number;
  /** Vocabulary rows per chunk (`Vc`). */
  readonly chunk: number;
  /** Whether {@linkcode ClassifierScratch.logits} holds every chunk's logits. */
  readonly keep: boolean;
  /**
   * One chunk of logits `(BT,Vc)`, or with `keep` every chunk's, the chunk from vocabulary row v0
   * at element BT·v0; the backward pass turns them into dlogits in place.
   */
  readonly logits: View;
  /** Per row: running max, running sum of exp(logit - max), target logit `(BT,3)`. */
  readonly state: View;
}

/**
 * Allocates the scratch of {@linkcode classifierForward} and {@linkcode classifierBackward}. On a
 * CPU adapter a chunk holds at most `maxTextureDimension2D` vocabulary rows, so that its products
 * read texture operands (a wte chunk is a texture of one row per vocabulary id): GPT-2's 50257
 * rows in one chunk took the buffer kernels, 10 s of a 12 s step at B·T = 512, C = 64.
 */
export function createClassifierScratch(gpu: Gpu, shape: ClassifierShape): ClassifierScratch {
  const { BT, C, V } = shape;
  const maxChunk = gpu.isFallback
    ? Math.min(shape.maxChunk ?? Infinity, gpu.limits.maxTextureDimension2D)
    : shape.maxChunk;
  const chunk = classifierChunk(gpu.limits, { ...shape, maxChunk });
  const { maxStorageBufferBindingSize: binding, maxBufferSize } = gpu.limits;
  const keep = shape.keepLogits ?? BT * V * 4 <= Math.min(binding, maxBufferSize);
  if (keep && BT * V * 4 > maxBufferSize) {
    throw new GpuError(`classifier: logits of BT=${BT}, V=${V} exceed maxBufferSize ${maxBufferSize}`);
  }
  return {
    BT,
    C,
    V,
    chunk,
    keep,
    logits: createView(gpu, BT * (keep ? V : chunk), "classifier logits"),
    state: createView(gpu, BT * 3, "classifier softmax state"),
  };
}

/**
 * The chunks of the vocabulary: first row and number of rows of each. A last chunk whose rows are
 * not a multiple of 64 gives its odd rows a chunk of their own, so that on a CPU adapter every
 * other chunk's products read texture operands (rows of a multiple of 64 floats) and only those
 * few rows take the much slower buffer kernels: GPT-2's 50257 rows end in a chunk of 17.
 */
function vocabChunks(scratch: ClassifierScratch): { v0: number; n: number }[] {
  const out = [];
  for (let v0 = 0, n = 0; v0 < scratch.V; v0 += n) {
    n = Math.min(scratch.chunk, scratch.V - v0);
    if (n > 64 && n % 64 !== 0) n -= n % 64;
    out.push({ v0, n });
  }
  return out;
}

/** The scratch's view of the logits `(BT,n)` of the chunk from vocabulary row `v0`. */
function chunkView(scratch: ClassifierScratch, chunk: { v0: number; n: number }): View {
  const { BT, logits } = scratch;
  return {
    buffer: logits.buffer,
    offset: logits.offset + (scratch.keep ? BT * chunk.v0 : 0),
    length: BT * chunk.n,
  };
}

/**
 * Records `logits (BT,n) = inp (BT,C) · wte[v0 : v0+n]ᵀ` into the scratch, soft-capped if
 * `softcap`; returns that chunk's view.
 */
function chunkLogits(
  rec: Recorder,
  args: { inp: View; wte: View; scratch: ClassifierScratch; v0: number; n: number; softcap?: number },
): View {
  const { BT, C } = args.scratch;
  const logits = chunkView(args.scratch, args);
  const wteChunk = { buffer: args.wte.buffer, offset: args.wte.offset + args.v0 * C, length: args.n * C };
  matmul(rec, { out: logits, a: args.inp, b: wteChunk, M: BT, N: args.n, K: C, transB: true });
  if (args.softcap !== undefined) softcapForward(rec, { logits, n: BT * args.n, cap: args.softcap });
  return logits;
}

/**
 * How the softmax and dlogits kernels read a logits chunk `(BT,n)`: one f32 at a time ("f32"),
 * or, with rows of a multiple of 4 floats, as vec4s from the buffer or, by default on a CPU
 * adapter, from a flat texture copy, whose loads are vector code there (`vec4Reads`).
 */
function logitsSource(
  rec: Recorder,
  args: { logits: View; n: number; operands?: Operands; what: string },
): "f32" | Operands {
  const vec4 = args.n % 4 === 0 && args.logits.offset % 4 === 0;
  const textures = useTextureOperands(rec.gpu, {
    operands: args.operands,
    fit: vec4 && vec4TexturesFit(rec.gpu, [args.logits]),
    what: args.what,
    needs: "needs chunk rows of a multiple of 4 floats within a texture",
  });
  return textures ? "texture" : vec4 ? "buffer" : "f32";
}

function checkCommon(
  what: string,
  args: { inp: View; wte: View; targets: View; scratch: ClassifierScratch; BT: number; C: number; V: number },
): void {
  const { BT, C, V, scratch } = args;
  if (scratch.BT !== BT || scratch.C !== C || scratch.V !== V) {
    throw new GpuError(
      `${what}: scratch made for BT=${scratch.BT}, C=${scratch.C}, V=${scratch.V}, used with BT=${BT}, C=${C}, V=${V}`,
    );
  }
  requireLength(args.inp, BT * C, `${what} inp (BT=${BT}, C=${C})`);
  requireLength(args.wte, V * C, `${what} wte (V=${V}, C=${C})`);
  requireLength(args.targets, BT, `${what} targets (BT=${BT})`);
  const rows = scratch.keep ? V : scratch.chunk;
  requireLength(
    scratch.logits,
    BT * rows,
    `${what} scratch logits (BT=${BT}, ${scratch.keep ? "V" : "Vc"}=${rows})`,
  );
  requireLength(scratch.state, BT * 3, `${what} scratch state (BT=${BT})`);
}

// ---------------------------------------------------------------------------------------------
// Forward

// One workgroup per row folds the row's chunk into its running (max, sum): each thread keeps an
// online (max, sum) over a strided slice, then a fixed tree merges them, so results are the same
// bits on every run. `wg` threads, from `reductionWorkgroup` (one SIMD group on a CPU adapter was
// ten times faster there on the tiny model's step than 256 threads). The last chunk writes lse and
// the loss; a target that is neither a valid id nor IGNORE_INDEX gets a NaN loss (WGSL has no NaN
// literal, so its bits come in the uniforms). `reads`: the logits as vec4s (`logits_at`, see
// `vec4Reads`, rows of a multiple of 4) or null, read from the f32 buffer bound at 4.
const softmaxUpdateCode = (wg: number, reads: string | null): string => /* wgsl */ `
const IGNORE: u32 = ${IGNORE_INDEX}u;
const LOWEST: f32 = -3.40282347e38;
struct P { BT: u32, n: u32, v0: u32, V: u32, first: u32, last: u32, nan: u32 }
@group(0) @binding(0) var<storage, read_write> state: array<f32>;
@group(0) @binding(1) var<storage, read_write> losses: array<f32>;
@group(0) @binding(2) var<storage, read_write> lse: array<f32>;
@group(0) @binding(3) var<storage, read> targets: array<u32>;
${reads ?? "@group(0) @binding(4) var<storage, read> logits: array<f32>;"}
@group(0) @binding(5) var<uniform> p: P;
${FLAT_INDEX_WGSL}
var<workgroup> wm: array<f32, ${wg}>;
var<workgroup> ws: array<f32, ${wg}>;

@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = flat_index(wid, nwg, 1u);
  if (row >= p.BT) { return; }
  let base = row * p.n;
  var m = LOWEST;
  var s = 0.0;
${
  reads
    ? `  for (var i = lid; i < p.n / 4u; i += ${wg}u) {
    let x = logits_at(base / 4u + i);
    let mm = max(m, max(max(x.x, x.y), max(x.z, x.w)));
    s = s * exp(m - mm) + dot(exp(x - vec4<f32>(mm)), vec4<f32>(1.0));
    m = mm;
  }`
    : `  for (var i = lid; i < p.n; i += ${wg}u) {
    let x = logits[base + i];
    if (x > m) {
      s = s * exp(m - x) + 1.0;
      m = x;
    } else {
      s += exp(x - m);
    }
  }`
}
  wm[lid] = m;
  ws[lid] = s;
  workgroupBarrier();
  for (var k = ${wg / 2}u; k > 0u; k >>= 1u) {
    if (lid < k) {
      let m2 = wm[lid + k];
      let mm = max(m, m2);
      s = s * exp(m - mm) + ws[lid + k] * exp(m2 - mm);
      m = mm;
      wm[lid] = m;
      ws[lid] = s;
    }
    workgroupBarrier();
  }
  if (lid != 0u) { return; }
  let t = targets[row];
  var tl = 0.0;
  if (p.first == 0u) {
    let m0 = state[row * 3u];
    let mm = max(m0, m);
    s = state[row * 3u + 1u] * exp(m0 - mm) + s * exp(m - mm);
    m = mm;
    tl = state[row * 3u + 2u];
  }
  if (t >= p.v0 && t < p.v0 + p.n) {
    let at = base + t - p.v0;
    tl = ${reads ? "logits_at(at / 4u)[at % 4u]" : "logits[at]"};
  }
  state[row * 3u] = m;
  state[row * 3u + 1u] = s;
  state[row * 3u + 2u] = tl;
  if (p.last != 0u) {
    let l = m + log(s);
    lse[row] = l;
    var loss = l - tl;
    if (t == IGNORE) {
      loss = 0.0;
    } else if (t >= p.V) {
      loss = bitcast<f32>(p.nan);
    }
    losses[row] = loss;
  }
}`;

const NAN_BITS = 0x7fc00000;

/** Arguments of {@linkcode classifierForward}. */
export interface ClassifierForwardArgs {
  /** Per-position cross-entropy `(BT)`. */
  losses: View;
  /** Per-position log-sum-exp of the logits `(BT)`, saved for the backward pass. */
  lse: View;
  /** Final hidden states `(BT,C)`. */
  inp: View;
  /** Token embedding, the tied head `(V,C)`. */
  wte: View;
  /** Target ids `(BT)`, u32; {@linkcode IGNORE_INDEX} skips a position. */
  targets: View;
  /** Scratch from {@linkcode createClassifierScratch} for this shape. */
  scratch: ClassifierScratch;
  /** Positions. */
  BT: number;
  /** Channels. */
  C: number;
  /** Vocabulary size. */
  V: number;
  /** Soft-cap `c` of the logits (`final_logit_softcapping`); none when absent. */
  softcap?: number;
  /**
   * Where the softmax kernel reads a chunk's logits (rows of a multiple of 4 floats): the scratch
   * buffer, or a texture copy. Defaults to the texture on a CPU adapter.
   */
  operands?: Operands;
}

/**
 * Records `losses = -log softmax(inp · wteᵀ)[targets]` and `lse`, one vocabulary chunk at a time.
 * A target id ≥ V (other than {@linkcode IGNORE_INDEX}) yields a NaN loss: the GPU cannot throw,
 * so callers that want an error check host targets with {@linkcode checkTargets} first.
 */
export function classifierForward(rec: Recorder, args: ClassifierForwardArgs): void {
  const { BT, V, scratch } = args;
  checkCommon("classifier forward", args);
  if (args.softcap !== undefined) checkSoftcap(args.softcap, "classifier forward");
  requireLength(args.losses, BT, `classifier forward losses (BT=${BT})`);
  requireLength(args.lse, BT, `classifier forward lse (BT=${BT})`);
  const chunks = vocabChunks(scratch);
  chunks.forEach(({ v0, n }, j) => {
    const logits = chunkLogits(rec, { inp: args.inp, wte: args.wte, scratch, v0, n, softcap: args.softcap });
    const what = "classifier softmax";
    const source = logitsSource(rec, { logits, n, operands: args.operands, what });
    const reads = source === "f32"
      ? null
      : vec4Reads(rec, { logits }, { what, first: 4, textures: source === "texture" });
    rec.dispatch({
      code: softmaxUpdateCode(reductionWorkgroup(rec.gpu), reads?.wgsl ?? null),
      views: [scratch.state, args.losses, args.lse, args.targets, ...(reads?.views ?? [logits])],
      textures: reads?.textures,
      uniforms: new Uniforms().u32(BT).u32(n).u32(v0).u32(V).u32(j === 0 ? 1 : 0)
        .u32(j === chunks.length - 1 ? 1 : 0).u32(NAN_BITS),
      groups: grid(rec.gpu, BT, 1),
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Backward

// Turns a chunk's logits into dlogits in place: each thread DLOGITS_PER logits (or vec4s) of one
// row, DLOGITS_WG apart, so that the row's target and lse, loaded lane by lane on a CPU adapter,
// are read once per DLOGITS_PER (vocab64's 25.7M logits: 162 ms of CPU time with one per thread).
// From a "buffer" or "texture" source (see `logitsSource`) a thread turns 4 logits at a time: a
// quarter of the per-element loads; from a texture (`reads`, binding 3) the logits are read
// there and only written to the buffer. With `softcap` the logits read are the capped ones, and d
// also takes the cap's derivative.
const DLOGITS_WG = 64;
const DLOGITS_PER = 8;
const dlogitsCode = (source: "f32" | Operands, reads: string, softcap: boolean): string => /* wgsl */ `
const IGNORE: u32 = ${IGNORE_INDEX}u;
const W = ${source === "f32" ? 1 : 4}u;
alias T = ${elementType(source !== "f32")};
struct P { BT: u32, n: u32, v0: u32, scale: f32, cap: f32 }
@group(0) @binding(0) var<storage, read_write> dlogits: array<T>;
@group(0) @binding(1) var<storage, read> targets: array<u32>;
@group(0) @binding(2) var<storage, read> lse: array<f32>;
${source === "texture" ? reads : "fn logits_at(i: u32) -> T { return dlogits[i]; }"}
@group(0) @binding(${source === "texture" ? 4 : 3}) var<uniform> p: P;
${ROW_INDEX_WGSL}
@compute @workgroup_size(${DLOGITS_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = row_index(gid, nwg);
  if (row >= p.BT) { return; }
  let n = p.n / W; // elements (logits or vec4s) per row
  let t = targets[row];
  let l = lse[row];
  for (var k = 0u; k < ${DLOGITS_PER}u; k++) {
    let j = (wid.x * ${DLOGITS_PER}u + k) * ${DLOGITS_WG}u + lid;
    if (j >= n) { break; }
    let i = row * n + j;
    let col = p.v0 + j * W; // vocabulary id of the first logit
    var d = T();
    if (t != IGNORE) {
      let x = logits_at(i);
      d = exp(x - l);
      ${
  source !== "f32"
    ? "d -= select(vec4<f32>(), vec4<f32>(1.0), vec4<u32>(col) + vec4<u32>(0u, 1u, 2u, 3u) == vec4<u32>(t));"
    : "if (t == col) { d -= 1.0; }"
}
      d *= p.scale;${softcap ? "\n      let y = x / p.cap;\n      d *= 1.0 - y * y;" : ""}
    }
    dlogits[i] = d;
  }
}`;

/** Arguments of {@linkcode classifierBackward}. */
export interface ClassifierBackwardArgs {
  /** Gradient of the hidden states `(BT,C)`, accumulated into. */
  dinp: View;
  /** Gradient of the token embedding `(V,C)`, accumulated into. */
  dwte: View;
  /** Final hidden states `(BT,C)`. */
  inp: View;
  /** Token embedding `(V,C)`. */
  wte: View;
  /** Target ids `(BT)`, u32. */
  targets: View;
  /** Log-sum-exp saved by {@linkcode classifierForward} `(BT)`. */
  lse: View;
  /** Scratch from {@linkcode createClassifierScratch} for this shape. */
  scratch: ClassifierScratch;
  /** Positions. */
  BT: number;
  /** Channels. */
  C: number;
  /** Vocabulary size. */
  V: number;
  /** Gradient of the total loss with respect to each position's loss, e.g. 1/(B·T). */
  dlossScale: number;
  /** Soft-cap `c` of the logits, as in the forward pass; none when absent. */
  softcap?: number;
  /** Where the dlogits kernel reads the logits (see {@linkcode ClassifierForwardArgs.operands}). */
  operands?: Operands;
}

/**
 * Records `dinp += dlogits · wte` and `dwte += dlogitsᵀ · inp`. It is the backward pass of the
 * {@linkcode classifierForward} recorded last with this scratch, once: when the scratch keeps the
 * logits, or the vocabulary is one chunk, it turns the logits that pass left there into dlogits
 * (a second backward pass would find dlogits); otherwise it recomputes each chunk's logits.
 */
export function classifierBackward(rec: Recorder, args: ClassifierBackwardArgs): void {
  const { BT, C, scratch, softcap } = args;
  checkCommon("classifier backward", args);
  if (softcap !== undefined) checkSoftcap(softcap, "classifier backward");
  requireLength(args.dinp, BT * C, `classifier backward dinp (BT=${BT}, C=${C})`);
  requireLength(args.dwte, args.V * C, `classifier backward dwte (V=${args.V}, C=${C})`);
  requireLength(args.lse, BT, `classifier backward lse (BT=${BT})`);
  if (!Number.isFinite(args.dlossScale)) {
    throw new GpuError(`classifier backward: dlossScale ${args.dlossScale} is not finite`);
  }
  const chunks = vocabChunks(scratch);
  for (const { v0, n } of chunks) {
    // The forward pass left the logits of every kept chunk, or of the only one, in the scratch
    // (already soft-capped).
    const dlogits = scratch.keep || chunks.length === 1
      ? chunkView(scratch, { v0, n })
      : chunkLogits(rec, { inp: args.inp, wte: args.wte, scratch, v0, n, softcap });
    const what = "classifier dlogits";
    const source = logitsSource(rec, { logits: dlogits, n, operands: args.operands, what });
    const reads = source === "texture"
      ? vec4Reads(rec, { logits: dlogits }, { what, first: 3, textures: true })
      : undefined;
    rec.dispatch({
      code: dlogitsCode(source, reads?.wgsl ?? "", softcap !== undefined),
      views: [dlogits, args.targets, args.lse],
      textures: reads?.textures,
      uniforms: new Uniforms().u32(BT).u32(n).u32(v0).f32(args.dlossScale).f32(softcap ?? 1),
      groups: rowGrid(rec.gpu, { rows: BT, cols: source === "f32" ? n : n / 4 }, DLOGITS_WG * DLOGITS_PER),
    });
    const wteChunk = { buffer: args.wte.buffer, offset: args.wte.offset + v0 * C, length: n * C };
    const dwteChunk = { buffer: args.dwte.buffer, offset: args.dwte.offset + v0 * C, length: n * C };
    // dinp (BT,C) += dlogits (BT,n) · wte_chunk (n,C)
    matmul(rec, { out: args.dinp, a: dlogits, b: wteChunk, M: BT, N: C, K: n, accumulate: true });
    // dwte_chunk (n,C) += dlogitsᵀ (n,BT) · inp (BT,C)
    matmul(rec, {
      out: dwteChunk,
      a: dlogits,
      b: args.inp,
      M: n,
      N: C,
      K: BT,
      transA: true,
      accumulate: true,
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Mean loss

// One workgroup: strided partial sums, then a fixed tree, so the mean is the same bits every run
// (its width is part of the summation order).
const LOSS_MEAN_WG = 256;
const LOSS_MEAN = /* wgsl */ `
struct P { n: u32 }
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> losses: array<f32>;
@group(0) @binding(2) var<uniform> p: P;
var<workgroup> red: array<f32, ${LOSS_MEAN_WG}>;
@compute @workgroup_size(${LOSS_MEAN_WG})
fn main(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var i = lid; i < p.n; i += ${LOSS_MEAN_WG}u) { s += losses[i]; }
  red[lid] = s;
  workgroupBarrier();
  for (var k = ${LOSS_MEAN_WG / 2}u; k > 0u; k >>= 1u) {
    if (lid < k) { red[lid] += red[lid + k]; }
    workgroupBarrier();
  }
  if (lid == 0u) { out[0] = red[0] / f32(p.n); }
}`;

/** Arguments of {@linkcode lossMean}. */
export interface LossMeanArgs {
  /** Receives the mean in element 0. */
  out: View;
  /** Per-position losses `(n)`. */
  losses: View;
  /** Number of losses averaged. */
  n: number;
}

/** Records `out[0] = mean(losses[0..n))` (ignored positions count as 0), so a step reads back one scalar. */
export function lossMean(rec: Recorder, args: LossMeanArgs): void {
  if (args.n < 1) throw new GpuError(`loss mean: needs at least one loss, got n=${args.n}`);
  requireLength(args.out, 1, "loss mean out");
  requireLength(args.losses, args.n, `loss mean losses (n=${args.n})`);
  rec.dispatch({
    code: LOSS_MEAN,
    views: [args.out, args.losses],
    uniforms: new Uniforms().u32(args.n),
    groups: [1],
  });
}

// ---------------------------------------------------------------------------------------------
// CPU references

/**
 * Checks host target ids before they are written to the GPU: each must be below `V` or equal to
 * {@linkcode IGNORE_INDEX}.
 *
 * @throws {GpuError} naming the first offending position.
 */
export function checkTargets(targets: ArrayLike<number>, V: number): void {
  for (let i = 0; i < targets.length; i++) {
    const t = targets[i];
    if (t !== IGNORE_INDEX && !(Number.isInteger(t) && t >= 0 && t < V)) {
      throw new GpuError(`classifier: target ${t} at position ${i} is outside the vocabulary of ${V}`);
    }
  }
}

/** Output of {@linkcode classifierForwardCpu}. */
export interface ClassifierForwardCpuResult {
  /** Per-position cross-entropy `(BT)`. */
  losses: Float64Array;
  /** Per-position log-sum-exp `(BT)`. */
  lse: Float64Array;
  /** All logits `(BT,V)`. */
  logits: Float64Array;
}

/**
 * CPU reference of {@linkcode classifierForward}, in f64 (`logits` soft-capped with `softcap`);
 * throws on a target outside the vocabulary.
 */
export function classifierForwardCpu(
  inp: ArrayLike<number>,
  wte: ArrayLike<number>,
  targets: ArrayLike<number>,
  shape: { BT: number; C: number; V: number; softcap?: number },
): ClassifierForwardCpuResult {
  const { BT, C, V } = shape;
  checkTargets(targets, V);
  const logits = new Float64Array(BT * V);
  const lse = new Float64Array(BT);
  const losses = new Float64Array(BT);
  for (let r = 0; r < BT; r++) {
    let max = -Infinity;
    for (let v = 0; v < V; v++) {
      let s = 0;
      for (let c = 0; c < C; c++) s += inp[r * C + c] * wte[v * C + c];
      if (shape.softcap !== undefined) s = softcapForwardCpu([s], shape.softcap)[0];
      logits[r * V + v] = s;
      max = Math.max(max, s);
    }
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(logits[r * V + v] - max);
    lse[r] = max + Math.log(sum);
    losses[r] = targets[r] === IGNORE_INDEX ? 0 : lse[r] - logits[r * V + targets[r]];
  }
  return { losses, lse, logits };
}

/** Output of {@linkcode classifierBackwardCpu}. */
export interface ClassifierBackwardCpuResult {
  /** Gradient of the hidden states `(BT,C)`. */
  dinp: Float64Array;
  /** Gradient of the token embedding `(V,C)`. */
  dwte: Float64Array;
}

/** CPU reference of {@linkcode classifierBackward} (gradients from zero), in f64. */
export function classifierBackwardCpu(
  inp: ArrayLike<number>,
  wte: ArrayLike<number>,
  targets: ArrayLike<number>,
  shape: { BT: number; C: number; V: number; dlossScale: number; softcap?: number },
): ClassifierBackwardCpuResult {
  const { BT, C, V, dlossScale, softcap } = shape;
  const { logits, lse } = classifierForwardCpu(inp, wte, targets, shape);
  const dinp = new Float64Array(BT * C);
  const dwte = new Float64Array(V * C);
  for (let r = 0; r < BT; r++) {
    if (targets[r] === IGNORE_INDEX) continue;
    for (let v = 0; v < V; v++) {
      const y = logits[r * V + v];
      const dy = (Math.exp(y - lse[r]) - (v === targets[r] ? 1 : 0)) * dlossScale;
      const d = softcap === undefined ? dy : softcapBackwardCpu([y], { dout: [dy], cap: softcap })[0];
      for (let c = 0; c < C; c++) {
        dinp[r * C + c] += d * wte[v * C + c];
        dwte[v * C + c] += d * inp[r * C + c];
      }
    }
  }
  return { dinp, dwte };
}

/** CPU reference of {@linkcode lossMean}, in f64. */
export function lossMeanCpu(losses: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < losses.length; i++) s += losses[i];
  return s / losses.length;
}
