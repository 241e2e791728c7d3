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
import {
  type ColumnSplit,
  columnSumsCode,
  columnSumsTextureCode,
  resolveColumnSplit,
} from "./column_sums.ts";
import {
  CPU_WORKGROUP,
  type Gpu,
  GpuError,
  type Recorder,
  requireLength,
  textureFits,
  type TextureShape,
  Uniforms,
  type View,
} from "./device.ts";
import {
  copyToScratchTextures,
  defaultOperands,
  type Operands,
  scratchLayout,
  scratchTextureFits,
  scratchView,
  useTextureOperands,
} from "./scratch.ts";
import { grid } from "./elementwise.ts";
import {
  blockedCode,
  type BlockedVariant,
  type MatmulBlocking,
  splitSumCode,
  TEXTURE_BLOCK,
  textureCode,
  tiledCode,
} from "./_matmul_wgsl.ts";

// The blocking is declared beside the WGSL generators, which read it; it is part of matmul's API.
export type { MatmulBlocking };

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
  /** Register blocking of the buffer kernel; defaults to {@linkcode matmulBlocking} of the GPU. */
  blocking?: MatmulBlocking;
  /**
   * Where the kernel reads A and B from: straight from their storage buffers, or from textures
   * they are first copied into (see {@linkcode matmulOperands}). Defaults to textures on a CPU
   * adapter when {@linkcode textureOperandsFit}, else buffers.
   */
  operands?: Operands;
}

/**
 * The blocking {@linkcode matmul} uses on `gpu` unless told otherwise.
 *
 * On a CPU (fallback) adapter such as llvmpipe every invocation-level load, from storage or
 * workgroup memory alike, is a scalar loop over the SIMD lanes (~20-40 cycles per element),
 * while registers are cheap: so big register blocks, one SIMD group per workgroup, and no
 * staging through workgroup memory (it would add a load and a store per element). There,
 * {@linkcode matmul} uses this kernel only for shapes whose operands cannot be copied into
 * textures (see {@linkcode matmulOperands}). On a GPU, 8x8 blocks in 16x16 workgroups give
 * 128x128 tiles of C, staged 16 deep along K in workgroup memory, with the next tiles prefetched:
 * the best of the blockings `bench/kernels/matmul_sweep.ts` compared on an H200 (27.6 TFLOP/s at
 * 4096³ against 25.9 with 8-deep tiles and 18.8 without workgroup tiles).
 */
export function matmulBlocking(gpu: Gpu): MatmulBlocking {
  if (gpu.isFallback) return { rows: 16, cols: 16, workgroup: [CPU_WORKGROUP, 1] };
  const side = gpu.limits.maxComputeInvocationsPerWorkgroup >= 256 ? 16 : 8;
  return { rows: 8, cols: 8, workgroup: [side, side], tileK: 16, prefetch: true };
}

function checkMatmul(args: MatmulArgs): void {
  const { M, N, K } = args;
  requireLength(args.out, M * N, `matmul out (M=${M}, N=${N})`);
  requireLength(args.a, M * K, `matmul a (${args.transA ? `K=${K}, M=${M}` : `M=${M}, K=${K}`})`);
  requireLength(args.b, K * N, `matmul b (${args.transB ? `N=${N}, K=${K}` : `K=${K}, N=${N}`})`);
  if (args.bias) requireLength(args.bias, N, `matmul bias (N=${N})`);
}

/**
 * Records `C = op(A)·op(B) [+ bias] [+ C]`. With texture operands (see
 * {@linkcode matmulOperands}) A and B are copied into textures and read from there; otherwise
 * the register-blocked buffer kernel reads them in place, using `args.blocking` or else
 * {@linkcode matmulBlocking} of the recorder's GPU, as vec4 where the contiguous dimension is a
 * multiple of 4.
 *
 * @throws {GpuError} on a shape mismatch, a bad blocking, or texture operands that do not fit.
 */
