/**
 * Scratch objects shared by every kernel on a device, and where kernels read their operands
 * from: on a CPU adapter, textures that their inputs are first copied into (see
 * {@linkcode scratchTexture} for why); intermediate buffers that one kernel writes and the next
 * reads.
 *
 * @module
 */
import {
  createTexture,
  createView,
  type Gpu,
  GpuError,
  type Recorder,
  requireLength,
  textureFits,
  type TextureShape,
  type View,
} from "./device.ts";

/**
 * Where a kernel reads its large inputs from: their storage buffers, or textures they are first
 * copied into (see {@linkcode scratchTexture}).
 */
export type Operands = "buffer" | "texture";

// Scratch objects, one per device and key, shared by every kernel on the device: the queue runs
// each write into one and the kernel reading it in order, so a later write cannot overwrite an
// earlier kernel's input before that kernel has run.
function pooled<T>(pools: WeakMap<GPUDevice, Map<string, T>>, gpu: Gpu, key: string, create: () => T): T {
  let pool = pools.get(gpu.device);
  if (!pool) pools.set(gpu.device, pool = new Map());
  let item = pool.get(key);
  if (item === undefined) pool.set(key, item = create());
  return item;
}

const scratchTextures = new WeakMap<GPUDevice, Map<string, GPUTexture>>();

/**
 * Returns the device's rgba32float scratch texture for `role` and `shape`, created on first use,
 * for {@linkcode Recorder.copyToTexture} to fill right before the kernel that reads it.
 *
 * Why textures: llvmpipe (Mesa 22.3) loads a storage-buffer element lane by lane, with a bounds
 * check and a branch per lane, ~18 cycles per element, while its storage-texture loads are
 * straight-line vector code, ~13 cycles for a 4-float texel of all 8 lanes: 40x less per
 * element. Copying an input into a texture is a row-by-row memcpy. So on a CPU adapter kernels
 * that read their inputs many times (matmul, attention) read them from textures.
 */
export function scratchTexture(gpu: Gpu, role: string, shape: TextureShape): GPUTexture {
  const key = `${role} ${shape.rows}x${shape.cols}${shape.u32 ? " u32" : ""}`;
  return pooled(scratchTextures, gpu, key, () => createTexture(gpu, shape, key));
}

const scratchViews = new WeakMap<GPUDevice, Map<string, View>>();

/**
 * Returns the device's scratch storage buffer of `length` elements for `role`, created on first
 * use: for a kernel's intermediate results that the next kernel in the same queue consumes, so
 * one buffer serves every call of that shape (the queue runs them in order).
 */
export function scratchView(gpu: Gpu, role: string, length: number): View {
  const key = `${role} ${length}`;
  return pooled(scratchViews, gpu, key, () => createView(gpu, length, key));
}

/**
 * How a table sits in its scratch texture: row by row (texel `c4` of row `r` at texture texel
 * `(c4, r)`), or flat, for rows that WebGPU cannot copy one per texture row (not a multiple of 64
 * floats): the table's texels in row-major order along texture rows of `2^shift` texels, texel
 * `i = r·pitch + c4` at `(i & (2^shift - 1), i >> shift)`.
 */
export interface ScratchLayout {
  /** Whether the table is stored flat. */
  flat: boolean;
  /** Texels per table row (`cols / 4`). */
  pitch: number;
  /** log2 of the texture's width in texels when flat (0 otherwise). */
  shift: number;
  /** The texture's own shape. */
  texture: TextureShape;
}

/**
 * The layout {@linkcode copyToScratchTextures} gives a `shape` table in `view`: row by row where
 * {@linkcode textureFits}, else flat where the rows are whole texels (a multiple of 4 floats), the
 * view starts 16-byte aligned and the texels fit a texture at least 64 texels wide; else null.
 */
export function scratchLayout(gpu: Gpu, view: View, shape: TextureShape): ScratchLayout | null {
  const pitch = shape.cols / 4;
  if (textureFits(gpu, view, shape)) return { flat: false, pitch, shift: 0, texture: shape };
  if (shape.cols <= 0 || shape.cols % 4 !== 0 || shape.rows <= 0 || view.offset % 4 !== 0) return null;
  const flat = flatTexture(gpu, shape.rows * pitch);
  return flat && { flat: true, pitch, ...flat };
}

