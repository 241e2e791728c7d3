/**
 * The WGSL generators of `matmul`'s kernels, which matmul.ts dispatches: the
 * register-blocked and the workgroup-tiled buffer kernels, the split-K sum, and the texture
 * kernels of a CPU adapter. Each kernel is generated for one blocking and set of flags, with its
 * register block unrolled into named variables.
 *
 * @module
 */
import { CPU_WORKGROUP } from "./device.ts";
import { elementType, ELEMENTWISE_WG, FLAT_INDEX_WGSL } from "./elementwise.ts";

/**
 * How `matmul` splits C: each invocation keeps a `rows x cols` block of C in registers,
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
   * scratch buffer and summed by a second kernel. Absent, `matmul` picks it from the
   * number of output tiles (see `matmulSplitK`).
   */
  splitK?: number;
  /**
   * With `tileK`: each invocation reads its share of the next tiles from storage into registers
   * before multiplying the current ones, so the reads' latency overlaps the arithmetic.
   */
  prefetch?: boolean;
}

/** One buffer kernel of {@linkcode blockedCode} or {@linkcode tiledCode}: its blocking and flags. */
export interface BlockedVariant {
  /** The tiled kernel writes slice `workgroup_id.z` of a split K (no bias, no accumulate). */
  splitK?: boolean;
  /** The register blocking and, for {@linkcode tiledCode}, the workgroup tiles. */
  blocking: MatmulBlocking;
  /** A is read transposed. */
  transA: boolean;
  /** B is read transposed. */
  transB: boolean;
  /** A bias is added to every row. */
  bias: boolean;
  /** C is added into. */
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
/** WGSL of the register-blocked buffer kernel, each invocation reading its operands from storage. */
export function blockedCode(v: BlockedVariant): string {
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
/** WGSL of the workgroup-tiled buffer kernel (a blocking with `tileK`). */
export function tiledCode(v: BlockedVariant): string {
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

/** WGSL summing the split-K parts `(S,M,N)` into C in slice order, with the bias and the old C. */
export function splitSumCode(bias: boolean, accumulate: boolean): string {
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
// Texture kernels

// Every kind keeps a 16x8 block. On a 2-core EPYC, blocks from 8x8 to 32x16 gave the same 1024³
// GFLOP/s within the machine's noise (22-25 median): past ~16 registers of state the block lives
// on the stack anyway, and each texel load (~45 instructions for 8 lanes) is paid per block row or
// column. `bench/kernels/matmul_ceiling.ts` shows how far the loop could get without loads.

/** Rows and columns of C per invocation of the texture kernels. */
export const TEXTURE_BLOCK = { rows: 16, cols: 8 };

/** One texture kernel of {@linkcode textureCode}: its product and flags. */
export interface TextureVariant {
  /** C = A·B (`nn`), Aᵀ·B (`tn`) or A·Bᵀ (`nt`). */
  kind: "nn" | "tn" | "nt";
  /** A bias is added to every row. */
  bias: boolean;
  /** C is added into. */
  accumulate: boolean;
  /**
   * With `accumulate`: where the old C is read, a texture copy `tc` held row by row or flat
   * (buffer loads go lane by lane on a CPU adapter: a dX product over 2048x64 spent ~0.8 ms in them),
   * or, absent, the buffer itself.
   */
  oldC?: "rows" | "flat";
  /** A's texture holds it flat (`ScratchLayout` in scratch.ts), else row by row. */
  flatA: boolean;
  /** B's texture holds it flat. */
  flatB: boolean;
}

// WGSL `l<name>(c4, row)`: texel c4 of a table row from texture `t<name>`, whose flat layout (if
// any) comes in the uniforms `<name>Pitch`, `<name>Mask` and `<name>Shift`.
function texelLoader(name: "a" | "b" | "c", flat: boolean): string {
  const at = flat
    ? `let i = row * p.${name}Pitch + c4;\n  return textureLoad(t${name}, vec2<u32>(i & p.${name}Mask, i >> p.${name}Shift));`
    : `return textureLoad(t${name}, vec2<u32>(c4, row));`;
  return `fn l${name}(c4: u32, row: u32) -> vec4<f32> {\n  ${at}\n}`;
}

/**
 * WGSL of the texture kernel of `v`, with A and B in the textures `ta` and `tb` as
 * `textureOperands` in matmul.ts stores them.
 */
export function textureCode(v: TextureVariant): string {
  const { kind, bias, accumulate } = v;
  const { rows: R, cols: CC } = TEXTURE_BLOCK;
  const CV = CC / 4;
  const pre: string[] = [];
  const body: string[] = [];
  const at = (t: string, x: string, y: string) => `l${t.slice(1)}(${x}, ${y})`;
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
      if (accumulate) val += v.oldC ? ` + lc(n4 + ${c}u, m0 + ${r}u)` : ` + c[${i}]`;
      store.push(`  if (n4 + ${c}u < p.N / 4u) { c[${i}] = ${val}; }`);
    }
    store.push(`}`);
  }
  const b0 = bias ? 2 : 1;
  const oldC = accumulate && v.oldC;
  return /* wgsl */ `
struct P {
  M: u32, N: u32, K: u32, aPitch: u32, aMask: u32, aShift: u32, bPitch: u32, bMask: u32, bShift: u32,
  cPitch: u32, cMask: u32, cShift: u32,
}
@group(0) @binding(0) var<storage, read_write> c: array<vec4<f32>>;
${bias ? "@group(0) @binding(1) var<storage, read> bias: array<vec4<f32>>;" : ""}
@group(0) @binding(${b0}) var ta: texture_storage_2d<rgba32float, read>;
@group(0) @binding(${b0 + 1}) var tb: texture_storage_2d<rgba32float, read>;
${oldC ? `@group(0) @binding(${b0 + 2}) var tc: texture_storage_2d<rgba32float, read>;` : ""}
@group(0) @binding(${b0 + (oldC ? 3 : 2)}) var<uniform> p: P;
${texelLoader("a", v.flatA)}
${texelLoader("b", v.flatB)}
${oldC ? texelLoader("c", v.oldC === "flat") : ""}

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
