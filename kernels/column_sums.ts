/**
 * Deterministic sums over the rows of `(rows, cols)` tables, the parameter gradients of biases and
 * LayerNorm: a workgroup owns `cols` neighbouring columns; each of its `lanes` rows of threads
 * sums every `lanes`-th row in order, then one thread adds the lanes in order. The summation
 * order is fixed, so the result is the same bits on every run. On a CPU adapter the tables can be
 * read from texture copies instead, one invocation summing 4 neighbouring columns over every row.
 *
 * @module
 */
import { CPU_WORKGROUP, type Gpu, GpuError } from "./device.ts";
import { TEXEL_WGSL } from "./scratch.ts";
import { FLAT_INDEX_WGSL } from "./elementwise.ts";

/** How a column sum splits its work: columns per workgroup and threads summing down each column. */
export interface ColumnSplit {
  /** Neighbouring columns one workgroup owns. */
  cols: number;
  /** Threads per column, each summing every `lanes`-th row. */
  lanes: number;
}

/**
 * The split column sums use on `gpu` unless told otherwise. A CPU adapter runs one workgroup per
 * core at a time, so 32 columns of 8 lanes. A GPU needs tens of thousands of threads in flight:
 * at GPT-2 124M (C=768, 16384 rows) 8 columns of 32 lanes give 96 workgroups of 512-row sums,
 * each row segment of 8 floats one 32-byte memory sector.
 */
export function columnSplit(gpu: Gpu): ColumnSplit {
  return gpu.isFallback ? { cols: 32, lanes: 8 } : { cols: 8, lanes: 32 };
}

/**
 * `split`, or {@linkcode columnSplit} of `gpu` when absent, checked against the device's limits.
 *
 * @throws {GpuError} when the split is not whole numbers or its workgroup is too large.
 */
export function resolveColumnSplit(gpu: Gpu, split?: ColumnSplit): ColumnSplit {
  const s = split ?? columnSplit(gpu);
  const whole = [s.cols, s.lanes].every((v) => Number.isInteger(v) && v >= 1);
  if (!whole || s.cols * s.lanes > gpu.limits.maxComputeInvocationsPerWorkgroup) {
    throw new GpuError(
      `column split ${s.cols}x${s.lanes}: needs positive integers with at most ` +
        `${gpu.limits.maxComputeInvocationsPerWorkgroup} invocations`,
    );
  }
  return s;
}

/** What {@linkcode columnSumsCode} sums. */
export interface ColumnSums {
  /** Bindings, and a uniform `p` of type `P` with fields `rows` and `cols`. */
  header: string;
  /** Statements run for each element `(row, c)` before the terms are added. */
  prelude: string;
  /** Each output array (accumulated into at `c`) and the term it sums over rows. */
  sums: { out: string; term: string }[];
  /** The work split. */
  split: ColumnSplit;
}

/** WGSL of a kernel computing `out[c] += Σ_row term(row, c)` for each sum; launch `ceil(cols / split.cols)` workgroups. */
export function columnSumsCode(spec: ColumnSums): string {
  const { cols: COLS, lanes: LANES } = spec.split;
  const s = spec.sums;
  return /* wgsl */ `
${spec.header}
${s.map((_, i) => `var<workgroup> lane${i}: array<array<f32, ${COLS}>, ${LANES}>;`).join("\n")}
@compute @workgroup_size(${COLS}, ${LANES})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let c = wid.x * ${COLS}u + lid.x;
  ${s.map((_, i) => `var acc${i} = 0.0;`).join("\n  ")}
  if (c < p.cols) {
    for (var row = lid.y; row < p.rows; row += ${LANES}u) {
      ${spec.prelude}
      ${s.map((x, i) => `acc${i} += ${x.term};`).join("\n      ")}
    }
  }
  ${s.map((_, i) => `lane${i}[lid.y][lid.x] = acc${i};`).join("\n  ")}
  workgroupBarrier();
  if (lid.y == 0u && c < p.cols) {
    ${s.map((_, i) => `var t${i} = 0.0;`).join("\n    ")}
    for (var l = 0u; l < ${LANES}u; l++) {
      ${s.map((_, i) => `t${i} += lane${i}[l][lid.x];`).join("\n      ")}
    }
    ${s.map((x, i) => `${x.out}[c] += t${i};`).join("\n    ")}
  }
}`;
}

/** What {@linkcode columnSumsTextureCode} sums. */
export interface ColumnTextureSums {
  /**
   * Bindings (outputs as `array<vec4<f32>>`, textures via `texel`) and a uniform `p` of type `P`
   * with fields `rows` and `cols`.
   */
  header: string;
  /** Statements run for each row before the terms are added; texel column `c4` of `row`. */
  prelude: string;
  /** Each output (accumulated into at vec4 `c4`) and the vec4 term it sums over rows. */
  sums: { out: string; term: string }[];
}

/**
 * WGSL of a kernel computing `out[c4] += Σ_row term(row, c4)` for each sum, 4 columns per
 * invocation and the rows in order; launch `grid(gpu, cols / 4, CPU_WORKGROUP)`.
 */
export function columnSumsTextureCode(spec: ColumnTextureSums): string {
  const s = spec.sums;
  return /* wgsl */ `
${spec.header}
${FLAT_INDEX_WGSL}
${TEXEL_WGSL}
@compute @workgroup_size(${CPU_WORKGROUP})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let c4 = flat_index(gid, nwg, ${CPU_WORKGROUP}u);
  if (c4 >= p.cols / 4u) { return; }
  ${s.map((_, i) => `var acc${i} = vec4<f32>();`).join("\n  ")}
  for (var row = 0u; row < p.rows; row++) {
    ${spec.prelude}
    ${s.map((x, i) => `acc${i} += ${x.term};`).join("\n    ")}
  }
  ${s.map((x, i) => `${x.out}[c4] += acc${i};`).join("\n  ")}
}`;
}