/**
 * The texture that holds `texels` texels flat ({@linkcode Recorder.copyFlatToTexture}): the
 * narrowest power-of-two width from 64 texels (2^shift) whose rows hold them within the device's
 * texture height; null when none does.
 */
export function flatTexture(gpu: Gpu, texels: number): { shift: number; texture: TextureShape } | null {
  const max = gpu.limits.maxTextureDimension2D;
  let shift = 6;
  while (Math.ceil(texels / 2 ** shift) > max) shift++;
  if (2 ** shift > max) return null;
  return { shift, texture: { rows: Math.ceil(texels / 2 ** shift), cols: 4 * 2 ** shift } };
}

/** Whether a `shape` table in `view` can be read from a scratch texture ({@linkcode scratchLayout}). */
export function scratchTextureFits(gpu: Gpu, view: View, shape: TextureShape): boolean {
  return scratchLayout(gpu, view, shape) !== null;
}

/**
 * Records copies of `tables` into the device's scratch textures for `role` (the i-th table into
 * texture `role i`) in their {@linkcode scratchLayout}, and returns those textures in order, for
 * a kernel recorded next to read. Both layouts are copies by the queue (a memcpy per texture row);
 * kernels that read flat tables (LLaMA's MLP of 172, a key projection of 32) compute each texel's
 * place from the layout.
 *
 * @throws {GpuError} for a table that does not fit or a view shorter than its table.
 */
export function copyToScratchTextures(
  rec: Recorder,
  role: string,
  tables: { view: View; shape: TextureShape }[],
): GPUTexture[] {
  return tables.map(({ view, shape }, i) => {
    const layout = scratchLayout(rec.gpu, view, shape);
    if (!layout) {
      throw new GpuError(
        `${role}: a table of ${shape.rows} rows of ${shape.cols} floats at offset ${view.offset} cannot be ` +
          "copied into a texture (rows of whole texels, a 16-byte aligned start, within the texture size)",
      );
    }
    const texture = scratchTexture(rec.gpu, `${role} ${i}`, layout.texture);
    if (!layout.flat) {
      rec.copyToTexture(view, texture);
      return texture;
    }
    const n = shape.rows * shape.cols;
    requireLength(view, n, `${role} texture copy (${shape.rows} rows of ${shape.cols})`);
    rec.copyFlatToTexture({ ...view, length: n }, texture);
    return texture;
  });
}

/**
 * The operands a kernel reads unless told: textures on a CPU adapter whenever they `fit` (see
 * {@linkcode scratchTexture} for why), else buffers.
 */
export function defaultOperands(gpu: Gpu, fit: boolean): Operands {
  return gpu.isFallback && fit ? "texture" : "buffer";
}

/**
 * Whether a kernel reads texture operands: as `operands` says if given, else by
 * {@linkcode defaultOperands}.
 *
 * @throws {GpuError} `"<what> cannot read texture operands: <needs>"` when textures are asked for
 * and do not fit.
 */
export function useTextureOperands(
  gpu: Gpu,
  choice: { operands?: Operands; fit: boolean; what: string; needs: string },
): boolean {
  const want = choice.operands ?? defaultOperands(gpu, choice.fit);
  if (want === "texture" && !choice.fit) {
    throw new GpuError(`${choice.what} cannot read texture operands: ${choice.needs}`);
  }
  return want === "texture";
}

/**
 * WGSL helper for kernels reading tables copied into scratch textures ({@linkcode scratchTexture}):
 * declares `texel(t, c4, row)`, the floats `4·c4 .. 4·c4+3` of row `row`.
 */
export const TEXEL_WGSL = /* wgsl */ `
fn texel(t: texture_storage_2d<rgba32float, read>, c4: u32, row: u32) -> vec4<f32> {
  return textureLoad(t, vec2<u32>(c4, row));
}`;
