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
import { flatTexture, type Operands, scratchTexture, useTextureOperands } from "./scratch.ts";

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
  /** The views the kernel only reads, by their WGSL names. */
  reads: Record<string, View>;
  /** Elements of every view. */
  n: number;
  /** WGSL declarations the body uses (functions, constants), in terms of the element type `T`. */
  helpers?: string;
  /**
   * WGSL statements computing element `i`: each view of `reads` is its element `i` already read,
   * a value of type `T` named like the view; each view of `writes` an `array<T>`.
   */
  body: string;
  /**
   * Where the `reads` come from: their storage buffers, or textures they are first copied into
   * flat. Defaults to textures on a CPU adapter when every view is read as vec4
   * ({@linkcode vec4Elements}) and fits a texture, else buffers.
   */
  operands?: Operands;
}

/**
 * Records an element-wise kernel: `args.body` runs once per element `i` of `args.n`, on elements
 * of type `T`, vec4<f32> when every view allows it ({@linkcode vec4Elements}), else f32.
 *
 * On a CPU adapter the inputs are read from textures (`scratchTexture` in scratch.ts says why):
 * SwiGLU's forward pass over 2048x172 elements took 5.2 ms of CPU time with vec4 buffer loads and
 * 1.2-1.8 ms with texture loads, the copies included.
 *
 * @throws {GpuError} when a view holds fewer than `n` elements, or textures are asked for and do not fit.
 */
export function dispatchElementwise(rec: Recorder, args: ElementwiseArgs): void {
  const { what, n } = args;
  const writes = Object.entries(args.writes), reads = Object.entries(args.reads);
  for (const [name, view] of [...writes, ...reads]) requireLength(view, n, `${what} ${name} (n=${n})`);
  const { vec4, count } = vec4Elements([...writes, ...reads].map(([, view]) => view), n);
  const flat = vec4 ? flatTexture(rec.gpu, count) : null;
  const textures = useTextureOperands(rec.gpu, {
    operands: args.operands,
    fit: flat !== null,
    what,
    needs: "needs n a multiple of 4, views starting 16-byte aligned, and n within a texture",
  });
  const bindings = writes.map(([name], b) =>
    `@group(0) @binding(${b}) var<storage, read_write> ${name}: array<T>;`
  );
  const loads: string[] = [];
  reads.forEach(([name], r) => {
    const b = writes.length + r;
    if (textures) {
      bindings.push(`@group(0) @binding(${b}) var in_${name}: texture_storage_2d<rgba32float, read>;`);
      loads.push(`let ${name} = textureLoad(in_${name}, vec2<u32>(i & p.mask, i >> p.shift));`);
    } else {
      bindings.push(`@group(0) @binding(${b}) var<storage, read> in_${name}: array<T>;`);
      loads.push(`let ${name} = in_${name}[i];`);
    }
  });
  const code = /* wgsl */ `
alias T = ${elementType(vec4)};
struct P { n: u32, mask: u32, shift: u32 }
${bindings.join("\n")}
@group(0) @binding(${writes.length + reads.length}) var<uniform> p: P;
${FLAT_INDEX_WGSL}
${args.helpers ?? ""}
@compute @workgroup_size(${ELEMENTWISE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg, ${ELEMENTWISE_WG}u);
  if (i >= p.n) { return; }
  ${loads.join("\n  ")}
${args.body}
}`;
  const uniforms = new Uniforms().u32(count);
  if (textures) uniforms.u32(2 ** flat!.shift - 1).u32(flat!.shift);
  rec.dispatch({
    code,
    views: [...writes.map(([, view]) => view), ...(textures ? [] : reads.map(([, view]) => view))],
    textures: textures
      ? reads.map(([name, view]) => {
        const texture = scratchTexture(rec.gpu, `${what} ${name}`, flat!.texture);
        rec.copyFlatToTexture({ ...view, length: n }, texture);
        return texture;
      })
      : undefined,
    uniforms,
    groups: grid(rec.gpu, count),
  });
}