export function matmul(rec: Recorder, args: MatmulArgs): void {
  checkMatmul(args);
  const textures = useTextureOperands(rec.gpu, {
    operands: args.operands,
    fit: textureOperandsFit(rec.gpu, args),
    what: `matmul ${args.M}x${args.N}x${args.K} (transA=${!!args.transA}, transB=${!!args.transB})`,
    needs: "stored rows must be multiples of 4 floats within the texture size, at most one transposed",
  });
  if (textures) return textureMatmul(rec, args);
  const { M, N, K } = args;
  const transA = !!args.transA;
  const transB = !!args.transB;
  const blocking = args.blocking ?? matmulBlocking(rec.gpu);
  if (blocking.rows % 4 !== 0 || blocking.cols % 4 !== 0 || (blocking.tileK ?? 0) % 4 !== 0) {
    throw new GpuError(
      `matmul blocking ${blocking.rows}x${blocking.cols}${
        blocking.tileK ? `, tileK ${blocking.tileK}` : ""
      } ` +
        "is not a multiple of 4",
    );
  }
  const [wx, wy] = blocking.workgroup;
  const shared = 4 * (blocking.tileK ?? 0) * (blocking.rows * wy + blocking.cols * wx);
  const { maxComputeInvocationsPerWorkgroup: maxInvocations, maxComputeWorkgroupStorageSize: maxShared } =
    rec.gpu.limits;
  if (wx * wy > maxInvocations || shared > maxShared) {
    throw new GpuError(
      `matmul blocking with a ${wx}x${wy} workgroup and ${shared} bytes of workgroup tiles exceeds the device's ` +
        `${maxInvocations} invocations or ${maxShared} bytes`,
    );
  }
  const aVec = transA ? M % 4 === 0 : K % 4 === 0;
  // With A transposed and read as vec4, unrolling K by 4 keeps 4x more loads live; on llvmpipe
  // (Mesa 22.3) that variant leaked ~1-2 MB of host memory per dispatch (20 GB over a few hundred
  // training steps), and K one at a time loads as few values per multiply-add.
  const k4 = K % 4 === 0 && !(transA && aVec);
  const variant: BlockedVariant = {
    blocking,
    transA,
    transB,
    bias: !!args.bias,
    accumulate: !!args.accumulate,
    k4,
    aVec,
    bVec: transB ? k4 : N % 4 === 0, // Bᵀ as vec4 runs along K, 4 steps of K at a time
  };
  const groups = tileGrid(blocking, M, N);
  const views = args.bias ? [args.out, args.a, args.b, args.bias] : [args.out, args.a, args.b];
  if (!blocking.tileK) {
    rec.dispatch({
      code: blockedCode(variant),
      views,
      uniforms: new Uniforms().u32(M).u32(N).u32(K),
      groups,
    });
    return;
  }
  const tiled = { ...variant, bVec: transB ? K % 4 === 0 : N % 4 === 0 };
  const split = blocking.splitK ?? matmulSplitK(rec.gpu, { M, N, K, blocking });
  if (!Number.isInteger(split) || split < 1) {
    throw new GpuError(`matmul splitK ${split} is not a positive integer`);
  }
  const slice = Math.ceil(K / split / blocking.tileK) * blocking.tileK;
  const uniforms = new Uniforms().u32(M).u32(N).u32(K).u32(slice);
  if (split === 1) {
    rec.dispatch({ code: tiledCode(tiled), views, uniforms, groups });
    return;
  }
  // Slice z of K into parts (z,M,N), then C = Σ_z parts [+ bias] [+ C] in slice order.
  const slices = Math.ceil(K / slice);
  const parts = scratchView(rec.gpu, "matmul split-K", split * M * N);
  rec.dispatch({
    code: tiledCode({ ...tiled, bias: false, accumulate: false, splitK: true }),
    views: [parts, args.a, args.b],
    uniforms,
    groups: [...groups, slices],
  });
  rec.dispatch({
    code: splitSumCode(!!args.bias, !!args.accumulate),
    views: args.bias ? [args.out, parts, args.bias] : [args.out, parts],
    uniforms: new Uniforms().u32(M * N).u32(N).u32(slices),
    groups: grid(rec.gpu, M * N),
  });
}

// Workgroups along N and M of the buffer kernels for C (M,N).
function tileGrid(b: MatmulBlocking, M: number, N: number): [number, number] {
  return [Math.ceil(N / (b.cols * b.workgroup[0])), Math.ceil(M / (b.rows * b.workgroup[1]))];
}

// A GPU keeps a few workgroups per multiprocessor in flight and has up to ~150 of them; a product
// with fewer output tiles than about this many leaves most of the chip idle through a long K loop
// (GPT-2's weight gradients: 36 to 144 tiles with K = B·T).
const SPLIT_TARGET_TILES = 512;
// Shortest K slice worth its scratch traffic.
const SPLIT_MIN_K = 256;

