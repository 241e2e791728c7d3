/**
 * Copying results back to the CPU: {@linkcode Readback}, a staging buffer that gathers many copies
 * per map, and {@linkcode read}, {@linkcode readAll} and {@linkcode readBytes} on top of it.
 *
 * @module
 */
import { checkErrors, type Gpu, GpuError, type View } from "./device.ts";

/**
 * A staging buffer that brings results back to the CPU: allocated once for `length` 32-bit
 * elements, filled by copies encoded at element offsets, then mapped once and read. Every map
 * waits for the queue to reach it (about 10 ms in Deno), so callers gather many copies per map: a
 * parameter table, 64 validation batches, the losses of a log step.
 */
export class Readback {
  /** Capacity in 32-bit elements. */
  readonly length: number;
  #gpu: Gpu;
  #buffer: GPUBuffer;

  /** Allocates the staging buffer on `gpu`. */
  constructor(gpu: Gpu, length: number, label?: string) {
    this.length = length;
    this.#gpu = gpu;
    this.#buffer = gpu.device.createBuffer({
      size: Math.max(16, Math.ceil(length / 4) * 16),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      label,
    });
  }

  /**
   * Encodes a copy of `view` into elements `at .. at + view.length - 1` of the staging buffer.
   *
   * @throws {GpuError} when the copy would end past the buffer.
   */
  copy(encoder: GPUCommandEncoder, view: View, at = 0): void {
    if (at < 0 || at + view.length > this.length) {
      throw new GpuError(
        `readback of ${view.length} elements at ${at} into a staging buffer of ${this.length}`,
      );
    }
    if (view.length > 0) {
      encoder.copyBufferToBuffer(view.buffer, view.offset * 4, this.#buffer, at * 4, view.length * 4);
    }
  }

  /**
   * Maps the first `length` elements once the queue has run every copy submitted before, passes
   * them to `use` and unmaps: the bytes are valid only during `use`, which copies what it keeps.
   * Only one map may be pending at a time, and no copy into the buffer may be submitted meanwhile.
   *
   * @throws {GpuError} first, when a kernel recorded so far was invalid ({@linkcode checkErrors}).
   */
  async mapRead<T>(length: number, use: (bytes: ArrayBuffer) => T): Promise<T> {
    await checkErrors(this.#gpu);
    const bytes = Math.max(4, length * 4);
    await this.#buffer.mapAsync(GPUMapMode.READ, 0, bytes);
    try {
      return use(this.#buffer.getMappedRange(0, bytes));
    } finally {
      this.#buffer.unmap();
    }
  }

  /** Releases the staging buffer. */
  destroy(): void {
    this.#buffer.destroy();
  }
}

/** Copies `views` back to the CPU, one array of bytes each, through one {@linkcode Readback}. */
async function readViews(gpu: Gpu, views: View[]): Promise<ArrayBuffer[]> {
  const at: number[] = [];
  let total = 0;
  for (const v of views) {
    at.push(total);
    total += v.length;
  }
  const staging = new Readback(gpu, total);
  try {
    const enc = gpu.device.createCommandEncoder();
    views.forEach((v, i) => staging.copy(enc, v, at[i]));
    gpu.device.queue.submit([enc.finish()]);
    return await staging.mapRead(
      total,
      (bytes) => views.map((v, i) => bytes.slice(at[i] * 4, (at[i] + v.length) * 4)),
    );
  } finally {
    staging.destroy();
  }
}

/** Copies `view` back to the CPU as f32 (waits for all submitted work). */
export async function read(gpu: Gpu, view: View): Promise<Float32Array> {
  return new Float32Array(await readBytes(gpu, view));
}

/**
 * Copies many views back to the CPU as f32 with one staging buffer and one map (each map costs a
 * round trip, so reading a whole parameter table view by view would be slow).
 */
export async function readAll(gpu: Gpu, views: View[]): Promise<Float32Array[]> {
  return (await readViews(gpu, views)).map((bytes) => new Float32Array(bytes));
}

/** Copies `view` back to the CPU as raw bytes (waits for all submitted work). */
export async function readBytes(gpu: Gpu, view: View): Promise<ArrayBuffer> {
  return (await readViews(gpu, [view]))[0];
}
