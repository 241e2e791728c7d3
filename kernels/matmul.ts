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
  copyToScratchTextures,
  CPU_WORKGROUP,
  defaultOperands,
  type Gpu,
  GpuError,
  type Operands,
  type Recorder,
  requireLength,
  scratchView,
  textureFits,
  type TextureShape,
  Uniforms,
  useTextureOperands,
  type View,
} from "./device.ts";
import { elementType, ELEMENTWISE_WG, FLAT_INDEX_WGSL, grid } from "./elementwise.ts";

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
 * How {@linkcode matmul} splits C: each invocation keeps a `rows x cols` block of C in registers,
 * and a workgroup holds `workgroup[0] x workgroup[1]` invocations (x along N, y along M).
 */
export interface MatmulBlocking {
  /** Rows of C per invocation (a multiple of 4). */
  rows: number;
  /** Columns of C per invocation (a multiple of 4). */
  cols: number;
  /** Invocations per workgroup along N and along M. */
  workgroup: [number, number];
  /**
   * Depth along K (a multiple of 4) of the A and B tiles the workgroup stages in workgroup
   * memory, each element loaded from storage once per workgroup; absent, every invocation reads
   * its own operands straight from storage.
   */
  tileK?: number;
  /**
   * With `tileK`: K is cut into this many slices, each computed by its own workgroups into a
   * scratch buffer and summed by a second kernel. Absent, {@linkcode matmul} picks it from the
   * number of output tiles (see {@linkcode matmulSplitK}).
   */
  splitK?: number;
  /**
   * With `tileK`: each invocation reads its share of the next tiles from storage into registers
   * before multiplying the current ones, so the reads' latency overlaps the arithmetic.
   */
  prefetch?: boolean;
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

interface BlockedVariant {
  /** The tiled kernel writes slice `workgroup_id.z` of a split K (no bias, no accumulate). */
  splitK?: boolean;
  blocking: MatmulBlocking;
  transA: boolean;
  transB: boolean;
  bias: boolean;
  accumulate: boolean;
  /** K advances 4 at a time (K % 4 == 0). */
  k4: boolean;
  /** A is read as vec4 along its contiguous dimension. */
  aVec: boolean;
  /** B is read as vec4 along its contiguous dimension. */
  bVec: boolean;
}

const XYZW = "xyzw";

// The bindings of the buffer kernels: C, A and B (vec4 where the variant reads them so), the
// optional bias, and the uniform `p` with the given fields.
function bufferBindings(v: BlockedVariant, fields: string): string {
  return /* wgsl */ `struct P { ${fields} }
@group(0) @binding(0) var<storage, read_write> c: array<f32>;
@group(0) @binding(1) var<storage, read> a: array<${elementType(v.aVec)}>;
@group(0) @binding(2) var<storage, read> b: array<${elementType(v.bVec)}>;
${v.bias ? "@group(0) @binding(3) var<storage, read> bias: array<f32>;" : ""}
@group(0) @binding(${v.bias ? 4 : 3}) var<uniform> p: P;`;
}

// Statements storing an invocation's block c<r>_<j4> of C: its row r is `rowAt(r)` and column j
// `colAt(j)`, at element `base` + row·N + column; rows past M and columns past N are skipped,
// and the bias and the old C are added when the variant asks.
function storeBlock(
  v: BlockedVariant,
  rowAt: (r: number) => string,
  colAt: (j: number) => string,
  base = "",
): string[] {
  const { rows: TM, cols: TN } = v.blocking;
  const store: string[] = [];
  for (let r = 0; r < TM; r++) {
    store.push(`if (${rowAt(r)} < p.M) {`);
    for (let j = 0; j < TN; j++) {
      const n = colAt(j);
      const at = `${base}(${rowAt(r)}) * p.N + ${n}`;
      let val = `c${r}_${j >> 2}.${XYZW[j & 3]}`;
      if (v.bias) val += ` + bias[${n}]`;
      if (v.accumulate) val += ` + c[${at}]`;
      store.push(`  if (${n} < p.N) { c[${at}] = ${val}; }`);
    }
    store.push(`}`);
  }
  return store;
}

// The whole register block is unrolled into named variables: llvmpipe spills dynamically
// indexed private arrays to memory through the same slow per-lane path as buffer loads. Loads
// use clamped indices so the K loop has no divergent branches; out-of-range rows and columns
// compute garbage that the final store skips.
function blockedCode(v: BlockedVariant): string {
  const { rows: TM, cols: TN, workgroup: [WX, WY] } = v.blocking;
  const KS = v.k4 ? 4 : 1;
  const pre: string[] = [];
  const body: string[] = [];
  const aAt: string[][] = []; // aAt[i][kk]: A(m0+i, k+kk)
  const bAt: string[][] = []; // bAt[kk][j4]: vec4 of B(k+kk, n0+4*j4 .. +3)
  for (let i = 0; i < TM; i++) pre.push(`let mi${i} = min(m0 + ${i}u, p.M - 1u);`);
  for (let j = 0; j < TN; j++) pre.push(`let nj${j} = min(n0 + ${j}u, p.N - 1u);`);
  if (!v.transA && v.aVec) {
    for (let i = 0; i < TM; i++) {
      body.push(`let av${i} = a[mi${i} * (p.K / 4u) + k / 4u];`);
      aAt.push([0, 1, 2, 3].map((kk) => `av${i}.${XYZW[kk]}`));
    }
  } else if (v.transA && v.aVec) {
    for (let kk = 0; kk < KS; kk++) {
      for (let i4 = 0; i4 < TM / 4; i4++) {
        body.push(`let av${kk}_${i4} = a[(k + ${kk}u) * (p.M / 4u) + mi${i4 * 4} / 4u];`);
      }
    }
    for (let i = 0; i < TM; i++) {
      aAt.push(Array.from({ length: KS }, (_, kk) => `av${kk}_${i >> 2}.${XYZW[i & 3]}`));
    }
  } else {
    for (let i = 0; i < TM; i++) {
      aAt.push(Array.from({ length: KS }, (_, kk) => {
        body.push(
          `let a${i}_${kk} = a[${v.transA ? `(k + ${kk}u) * p.M + mi${i}` : `mi${i} * p.K + k + ${kk}u`}];`,
        );
        return `a${i}_${kk}`;
      }));
    }
  }
  if (!v.transB && v.bVec) {
    for (let kk = 0; kk < KS; kk++) {
      bAt.push(Array.from({ length: TN / 4 }, (_, j4) => {
        body.push(`let bv${kk}_${j4} = b[(k + ${kk}u) * (p.N / 4u) + nj${j4 * 4} / 4u];`);
        return `bv${kk}_${j4}`;
      }));
    }
  } else {
    const el: string[][] = []; // el[kk][j]
    for (let kk = 0; kk < KS; kk++) el.push([]);
    for (let j = 0; j < TN; j++) {
      if (v.transB && v.bVec) {
        body.push(`let bt${j} = b[nj${j} * (p.K / 4u) + k / 4u];`);
        for (let kk = 0; kk < KS; kk++) el[kk].push(`bt${j}.${XYZW[kk]}`);
      } else {
        for (let kk = 0; kk < KS; kk++) {
          body.push(
            `let b${kk}_${j} = b[${v.transB ? `nj${j} * p.K + k + ${kk}u` : `(k + ${kk}u) * p.N + nj${j}`}];`,
          );
          el[kk].push(`b${kk}_${j}`);
        }
      }
    }
    for (let kk = 0; kk < KS; kk++) {
      bAt.push(
        Array.from({ length: TN / 4 }, (_, j4) => `vec4(${el[kk].slice(j4 * 4, j4 * 4 + 4).join(", ")})`),
      );
    }
  }
  for (let kk = 0; kk < KS; kk++) {
    for (let j4 = 0; j4 < TN / 4; j4++) {
      if (bAt[kk][j4].startsWith("vec4(")) {
        body.push(`let bb${kk}_${j4} = ${bAt[kk][j4]};`);
        bAt[kk][j4] = `bb${kk}_${j4}`;
      }
    }
  }
  for (let i = 0; i < TM; i++) {
    for (let j4 = 0; j4 < TN / 4; j4++) pre.push(`var c${i}_${j4} = vec4<f32>();`);
    for (let kk = 0; kk < KS; kk++) {
      for (let j4 = 0; j4 < TN / 4; j4++) {
        body.push(`c${i}_${j4} = fma(vec4(${aAt[i][kk]}), ${bAt[kk][j4]}, c${i}_${j4});`);
      }
    }
  }
  const store = storeBlock(v, (i) => `m0 + ${i}u`, (j) => `n0 + ${j}u`);
  return /* wgsl */ `
${bufferBindings(v, "M: u32, N: u32, K: u32")}

@compute @workgroup_size(${WX}, ${WY})
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let m0 = g.y * ${TM}u;
  let n0 = g.x * ${TN}u;
  ${pre.join("\n  ")}
  for (var k = 0u; k < p.K; k += ${KS}u) {
    ${body.join("\n    ")}
  }
  ${store.join("\n  ")}
}`;
}

// Workgroup-tiled variant, for GPUs. Per step of `tileK` along K, the workgroup's invocations
// copy a (BM,BK) tile of op(A) and a (BK,BN) tile of op(B) into workgroup memory, both stored
// K-major as vec4 along M or N, then each invocation multiplies its block out of them. Invocation
// (x,y) owns rows r4·4·WY + 4y + i and columns c4·4·WX + 4x + j of the tile: neighbouring
// invocations read neighbouring vec4s of the tiles (no bank conflicts) and store neighbouring
// elements of C (coalesced). Loads outside A or B read zeros; stores outside C are skipped.
function tiledCode(v: BlockedVariant): string {
  const { rows: TM, cols: TN, workgroup: [WX, WY] } = v.blocking;
  const BK = v.blocking.tileK!;
  const prefetch = !!v.blocking.prefetch;
  const BM = TM * WY, BN = TN * WX, NT = WX * WY;
  // One operand's tile, `span` along M (for A) or N (for B) by BK along K, in `V`-float loads
  // (vec4 when `vec`) along the operand's contiguous dimension, K when `kInner`; `mn` is the
  // size of M or N and `origin` the tile's first row or column. Invocation tid makes the loads
  // q = tid, tid + NT, ...: `fetch` reads them from storage for the tile at `k` into registers
  // (zeros outside the operand), `put` stores those into the workgroup tile.
  const operand = (
    x: string,
    tile: string,
    vec: boolean,
    kInner: boolean,
    span: number,
    mn: string,
    origin: string,
  ) => {
    const V = vec ? 4 : 1;
    const units = (span * BK) / V;
    const perRow = (kInner ? BK : span) / V;
    const decl: string[] = [];
    const put: string[] = [];
    const fetches: ((k: string) => string)[] = [];
    for (let u = 0; u * NT < units; u++) {
      const q = `(tid + ${u * NT}u)`;
      const all = (u + 1) * NT <= units; // every invocation has load u
      const [i, kq] = kInner
        ? [`${q} / ${perRow}u`, `(${q} % ${perRow}u) * ${V}u`]
        : [`(${q} % ${perRow}u) * ${V}u`, `${q} / ${perRow}u`];
      const r = `f${x}${u}`; // fa0, fb0, ...: the multiply's a0, b0 are rows of the workgroup tiles
      decl.push(
        `var ${r} = ${vec ? "vec4<f32>()" : "0.0"};`,
        `let ${x}i${u} = ${i};`,
        `let ${x}k${u} = ${kq};`,
      );
      const at = kInner
        ? (k: string) => `(${origin} + ${x}i${u}) * (p.K / ${V}u) + (${k} + ${x}k${u}) / ${V}u`
        : (k: string) => `(${k} + ${x}k${u}) * (${mn} / ${V}u) + (${origin} + ${x}i${u}) / ${V}u`;
      const inside = (k: string) =>
        `${all ? "" : `${q} < ${units}u && `}${origin} + ${x}i${u} < ${mn} && ${k} + ${x}k${u} < kEnd`;
      fetches.push((k) =>
        `${r} = ${vec ? "vec4<f32>()" : "0.0"};\n    if (${inside(k)}) { ${r} = ${x}[${at(k)}]; }`
      );
      const slot = (e: string) => `${tile}[(${x}k${u}${e}) * ${span / 4}u + ${x}i${u} / 4u]`;
      const stores = kInner
        ? (vec ? [0, 1, 2, 3] : [0]).map((e) =>
          `${slot(e ? ` + ${e}u` : "")}[${x}i${u} % 4u] = ${r}${vec ? `.${XYZW[e]}` : ""};`
        )
        : [vec ? `${slot("")} = ${r};` : `${slot("")}[${x}i${u} % 4u] = ${r};`];
      put.push(...(all ? stores : [`if (${q} < ${units}u) {`, ...stores.map((t) => `  ${t}`), "}"]));
    }
    return { decl, fetch: (k: string) => fetches.map((f) => f(k)), put };
  };
  const A = operand("a", "sa", v.aVec, !v.transA, BM, "p.M", "m0");
  const B = operand("b", "sb", v.bVec, v.transB, BN, "p.N", "n0");
  const pre: string[] = [];
  const inner: string[] = [];
  for (let r4 = 0; r4 < TM / 4; r4++) inner.push(`let a${r4} = sa[kk * ${BM / 4}u + ${r4 * WY}u + l.y];`);
  for (let c4 = 0; c4 < TN / 4; c4++) inner.push(`let b${c4} = sb[kk * ${BN / 4}u + ${c4 * WX}u + l.x];`);
  for (let r = 0; r < TM; r++) {
    for (let c4 = 0; c4 < TN / 4; c4++) {
      pre.push(`var c${r}_${c4} = vec4<f32>();`);
      inner.push(`c${r}_${c4} = fma(vec4(a${r >> 2}.${XYZW[r & 3]}), b${c4}, c${r}_${c4});`);
    }
  }
  const store = storeBlock(
    v,
    (r) => `m0 + ${(r >> 2) * 4 * WY + (r & 3)}u + 4u * l.y`,
    (j) => `n0 + ${(j >> 2) * 4 * WX + (j & 3)}u + 4u * l.x`,
    v.splitK ? "w.z * p.M * p.N + " : "",
  );
  return /* wgsl */ `
${bufferBindings(v, "M: u32, N: u32, K: u32, KS: u32")}
var<workgroup> sa: array<vec4<f32>, ${(BK * BM) / 4}>; // (BK, BM) tile of op(A), K-major
var<workgroup> sb: array<vec4<f32>, ${(BK * BN) / 4}>; // (BK, BN) tile of op(B), K-major

@compute @workgroup_size(${WX}, ${WY})
fn main(@builtin(local_invocation_id) l: vec3<u32>, @builtin(workgroup_id) w: vec3<u32>) {
  let tid = l.y * ${WX}u + l.x;
  let m0 = w.y * ${BM}u;
  let n0 = w.x * ${BN}u;
  let kBegin = w.z * p.KS; // slice z of K: KS = K unless split
  let kEnd = min(p.K, kBegin + p.KS);
  ${[...pre, ...A.decl, ...B.decl].join("\n  ")}
  ${prefetch ? [...A.fetch("kBegin"), ...B.fetch("kBegin")].join("\n  ") : ""}
  for (var k0 = kBegin; k0 < kEnd; k0 += ${BK}u) {
    ${prefetch ? "" : [...A.fetch("k0"), ...B.fetch("k0")].join("\n    ")}
    ${[...A.put, ...B.put].join("\n    ")}
    workgroupBarrier();
    ${prefetch ? [...A.fetch(`(k0 + ${BK}u)`), ...B.fetch(`(k0 + ${BK}u)`)].join("\n    ") : ""}
    for (var kk = 0u; kk < ${BK}u; kk++) {
      ${inner.join("\n      ")}
    }
    workgroupBarrier();
  }
  ${store.join("\n  ")}
}`;
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
    needs: "stored rows must be multiples of 64 floats within the texture size, at most one transposed",
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

function splitSumCode(bias: boolean, accumulate: boolean): string {
  return /* wgsl */ `
struct P { n: u32, N: u32, S: u32 }
@group(0) @binding(0) var<storage, read_write> c: array<f32>;
@group(0) @binding(1) var<storage, read> parts: array<f32>;
${bias ? "@group(0) @binding(2) var<storage, read> bias: array<f32>;" : ""}
@group(0) @binding(${bias ? 3 : 2}) var<uniform> p: P;
${FLAT_INDEX_WGSL}
@compute @workgroup_size(${ELEMENTWISE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg, ${ELEMENTWISE_WG}u);
  if (i >= p.n) { return; }
  var s = ${accumulate ? "c[i]" : "0.0"}${bias ? " + bias[i % p.N]" : ""};
  for (var z = 0u; z < p.S; z++) { s += parts[z * p.n + i]; }
  c[i] = s;
}`;
}

// ---------------------------------------------------------------------------------------------
// Texture operands (see `scratchTexture` in device.ts for why)
//
// On a CPU adapter A and B are first copied into rgba32float textures, one texel holding 4
// consecutive floats of a row, and the kernel reads them with `textureLoad`. Each invocation
// (8 per workgroup, one SIMD group) keeps a block of C in registers; workgroups walk M fastest so
// that consecutive ones reuse the same columns of B from the cache.
//
// Every kind keeps a 16x8 block. On a 2-core EPYC, blocks from 8x8 to 32x16 gave the same 1024³
// GFLOP/s within the machine's noise (22-25 median): past ~16 registers of state the block lives
// on the stack anyway, and each texel load (~45 instructions for 8 lanes) is paid per block row or
// column. `bench/kernels/matmul_ceiling.ts` shows how far the loop could get without loads.

/** Rows and columns of C per invocation of the texture kernels. */
const TEXTURE_BLOCK = { rows: 16, cols: 8 };

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
 * most one operand transposed, every stored row a multiple of 64 floats (WebGPU copies rows of a
 * multiple of 256 bytes), operands within the adapter's texture size and 16-byte aligned.
 */
export function textureOperandsFit(gpu: Gpu, args: MatmulArgs): boolean {
  const ops = textureOperands(args);
  if (!ops || args.N % 4 !== 0) return false;
  return textureFits(gpu, args.a, ops.a) && textureFits(gpu, args.b, ops.b) && args.out.offset % 4 === 0 &&
    (!args.bias || args.bias.offset % 4 === 0);
}

/** The operand source {@linkcode matmul} uses for `args` unless told: textures on a CPU adapter when they fit. */
export function matmulOperands(gpu: Gpu, args: MatmulArgs): Operands {
  return defaultOperands(gpu, textureOperandsFit(gpu, args));
}

function textureCode(kind: "nn" | "tn" | "nt", bias: boolean, accumulate: boolean): string {
  const { rows: R, cols: CC } = TEXTURE_BLOCK;
  const CV = CC / 4;
  const pre: string[] = [];
  const body: string[] = [];
  const at = (t: string, x: string, y: string) => `textureLoad(${t}, vec2<u32>(${x}, ${y}))`;
  let loop: string;
  if (kind === "nt") {
    // C = A·Bᵀ, both stored with K along their rows: per 4 steps of K, one texel of each row of A
    // and of B, and per element of the block their dot product chained onto one float of sum, as
    // the other kinds keep (a vec4 of partial sums per element held 4x the state and spilled: 11
    // against 18-22 GFLOP/s at 1024³). Column j of this invocation is n0 + j.
    for (let r = 0; r < R; r++) pre.push(`let mr${r} = min(m0 + ${r}u, p.M - 1u);`);
    for (let j = 0; j < CC; j++) pre.push(`let nc${j} = min(n0 + ${j}u, p.N - 1u);`);
    for (let r = 0; r < R; r++) for (let j = 0; j < CC; j++) pre.push(`var s${r}_${j} = 0.0;`);
    for (let j = 0; j < CC; j++) body.push(`let b${j} = ${at("tb", "k4", `nc${j}`)};`);
    for (let r = 0; r < R; r++) {
      body.push(`let a${r} = ${at("ta", "k4", `mr${r}`)};`);
      for (let j = 0; j < CC; j++) {
        let e = `s${r}_${j}`;
        for (let kk = 0; kk < 4; kk++) e = `fma(a${r}.${XYZW[kk]}, b${j}.${XYZW[kk]}, ${e})`;
        body.push(`s${r}_${j} = ${e};`);
      }
    }
    loop = `for (var k4 = 0u; k4 < p.K / 4u; k4++) {\n    ${body.join("\n    ")}\n  }`;
    for (let r = 0; r < R; r++) {
      for (let c = 0; c < CV; c++) {
        const sums = [0, 1, 2, 3].map((i) => `s${r}_${c * 4 + i}`).join(", ");
        loop += `\n  let c${r}_${c} = vec4(${sums});`;
      }
    }
  } else {
    for (let r = 0; r < R; r++) for (let c = 0; c < CV; c++) pre.push(`var c${r}_${c} = vec4<f32>();`);
    if (kind === "nn") {
      // C = A·B: per 4 steps of K, 4 rows of B (CV texels each) and one texel of each row of A.
      for (let r = 0; r < R; r++) pre.push(`let mr${r} = min(m0 + ${r}u, p.M - 1u);`);
      for (let kk = 0; kk < 4; kk++) {
        for (let c = 0; c < CV; c++) {
          body.push(`let b${kk}_${c} = ${at("tb", `n4 + ${c}u`, `k4 * 4u + ${kk}u`)};`);
        }
      }
      for (let r = 0; r < R; r++) {
        body.push(`let a${r} = ${at("ta", "k4", `mr${r}`)};`);
        for (let c = 0; c < CV; c++) {
          let e = `c${r}_${c}`;
          for (let kk = 0; kk < 4; kk++) e = `fma(vec4(a${r}.${XYZW[kk]}), b${kk}_${c}, ${e})`;
          body.push(`c${r}_${c} = ${e};`);
        }
      }
      loop = `for (var k4 = 0u; k4 < p.K / 4u; k4++) {\n    ${body.join("\n    ")}\n  }`;
    } else {
      // C = Aᵀ·B, A stored (K,M): per step of K, R/4 texels of A's row and CV texels of B's.
      for (let c = 0; c < CV; c++) body.push(`let b${c} = ${at("tb", `n4 + ${c}u`, "k")};`);
      for (let r4 = 0; r4 < R / 4; r4++) {
        body.push(`let a${r4} = ${at("ta", `min(m0 / 4u + ${r4}u, p.M / 4u - 1u)`, "k")};`);
        for (let i = 0; i < 4; i++) {
          for (let c = 0; c < CV; c++) {
            const r = r4 * 4 + i;
            body.push(`c${r}_${c} = fma(vec4(a${r4}.${XYZW[i]}), b${c}, c${r}_${c});`);
          }
        }
      }
      loop = `for (var k = 0u; k < p.K; k++) {\n    ${body.join("\n    ")}\n  }`;
    }
  }
  const store: string[] = [];
  for (let r = 0; r < R; r++) {
    store.push(`if (m0 + ${r}u < p.M) {`);
    for (let c = 0; c < CV; c++) {
      const i = `(m0 + ${r}u) * (p.N / 4u) + n4 + ${c}u`;
      let val = `c${r}_${c}`;
      if (bias) val += ` + bias[n4 + ${c}u]`;
      if (accumulate) val += ` + c[${i}]`;
      store.push(`  if (n4 + ${c}u < p.N / 4u) { c[${i}] = ${val}; }`);
    }
    store.push(`}`);
  }
  const b0 = bias ? 2 : 1;
  return /* wgsl */ `
struct P { M: u32, N: u32, K: u32 }
@group(0) @binding(0) var<storage, read_write> c: array<vec4<f32>>;
${bias ? "@group(0) @binding(1) var<storage, read> bias: array<vec4<f32>>;" : ""}
@group(0) @binding(${b0}) var ta: texture_storage_2d<rgba32float, read>;
@group(0) @binding(${b0 + 1}) var tb: texture_storage_2d<rgba32float, read>;
@group(0) @binding(${b0 + 2}) var<uniform> p: P;

@compute @workgroup_size(${CPU_WORKGROUP})
fn main(@builtin(local_invocation_id) l: vec3<u32>, @builtin(workgroup_id) w: vec3<u32>) {
  let m0 = w.x * ${R}u;
  let n0 = (w.y * ${CPU_WORKGROUP}u + l.x) * ${CC}u;
  let n4 = n0 / 4u;
  ${pre.join("\n  ")}
  ${loop}
  ${store.join("\n  ")}
}`;
}

// Called once `textureOperandsFit` holds.
function textureMatmul(rec: Recorder, args: MatmulArgs): void {
  const ops = textureOperands(args)!;
  const { rows, cols } = TEXTURE_BLOCK;
  rec.dispatch({
    code: textureCode(ops.kind, !!args.bias, !!args.accumulate),
    views: args.bias ? [args.out, args.bias] : [args.out],
    textures: copyToScratchTextures(rec, "matmul", [{ view: args.a, shape: ops.a }, {
      view: args.b,
      shape: ops.b,
    }]),
    uniforms: new Uniforms().u32(args.M).u32(args.N).u32(args.K),
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
