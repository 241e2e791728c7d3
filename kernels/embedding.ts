/**
 * The token embedding and, for GPT-2, the learned position embedding (GPT-2's "encoder"), forward
 * and backward, with CPU references. LLaMA has no position table (RoPE rotates q and k instead).
 *
 *   forward    out[b,t,:] = wte[tokens[b,t],:] (+ wpe[t,:])
 *   backward   dwte[v,:] += Σ_{(b,t): tokens[b,t] = v} dout[b,t,:]   (positions in order)
 *              dwpe[t,:] += Σ_b dout[b,t,:]                          (batch entries in order)
 *
 * The token table can exceed one storage binding (GPT-2: 50257 × 768 f32 = 154 MB), so both
 * kernels bind it in chunks of rows and launch once per chunk; a launch only touches tokens that
 * fall in its chunk.
 *
 * The backward pass is deterministic without atomics and without looking at the tokens on the
 * CPU (a recorded step is replayed with new tokens). A first launch links every position to the
 * next position holding the same token and marks the first position of each token as its owner;
 * then, for each column, only the owner adds the gradients of the positions on its chain, in
 * position order, so every row of `dwte` is written by one thread in a fixed order.
 *
 * @module
 */
import { createView, GpuError, type Recorder, requireLength, Uniforms, type View } from "./device.ts";
import { flatTexture, type Operands, scratchTexture, useTextureOperands } from "./scratch.ts";
import { rowChunks, rowView } from "./rows.ts";
import {
  ELEMENTWISE_WG,
  FLAT_INDEX_WGSL,
  grid,
  ROW_INDEX_WGSL,
  rowGrid,
  vec4Elements,
} from "./elementwise.ts";

// `tok - row0` wraps around for tokens below the chunk, so one comparison tests both ends.
const IN_CHUNK_WGSL = /* wgsl */ `
fn chunk_row(tok: u32) -> u32 { return tok - p.row0; }`;

// ---------------------------------------------------------------------------------------------
// Forward

// One thread per (position, column), or with `vec4` per 4 columns (C a multiple of 4), launched
// by rows (rowGrid): a CPU adapter loads buffers lane by lane, a quarter as many loads with vec4.
const forwardCode = (positions: boolean, vec4: boolean): string => /* wgsl */ `
alias T = ${vec4 ? "vec4<f32>" : "f32"};
struct P { BT: u32, T: u32, C: u32, row0: u32, rows: u32 }
@group(0) @binding(0) var<storage, read_write> out: array<T>;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(2) var<storage, read> wte: array<T>;
${
  positions
    ? "@group(0) @binding(3) var<storage, read> wpe: array<T>;\n@group(0) @binding(4) var<uniform> p: P;"
    : "@group(0) @binding(3) var<uniform> p: P;"
}
${ROW_INDEX_WGSL}
${IN_CHUNK_WGSL}
@compute @workgroup_size(${FORWARD_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let bt = row_index(gid, nwg);
  let c = gid.x;
  if (bt >= p.BT || c >= p.C) { return; }
  let r = chunk_row(tokens[bt]);
  if (r >= p.rows) { return; }
  out[bt * p.C + c] = wte[r * p.C + c]${positions ? " + wpe[(bt % p.T) * p.C + c]" : ""};
}`;
const FORWARD_WG = 16;

/** Arguments of {@linkcode encoderForward}. */
export interface EncoderForwardArgs {
  /** Output `(B,T,C)`. */
  out: View;
  /** Token ids `(B,T)`, u32, each below V (others leave their output rows unwritten). */
  tokens: View;
  /** Token embedding `(V,C)`; may exceed one storage binding. */
  wte: View;
  /** Position embedding `(maxT,C)`, maxT ≥ T (GPT-2; absent for models without one). */
  wpe?: View;
  /** Batch size. */
  B: number;
  /** Sequence length. */
  T: number;
  /** Channels. */
  C: number;
  /** Vocabulary size. */
  V: number;
  /** Largest number of `wte` rows bound at once (default: what the binding limit allows). */
  maxRowsPerChunk?: number;
}

function checkPositions(wpe: View, T: number, C: number, what: string): void {
  requireLength(wpe, C, `${what} (C=${C})`);
  const maxT = Math.floor(wpe.length / C);
  if (T > maxT) throw new GpuError(`${what}: T=${T} exceeds the ${maxT} positions it holds`);
}

