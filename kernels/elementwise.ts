/**
 * Kernels with one invocation per element: the launch grid that spreads them over the
 * per-dimension workgroup limit, their reading of f32 or vec4 elements, and
 * {@linkcode dispatchElementwise}, which writes an element-wise kernel's bindings, bounds check
 * and launch around its math, so that an operation's file holds only that math, its arguments
 * and its CPU reference.
 *
 * @module
 */
import { type Gpu, type Recorder, requireLength, Uniforms, type View } from "./device.ts";

/** Workgroup size used by the element-wise kernels. */
export const ELEMENTWISE_WG = 256;

/**
 * Splits `n` threads into a 2-D grid of workgroups of `wg` threads that respects the
 * per-dimension limit; kernels recover the flat index with {@linkcode FLAT_INDEX_WGSL}.
 */
export function grid(gpu: Gpu, n: number, wg: number = ELEMENTWISE_WG): [number, number] {
  const groups = Math.ceil(n / wg);
  const max = gpu.limits.maxComputeWorkgroupsPerDimension;
  if (groups <= max) return [groups, 1];
  const y = Math.ceil(groups / max);
  return [Math.ceil(groups / y), y];
}

/**
 * WGSL helper turning a 2-D launch from {@linkcode grid} into a flat thread index; declares
 * `flat_index(gid, nwg, wg)`.
 */
export const FLAT_INDEX_WGSL = /* wgsl */ `
fn flat_index(gid: vec3<u32>, nwg: vec3<u32>, wg: u32) -> u32 {
  return gid.x + gid.y * nwg.x * wg;
}`;

/**
 * Whether element-wise kernels can read `views` of `n` elements each as vec4s (n a multiple of 4,
 * at least 4, every view starting on a 16-byte boundary), and the count of elements (f32 or
 * vec4) such a kernel then sees. Four elements per load and per invocation: fewer loads, which on
 * a CPU adapter cost far more than the arithmetic, and 16-byte accesses on a GPU.
 */
export function vec4Elements(views: View[], n: number): { vec4: boolean; count: number } {
  const vec4 = n >= 4 && n % 4 === 0 && views.every((v) => v.offset % 4 === 0);
  return { vec4, count: vec4 ? n / 4 : n };
}

/** The WGSL type of one element a kernel reads as f32 or, per {@linkcode vec4Elements}, as vec4. */
export function elementType(vec4: boolean): string {
  return vec4 ? "vec4<f32>" : "f32";
}

/**
 * WGSL σ(z) on elements of type `T` (f32 or vec4): the argument is clamped to ±80, where exp is
 * still finite in f32 and σ already rounds to 1, so large |z| never gives NaN.
 */
export const SIGMOID_WGSL = /* wgsl */ `
fn sigmoid(z: T) -> T {
  return 1.0 / (1.0 + exp(-clamp(z, T(-80.0), T(80.0))));
}`;

/** Arguments of {@linkcode dispatchElementwise}. */
export interface ElementwiseArgs {
  /** The operation, named in errors, e.g. `"gelu backward"`. */
  what: string;
  /** The views the kernel writes, by their WGSL names; bound read-write, first, in this order. */
  writes: Record<string, View>;
  /** The views the kernel only reads, by their WGSL names; bound read-only after `writes`. */
  reads: Record<string, View>;
  /** Elements of every view. */
  n: number;
  /** WGSL declarations the body uses (functions, constants), in terms of the element type `T`. */
  helpers?: string;
  /** WGSL statements computing element `i`; every view is an `array<T>`. */
  body: string;
}

/**
 * Records an element-wise kernel: `args.body` runs once per element `i` of `args.n`, on elements
 * of type `T`, vec4<f32> when every view allows it ({@linkcode vec4Elements}), else f32.
 *
 * @throws {GpuError} when a view holds fewer than `n` elements.
 */
export function dispatchElementwise(rec: Recorder, args: ElementwiseArgs): void {
  const { what, n } = args;
  const named = [...Object.entries(args.writes), ...Object.entries(args.reads)];
  for (const [name, view] of named) requireLength(view, n, `${what} ${name} (n=${n})`);
  const views = named.map(([, view]) => view);
  const { vec4, count } = vec4Elements(views, n);
  const writes = Object.keys(args.writes).length;
  const bindings = named.map(([name], b) =>
    `@group(0) @binding(${b}) var<storage, ${b < writes ? "read_write" : "read"}> ${name}: array<T>;`
  );
  const code = /* wgsl */ `
alias T = ${elementType(vec4)};
struct P { n: u32 }
${bindings.join("\n")}
@group(0) @binding(${named.length}) var<uniform> p: P;
${FLAT_INDEX_WGSL}
${args.helpers ?? ""}
@compute @workgroup_size(${ELEMENTWISE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg, ${ELEMENTWISE_WG}u);
  if (i >= p.n) { return; }
${args.body}
}`;
  rec.dispatch({ code, views, uniforms: new Uniforms().u32(count), groups: grid(rec.gpu, count) });
}