/**
 * How many slices of K {@linkcode matmul} computes apart for `C (M,N)` with a workgroup-tiled
 * blocking: enough for about 512 workgroups, each slice at least 256 long, the scratch within one
 * storage binding; 1 (no split) when the output has enough tiles or the blocking has no `tileK`.
 */
export function matmulSplitK(
  gpu: Gpu,
  shape: { M: number; N: number; K: number; blocking: MatmulBlocking },
): number {
  const { M, N, K, blocking } = shape;
  if (!blocking.tileK) return 1;
  const [gx, gy] = tileGrid(blocking, M, N);
  const tiles = gx * gy;
  const fit = Math.floor(gpu.limits.maxStorageBufferBindingSize / (4 * M * N));
  return Math.max(1, Math.min(Math.ceil(SPLIT_TARGET_TILES / tiles), Math.floor(K / SPLIT_MIN_K), fit));
}

// ---------------------------------------------------------------------------------------------
// Texture operands (see `scratchTexture` in scratch.ts for why)
//
// On a CPU adapter A and B are first copied into rgba32float textures, one texel holding 4
// consecutive floats of a row, and the kernel reads them with `textureLoad`. Each invocation
// (8 per workgroup, one SIMD group) keeps a block of C in registers; workgroups walk M fastest so
// that consecutive ones reuse the same columns of B from the cache (`textureCode` in
// _matmul_wgsl.ts).

function textureOperands(
  args: MatmulArgs,
): { kind: "nn" | "tn" | "nt"; a: TextureShape; b: TextureShape } | null {
  const { M, N, K } = args;
  if (args.transA && args.transB) return null;
  if (args.transA) return { kind: "tn", a: { rows: K, cols: M }, b: { rows: K, cols: N } };
  if (args.transB) return { kind: "nt", a: { rows: M, cols: K }, b: { rows: N, cols: K } };
  return { kind: "nn", a: { rows: M, cols: K }, b: { rows: K, cols: N } };
}

/**
 * Whether {@linkcode matmul} can read this product's operands from textures: `op(A)·op(B)` with at
 * most one operand transposed, every stored row a multiple of 4 floats (see
 * {@linkcode scratchTextureFits}), operands within the adapter's texture size and 16-byte aligned.
 */
export function textureOperandsFit(gpu: Gpu, args: MatmulArgs): boolean {
  const ops = textureOperands(args);
  if (!ops || args.N % 4 !== 0) return false;
  return scratchTextureFits(gpu, args.a, ops.a) && scratchTextureFits(gpu, args.b, ops.b) &&
    args.out.offset % 4 === 0 &&
    (!args.bias || args.bias.offset % 4 === 0);
}

/** The operand source {@linkcode matmul} uses for `args` unless told: textures on a CPU adapter when they fit. */
export function matmulOperands(gpu: Gpu, args: MatmulArgs): Operands {
  return defaultOperands(gpu, textureOperandsFit(gpu, args));
}

// Called once `textureOperandsFit` holds.
function textureMatmul(rec: Recorder, args: MatmulArgs): void {
  const ops = textureOperands(args)!;
  const { rows, cols } = TEXTURE_BLOCK;
  const a = scratchLayout(rec.gpu, args.a, ops.a)!, b = scratchLayout(rec.gpu, args.b, ops.b)!;
  // Accumulating, the old C comes from a texture copy too where it fits.
  const cShape = { rows: args.M, cols: args.N };
  const c = args.accumulate ? scratchLayout(rec.gpu, args.out, cShape) : null;
  const uniforms = new Uniforms().u32(args.M).u32(args.N).u32(args.K);
  for (const l of [a, b, c ?? a]) uniforms.u32(l.pitch).u32(2 ** l.shift - 1).u32(l.shift);
  const tables = [{ view: args.a, shape: ops.a }, { view: args.b, shape: ops.b }];
  rec.dispatch({
    code: textureCode({
      kind: ops.kind,
      bias: !!args.bias,
      accumulate: !!args.accumulate,
      oldC: c ? (c.flat ? "flat" : "rows") : undefined,
      flatA: a.flat,
      flatB: b.flat,
    }),
    views: args.bias ? [args.out, args.bias] : [args.out],
    textures: copyToScratchTextures(
      rec,
      "matmul",
      c ? [...tables, { view: args.out, shape: cShape }] : tables,
    ),
    uniforms,
    groups: [Math.ceil(args.M / rows), Math.ceil(args.N / (cols * CPU_WORKGROUP))],
  });
}

