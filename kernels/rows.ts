/**
 * Tables split into row chunks that each fit one storage binding: the views kernels bind when a
 * tensor exceeds the device's `maxStorageBufferBindingSize`.
 *
 * @module
 */
import { type Gpu, GpuError, type View } from "./device.ts";

/** A run of rows of a row-major table: rows `row0 .. row0+rows-1`. */
export interface RowChunk {
  /** First row. */
  row0: number;
  /** Number of rows. */
  rows: number;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/**
 * Splits `view`, a table of `rows` rows of `cols` 32-bit elements, into chunks that each fit one
 * storage binding and start at a byte offset the device can bind (GPT-2's 154 MB `wte` exceeds
 * Mesa's 128 MiB binding limit). `maxRows` caps a chunk (rounded down to the alignment step), so
 * tests can split small tables. A table that fits is one chunk, an empty one included.
 *
 * @throws {GpuError} when no aligned chunk fits.
 */
export function rowChunks(
  gpu: Gpu,
  view: View,
  shape: { rows: number; cols: number; maxRows?: number },
): RowChunk[] {
  const { rows, cols, maxRows } = shape;
  const { maxStorageBufferBindingSize, minStorageBufferOffsetAlignment: align } = gpu.limits;
  const rowBytes = cols * 4;
  if (rows * rowBytes <= maxStorageBufferBindingSize && (maxRows === undefined || maxRows >= rows)) {
    return [{ row0: 0, rows }];
  }
  // Chunks start at multiples of `unit` rows, the smallest step that keeps offsets aligned.
  const unit = align / gcd(rowBytes, align);
  const fit = Math.min(Math.floor(maxStorageBufferBindingSize / rowBytes), maxRows ?? Infinity);
  const per = Math.floor(fit / unit) * unit;
  if (per < 1 || (view.offset * 4) % align !== 0) {
    throw new GpuError(
      `cannot split a table of ${rows} rows of ${cols} f32 into aligned chunks of at most ${fit} rows ` +
        `(offset alignment ${align} bytes, view offset ${view.offset * 4} bytes)`,
    );
  }
  const chunks: RowChunk[] = [];
  for (let row0 = 0; row0 < rows; row0 += per) chunks.push({ row0, rows: Math.min(per, rows - row0) });
  return chunks;
}

/** The rows of `chunk` in `view`, a table with `cols` elements per row. */
export function rowView(view: View, cols: number, chunk: RowChunk): View {
  return { buffer: view.buffer, offset: view.offset + chunk.row0 * cols, length: chunk.rows * cols };
}