/** Records `out[b,t] = wte[tokens[b,t]] (+ wpe[t])`, one launch per chunk of `wte`. */
export function encoderForward(rec: Recorder, args: EncoderForwardArgs): void {
  const { B, T, C, V } = args;
  requireLength(args.out, B * T * C, `encoder out (B=${B}, T=${T}, C=${C})`);
  requireLength(args.tokens, B * T, `encoder tokens (B=${B}, T=${T})`);
  requireLength(args.wte, V * C, `encoder wte (V=${V}, C=${C})`);
  if (args.wpe) checkPositions(args.wpe, T, C, "encoder wpe");
  const chunks = rowChunks(rec.gpu, args.wte, { rows: V, cols: C, maxRows: args.maxRowsPerChunk });
  for (const chunk of chunks) {
    const wte = rowView(args.wte, C, chunk);
    const { vec4 } = vec4Elements([args.out, wte, ...(args.wpe ? [args.wpe] : [])], C);
    const C4 = vec4 ? C / 4 : C;
    rec.dispatch({
      code: forwardCode(args.wpe !== undefined, vec4),
      views: [args.out, args.tokens, wte, ...(args.wpe ? [args.wpe] : [])],
      uniforms: new Uniforms().u32(B * T).u32(T).u32(C4).u32(chunk.row0).u32(chunk.rows),
      groups: rowGrid(rec.gpu, { rows: B * T, cols: C4 }, FORWARD_WG),
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Backward

// One thread per position p finds the next position holding the same token (BT if none), and
// marks p with NOT_OWNER when an earlier position holds it: O((B·T)²) comparisons, no barriers.
// With B·T a multiple of 4 the scans compare 4 tokens per load (`tok4`): from the buffer as
// vec4s, or, from a "texture" source, from a flat rgba32uint texture (binding 1, rows of
// 2^shift texels), whose loads are vector code on a CPU adapter where a buffer's go lane by lane
// (the stories step's links: 10 of the embedding backward's 12 ms of CPU time from the buffer).
const NOT_OWNER = 0x80000000;

const backwardLinksCode = (source: "u32" | Operands, shift: number): string => /* wgsl */ `
struct P { BT: u32 }
@group(0) @binding(0) var<storage, read_write> links: array<u32>;
${
  source === "texture"
    ? `@group(0) @binding(1) var ttok: texture_storage_2d<rgba32uint, read>;
fn tok4(q4: u32) -> vec4<u32> { return textureLoad(ttok, vec2<u32>(q4 & ${
      2 ** shift - 1
    }u, q4 >> ${shift}u)); }`
    : source === "buffer"
    ? `@group(0) @binding(1) var<storage, read> tokens: array<vec4<u32>>;
fn tok4(q4: u32) -> vec4<u32> { return tokens[q4]; }`
    : "@group(0) @binding(1) var<storage, read> tokens: array<u32>;"
}
@group(0) @binding(2) var<uniform> p: P;
${FLAT_INDEX_WGSL}
@compute @workgroup_size(${ELEMENTWISE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let pos = flat_index(gid, nwg, ${ELEMENTWISE_WG}u);
  if (pos >= p.BT) { return; }
${
  source !== "u32"
    ? `  let lanes = vec4<u32>(0u, 1u, 2u, 3u);
  let tok = dot(tok4(pos / 4u), vec4<u32>(lanes == vec4<u32>(pos % 4u)));
  var next = p.BT;
  for (var q4 = pos / 4u; q4 < p.BT / 4u; q4++) {
    let at = q4 * 4u + lanes;
    let m = tok4(q4) == vec4<u32>(tok) & at > vec4<u32>(pos);
    if (any(m)) {
      next = q4 * 4u + select(select(select(3u, 2u, m.z), 1u, m.y), 0u, m.x);
      break;
    }
  }
  for (var q4 = 0u; q4 <= pos / 4u; q4++) {
    if (any(tok4(q4) == vec4<u32>(tok) & q4 * 4u + lanes < vec4<u32>(pos))) {
      next |= ${NOT_OWNER}u;
      break;
    }
  }`
    : `  let tok = tokens[pos];
  var next = p.BT;
  for (var q = pos + 1u; q < p.BT; q++) {
    if (tokens[q] == tok) {
      next = q;
      break;
    }
  }
  for (var q = 0u; q < pos; q++) {
    if (tokens[q] == tok) {
      next |= ${NOT_OWNER}u;
      break;
    }
  }`
}
  links[pos] = next;
}`;

// One thread per (position, column), or with `vec4` per 4 columns; only a token's owner works,
// walking the links in order.
const backwardWteCode = (vec4: boolean): string => /* wgsl */ `
alias T = ${vec4 ? "vec4<f32>" : "f32"};
struct P { BT: u32, C: u32, row0: u32, rows: u32 }
@group(0) @binding(0) var<storage, read_write> dwte: array<T>;
@group(0) @binding(1) var<storage, read> dout: array<T>;
@group(0) @binding(2) var<storage, read> tokens: array<u32>;
@group(0) @binding(3) var<storage, read> links: array<u32>;
@group(0) @binding(4) var<uniform> p: P;
${FLAT_INDEX_WGSL}
${IN_CHUNK_WGSL}
@compute @workgroup_size(${ELEMENTWISE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg, ${ELEMENTWISE_WG}u);
  if (i >= p.BT * p.C) { return; }
  let pos = i / p.C;
  let c = i % p.C;
  let r = chunk_row(tokens[pos]);
  if (r >= p.rows || (links[pos] & ${NOT_OWNER}u) != 0u) { return; }
  var acc = dwte[r * p.C + c];
  for (var q = pos; q < p.BT; q = links[q] & ${NOT_OWNER - 1}u) {
    acc += dout[q * p.C + c];
  }
  dwte[r * p.C + c] = acc;
}`;

const BACKWARD_WPE = /* wgsl */ `
struct P { B: u32, T: u32, C: u32 }
@group(0) @binding(0) var<storage, read_write> dwpe: array<f32>;
@group(0) @binding(1) var<storage, read> dout: array<f32>;
@group(0) @binding(2) var<uniform> p: P;
${FLAT_INDEX_WGSL}
@compute @workgroup_size(${ELEMENTWISE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg, ${ELEMENTWISE_WG}u);
  let TC = p.T * p.C;
  if (i >= TC) { return; }
  var acc = dwpe[i];
  for (var b = 0u; b < p.B; b++) { acc += dout[b * TC + i]; }
  dwpe[i] = acc;
}`;

/** Arguments of {@linkcode encoderBackward}. */
export interface EncoderBackwardArgs {
  /** Token embedding gradient `(V,C)`, accumulated into; may exceed one storage binding. */
  dwte: View;
  /** Position embedding gradient `(maxT,C)`, maxT ≥ T, accumulated into (rows below T); absent without positions. */
  dwpe?: View;
  /** Output gradient `(B,T,C)`. */
  dout: View;
  /** Token ids `(B,T)`, u32. */
  tokens: View;
  /** Batch size. */
  B: number;
  /** Sequence length. */
  T: number;
  /** Channels. */
  C: number;
  /** Vocabulary size. */
  V: number;
  /** Largest number of `dwte` rows bound at once (default: what the binding limit allows). */
  maxRowsPerChunk?: number;
  /**
   * Where the scan for repeated tokens reads them (B·T a multiple of 4): the buffer, or a flat
   * texture copy. Defaults to the texture on a CPU adapter.
   */
  operands?: Operands;
}

/**
 * Records `dwte[tokens[b,t]] += dout[b,t]` (and `dwpe[t] += dout[b,t]`), summing in a fixed order
 * (the same bits on every run, however the GPU schedules the work). Allocates a `(B,T)` u32
 * buffer of links between positions, kept alive by the recorded launches that use it.
 */
export function encoderBackward(rec: Recorder, args: EncoderBackwardArgs): void {
  const { B, T, C, V } = args;
  requireLength(args.dwte, V * C, `encoder backward dwte (V=${V}, C=${C})`);
  if (args.dwpe) checkPositions(args.dwpe, T, C, "encoder backward dwpe");
  requireLength(args.dout, B * T * C, `encoder backward dout (B=${B}, T=${T}, C=${C})`);
  requireLength(args.tokens, B * T, `encoder backward tokens (B=${B}, T=${T})`);
  const chunks = rowChunks(rec.gpu, args.dwte, { rows: V, cols: C, maxRows: args.maxRowsPerChunk });
  const links = createView(rec.gpu, B * T, "encoder backward links");
  const tokens = { ...args.tokens, length: B * T };
  const vec4 = vec4Elements([tokens], B * T).vec4;
  const flat = vec4 ? flatTexture(rec.gpu, (B * T) / 4) : null;
  const textures = useTextureOperands(rec.gpu, {
    operands: args.operands,
    fit: flat !== null,
    what: `encoder backward (B=${B}, T=${T})`,
    needs: "needs B·T a multiple of 4 and a 16-byte aligned token view",
  });
  let ttok: GPUTexture | undefined;
  if (textures) {
    ttok = scratchTexture(rec.gpu, "encoder backward tokens", { ...flat!.texture, u32: true });
    rec.copyFlatToTexture(tokens, ttok);
  }
  rec.dispatch({
    code: backwardLinksCode(textures ? "texture" : vec4 ? "buffer" : "u32", flat?.shift ?? 0),
    views: textures ? [links] : [links, tokens],
    textures: ttok ? [ttok] : undefined,
    uniforms: new Uniforms().u32(B * T),
    groups: grid(rec.gpu, B * T),
  });
  for (const chunk of chunks) {
    const dwte = rowView(args.dwte, C, chunk);
    const { vec4 } = vec4Elements([dwte, args.dout], C); // 4 columns per thread
    const C4 = vec4 ? C / 4 : C;
    rec.dispatch({
      code: backwardWteCode(vec4),
      views: [dwte, args.dout, args.tokens, links],
      uniforms: new Uniforms().u32(B * T).u32(C4).u32(chunk.row0).u32(chunk.rows),
      groups: grid(rec.gpu, B * T * C4),
    });
  }
  if (!args.dwpe) return;
  rec.dispatch({
    code: BACKWARD_WPE,
    views: [args.dwpe, args.dout],
    uniforms: new Uniforms().u32(B).u32(T).u32(C),
    groups: grid(rec.gpu, T * C),
  });
}

// ---------------------------------------------------------------------------------------------
// CPU references

/** Tables and shape of {@linkcode encoderForwardCpu}. */
export interface EncoderForwardCpuArgs {
  /** Token embedding `(V,C)`. */
  wte: ArrayLike<number>;
  /** Position embedding `(maxT,C)`. */
  wpe: ArrayLike<number>;
  /** Batch size. */
  B: number;
  /** Sequence length. */
  T: number;
  /** Channels. */
  C: number;
}

/** CPU reference of {@linkcode encoderForward} for `tokens (B,T)`: the `(B,T,C)` output, in f64. */
export function encoderForwardCpu(tokens: ArrayLike<number>, args: EncoderForwardCpuArgs): Float64Array {
  const { B, T, C } = args;
  const out = new Float64Array(B * T * C);
  for (let bt = 0; bt < B * T; bt++) {
    const t = bt % T;
    for (let c = 0; c < C; c++) out[bt * C + c] = args.wte[tokens[bt] * C + c] + args.wpe[t * C + c];
  }
  return out;
}

/** Tokens and shape of {@linkcode encoderBackwardCpu}. */
export interface EncoderBackwardCpuArgs {
  /** Token ids `(B,T)`. */
  tokens: ArrayLike<number>;
  /** Batch size. */
  B: number;
  /** Sequence length. */
  T: number;
  /** Channels. */
  C: number;
  /** Vocabulary size. */
  V: number;
}

/** Result of {@linkcode encoderBackwardCpu}: the gradients themselves, not accumulated. */
export interface EncoderBackwardCpuResult {
  /** Token embedding gradient `(V,C)`. */
  dwte: Float64Array;
  /** Position embedding gradient `(T,C)`. */
  dwpe: Float64Array;
}

/** CPU reference of {@linkcode encoderBackward} for the output gradient `dout (B,T,C)`, in f64. */
export function encoderBackwardCpu(
  dout: ArrayLike<number>,
  args: EncoderBackwardCpuArgs,
): EncoderBackwardCpuResult {
  const { tokens, B, T, C, V } = args;
  const dwte = new Float64Array(V * C);
  const dwpe = new Float64Array(T * C);
  for (let bt = 0; bt < B * T; bt++) {
    const t = bt % T;
    for (let c = 0; c < C; c++) {
      dwte[tokens[bt] * C + c] += dout[bt * C + c];
      dwpe[t * C + c] += dout[bt * C + c];
    }
  }
  return { dwte, dwpe };
}