const BIAS_BACKWARD_HEADER = /* wgsl */ `
struct P { rows: u32, cols: u32 }
@group(0) @binding(0) var<storage, read_write> dbias: array<f32>;
@group(0) @binding(1) var<storage, read> dout: array<f32>;
@group(0) @binding(2) var<uniform> p: P;`;

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
  /** Work split of the column sums; defaults to `columnSplit` of the GPU. */
  split?: ColumnSplit;
  /**
   * Where `dout` is read from: its storage buffer, or a texture copy. Defaults to the texture on a
   * CPU adapter when N is a multiple of 64, else the buffer.
   */
  operands?: Operands;
}

const BIAS_BACKWARD_TEXTURE = columnSumsTextureCode({
  header: /* wgsl */ `
struct P { rows: u32, cols: u32 }
@group(0) @binding(0) var<storage, read_write> dbias: array<vec4<f32>>;
@group(0) @binding(1) var tdout: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var<uniform> p: P;`,
  prelude: "",
  sums: [{ out: "dbias", term: "texel(tdout, c4, row)" }],
});

/** Records `db += Σ_rows dY` (deterministic: rows summed in a fixed order). */
export function biasBackward(rec: Recorder, args: BiasBackwardArgs): void {
  const { M, N } = args;
  requireLength(args.dbias, N, `bias backward dbias (N=${N})`);
  requireLength(args.dout, M * N, `bias backward dout (M=${M}, N=${N})`);
  const shape = { rows: M, cols: N };
  const textures = useTextureOperands(rec.gpu, {
    operands: args.operands,
    fit: textureFits(rec.gpu, args.dout, shape) && args.dbias.offset % 4 === 0,
    what: `bias backward (M=${M}, N=${N})`,
    needs: "needs N a multiple of 64, M within the texture size and 16-byte aligned views",
  });
  if (textures) {
    rec.dispatch({
      code: BIAS_BACKWARD_TEXTURE,
      views: [args.dbias],
      textures: copyToScratchTextures(rec, "bias backward", [{ view: args.dout, shape }]),
      uniforms: new Uniforms().u32(M).u32(N),
      groups: grid(rec.gpu, N / 4, CPU_WORKGROUP),
    });
    return;
  }
  const split = resolveColumnSplit(rec.gpu, args.split);
  rec.dispatch({
    code: columnSumsCode({
      header: BIAS_BACKWARD_HEADER,
      prelude: "",
      sums: [{ out: "dbias", term: "dout[row * p.cols + c]" }],
      split,
    }),
    views: [args.dbias, args.dout],
    uniforms: new Uniforms().u32(args.M).u32(args.N),
    groups: [Math.ceil(args.N / split.cols)],
  });
}

/**
 * How a linear layer's weight is stored: `in_out` `(K,N)`, GPT-2's Conv1D, `Y = X·W`; or `out_in`
 * `(N,K)`, PyTorch's `nn.Linear` (LLaMA), `Y = X·Wᵀ`.
 */
export type WeightLayout = "in_out" | "out_in";

/** Arguments of {@linkcode linearForward}. */
export interface LinearForwardArgs {
  /** Output `(M,N)`. */
  out: View;
  /** Input `(M,K)`. */
  inp: View;
  /** Weight `(K,N)` (`in_out`, the default) or `(N,K)` (`out_in`). */
  weight: View;
  /** How the weight is stored (default `in_out`). */
  layout?: WeightLayout;
  /** Optional bias `(N)`. */
  bias?: View;
  /** Rows (B·T). */
  M: number;
  /** Input features. */
  K: number;
  /** Output features. */
  N: number;
}

/** Records `Y = X·W + b` (or `X·Wᵀ + b` for an `out_in` weight). */
export function linearForward(rec: Recorder, args: LinearForwardArgs): void {
  matmul(rec, {
    out: args.out,
    a: args.inp,
    b: args.weight,
    bias: args.bias,
    M: args.M,
    N: args.N,
    K: args.K,
    transB: args.layout === "out_in",
  });
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
    matmul(rec, {
      out: args.dinp,
      a: args.dout,
      b: args.weight,
      M,
      N: K,
      K: N,
      transB: true,
      accumulate: true,
    });
  }
  matmul(rec, {
    out: args.dweight,
    a: args.inp,
    b: args.dout,
    M: K,
    N,
    K: M,
    transA: true,
    accumulate: true,
  });
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
