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
 * Splits a `(rows, cols)` table into a launch of one thread per element: x along a row in
 * workgroups of `wg` threads, the rows along y and, past the per-dimension limit, z. Kernels
 * recover the row with {@linkcode ROW_INDEX_WGSL} and the column as `gid.x`: no division per
 * thread, which a CPU adapter computes lane by lane.
 */
export function rowGrid(
  gpu: Gpu,
  shape: { rows: number; cols: number },
  wg: number,
): [number, number, number] {
  const max = gpu.limits.maxComputeWorkgroupsPerDimension;
  return [Math.ceil(shape.cols / wg), Math.min(shape.rows, max), Math.ceil(shape.rows / max)];
}

/** WGSL helper: the row of a thread launched by {@linkcode rowGrid}; declares `row_index(gid, nwg)`. */
export const ROW_INDEX_WGSL = /* wgsl */ `
fn row_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return gid.y + gid.z * nwg.y;
}`;

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

/**
 * Views a kernel reads as vec4s by index, each `x` through a WGSL function `x_at(i: u32) ->
 * vec4<f32>` (vec4 `i` of the view): from its storage buffer, or from a texture holding it flat
 * (`flatTexture` in scratch.ts), read as vector code on a CPU adapter where buffers are read lane
 * by lane (`scratchTexture` in scratch.ts).
 */
export interface Vec4Reads {
  /** WGSL: the bindings and the `_at` functions. */
  wgsl: string;
  /** The buffers to bind after the kernel's own views (none with textures). */
  views: View[];
  /** The textures to bind after every view (none with buffers). */
  textures: GPUTexture[];
}

/**
 * Whether {@linkcode vec4Reads} can read `views` from textures: each a whole number of vec4s,
 * 16-byte aligned, within one flat texture.
 */
export function vec4TexturesFit(gpu: Gpu, views: View[]): boolean {
  return views.every((v) =>
    v.length > 0 && v.length % 4 === 0 && v.offset % 4 === 0 && flatTexture(gpu, v.length / 4) !== null
  );
}

/**
 * Binds `reads` for a kernel that reads them as vec4s by index, from binding `first` on: as
 * storage buffers, or, with `textures`, as flat textures whose copies it records now (scratch
 * textures of role `<what> <name>`). A texture binding must follow every buffer binding, so a
 * kernel's own views come first and its uniforms last.
 */
export function vec4Reads(
  rec: Recorder,
  reads: Record<string, View>,
  options: { what: string; first: number; textures: boolean },
): Vec4Reads {
  const wgsl: string[] = [];
  const views: View[] = [];
  const textures: GPUTexture[] = [];
  Object.entries(reads).forEach(([name, view], r) => {
    const binding = `@group(0) @binding(${options.first + r})`;
    if (!options.textures) {
      wgsl.push(
        `${binding} var<storage, read> in_${name}: array<vec4<f32>>;`,
        `fn ${name}_at(i: u32) -> vec4<f32> { return in_${name}[i]; }`,
      );
      views.push(view);
      return;
    }
    const flat = flatTexture(rec.gpu, view.length / 4)!;
    const texture = scratchTexture(rec.gpu, `${options.what} ${name}`, flat.texture);
    rec.copyFlatToTexture(view, texture);
    textures.push(texture);
    wgsl.push(
      `${binding} var in_${name}: texture_storage_2d<rgba32float, read>;`,
      `fn ${name}_at(i: u32) -> vec4<f32> {`,
      `  return textureLoad(in_${name}, vec2<u32>(i & ${2 ** flat.shift - 1}u, i >> ${flat.shift}u));`,
      `}`,
    );
  });
  return { wgsl: wgsl.join("\n"), views, textures };
}

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
   * Where the vec4 `reads` come from ({@linkcode vec4Reads}): their storage buffers, or textures.
   * Defaults to textures on a CPU adapter when every view is read as vec4
   * ({@linkcode vec4Elements}) and fits a texture, else buffers.
   */
  operands?: Operands;
}

/**
 * Records an element-wise kernel: `args.body` runs once per element `i` of `args.n`, on elements
 * of type `T`, vec4<f32> when every view allows it ({@linkcode vec4Elements}), else f32.
 *
 * On a CPU adapter the vec4 inputs are read from textures: SwiGLU's forward pass over 2048x172
 * elements took 5.2 ms of CPU time with vec4 buffer loads and 1.2-1.8 ms with texture loads, the
 * copies included.
 *
 * @throws {GpuError} when a view holds fewer than `n` elements, or textures are asked for and do not fit.
 */
export function dispatchElementwise(rec: Recorder, args: ElementwiseArgs): void {
  const { what, n } = args;
  const writes = Object.entries(args.writes);
  const reads = Object.fromEntries(
    Object.entries(args.reads).map(([name, v]) => [name, { ...v, length: n }]),
  );
  for (const [name, view] of [...writes, ...Object.entries(args.reads)]) {
    requireLength(view, n, `${what} ${name} (n=${n})`);
  }
  const { vec4, count } = vec4Elements([...writes.map(([, v]) => v), ...Object.values(reads)], n);
  const textures = useTextureOperands(rec.gpu, {
    operands: args.operands,
    fit: vec4 && vec4TexturesFit(rec.gpu, Object.values(reads)),
    what,
    needs: "needs n a multiple of 4, views starting 16-byte aligned, and n within a texture",
  });
  const bound = vec4 ? vec4Reads(rec, reads, { what, first: writes.length, textures }) : {
    wgsl: Object.keys(reads).map((name, r) =>
      `@group(0) @binding(${writes.length + r}) var<storage, read> in_${name}: array<f32>;\n` +
      `fn ${name}_at(i: u32) -> f32 { return in_${name}[i]; }`
    ).join("\n"),
    views: Object.values(reads),
    textures: [],
  };
  const code = /* wgsl */ `
alias T = ${elementType(vec4)};
struct P { n: u32 }
${
    writes.map(([name], b) => `@group(0) @binding(${b}) var<storage, read_write> ${name}: array<T>;`).join(
      "\n",
    )
  }
${bound.wgsl}
@group(0) @binding(${writes.length + Object.keys(reads).length}) var<uniform> p: P;
${FLAT_INDEX_WGSL}
${args.helpers ?? ""}
@compute @workgroup_size(${ELEMENTWISE_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat_index(gid, nwg, ${ELEMENTWISE_WG}u);
  if (i >= p.n) { return; }
  ${Object.keys(reads).map((name) => `let ${name} = ${name}_at(i);`).join("\n  ")}
${args.body}
}`;
  rec.dispatch({
    code,
    views: [...writes.map(([, view]) => view), ...bound.views],
    textures: bound.textures,
    uniforms: new Uniforms().u32(count),
    groups: grid(rec.gpu, count),
  });
}
