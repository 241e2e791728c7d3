/**
 * The safetensors format: an 8-byte little-endian header length, a JSON header mapping each tensor
 * name to `{dtype, shape, data_offsets}` (plus an optional `__metadata__` of strings), then the raw
 * tensor bytes. Reads F32, F16 and BF16 into `Float32Array`s, checking the header against the file
 * before trusting any offset; writes F32, F16 or BF16 atomically.
 *
 * Typed arrays are little-endian on every platform Deno runs on, as the format requires, so tensor
 * bytes are copied without swapping.
 *
 * @module
 */
import { writeAll } from "@inheritune/data";
import { CheckpointError, openCheckpointFile, readAt, writeAtomic } from "./_file_io.ts";

export { CheckpointError };

/** Element types that can be read into, and written from, a `Float32Array`. */
export type FloatDtype = "F32" | "F16" | "BF16";

/** A tensor's shape (outermost first) and its values in row-major order. */
export interface TensorData {
  /** Shape, outermost first; `[]` for a scalar. */
  shape: number[];
  /** The values, converted to f32. */
  data: Float32Array;
}

/** A tensor as read from a file, with the element type it was stored in. */
export interface StoredTensor extends TensorData {
  /** The element type in the file. */
  dtype: FloatDtype;
}

/** The contents of a safetensors file. */
export interface SafetensorsContents {
  /** Tensors by name, in the order their data lies in the file. */
  tensors: Map<string, StoredTensor>;
  /** The header's `__metadata__` (empty when absent). */
  metadata: Record<string, string>;
}

/** Options of {@linkcode readSafetensors}. */
export interface ReadSafetensorsOptions {
  /** Loads only the tensors this accepts; the others are still checked in the header but never read. */
  filter?: (name: string) => boolean;
}

/** Options of {@linkcode writeSafetensors}. */
export interface WriteSafetensorsOptions {
  /** String pairs stored as the header's `__metadata__`. */
  metadata?: Record<string, string>;
  /** Element type to store (default F32); F16 and BF16 round to nearest even. */
  dtype?: FloatDtype;
}

/** Bytes per element of every dtype the format defines, so any valid header can be checked. */
const DTYPE_BYTES: Record<string, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
};

/** The format's own bound on the header, which also keeps a corrupt length from allocating gigabytes. */
const MAX_HEADER_BYTES = 100_000_000;

interface HeaderEntry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

function isFloatDtype(dtype: string): dtype is FloatDtype {
  return dtype === "F32" || dtype === "F16" || dtype === "BF16";
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function isIndex(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}

/** Parses and checks the JSON header against the `dataBytes` that follow it. */
function parseHeader(
  path: string,
  bytes: Uint8Array,
  dataBytes: number,
): { entries: HeaderEntry[]; metadata: Record<string, string> } {
  const fail = (problem: string): never => {
    throw new CheckpointError(`${path}: ${problem}`);
  };
  if (bytes[0] !== 0x7b) fail("header does not start with {");
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    fail("header is not a JSON object");
  }
  const metadata: Record<string, string> = {};
  const entries: HeaderEntry[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
        fail("__metadata__ is not an object");
      }
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== "string") fail(`__metadata__ value ${k} is not a string`);
        metadata[k] = v as string;
      }
      continue;
    }
    const { dtype, shape, data_offsets: offsets } = (raw ?? {}) as Record<string, unknown>;
    if (typeof dtype !== "string" || !(dtype in DTYPE_BYTES)) {
      fail(`tensor ${name} has unknown dtype ${dtype}`);
    }
    if (!Array.isArray(shape) || !shape.every(isIndex)) fail(`tensor ${name} has an invalid shape`);
    if (
      !Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isIndex) || offsets[0] > offsets[1]
    ) {
      fail(`tensor ${name} has invalid data_offsets`);
    }
    const [begin, end] = offsets as number[];
    if (end > dataBytes) {
      fail(`tensor ${name} data [${begin}, ${end}) runs past the ${dataBytes} data bytes: file truncated?`);
    }
    const want = numel(shape as number[]) * DTYPE_BYTES[dtype as string];
    if (end - begin !== want) {
      fail(`tensor ${name} spans ${end - begin} bytes, but ${dtype} [${shape}] needs ${want}`);
    }
    entries.push({ name, dtype: dtype as string, shape: shape as number[], begin, end });
  }
  // As the reference library requires: the tensors tile the data section exactly, in offset
  // order, so a header length off by a byte or a stray offset cannot shift what is read.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let end = 0;
  for (const [i, e] of entries.entries()) {
    if (e.begin < end) fail(`tensors ${entries[i - 1].name} and ${e.name} overlap`);
    if (e.begin > end) {
      fail(`tensor ${e.name} data begins at ${e.begin}, not at ${end} where the data before it ends`);
    }
    end = e.end;
  }
  if (end !== dataBytes) {
    fail(
      `the tensors' data ends at byte ${end} of the ${dataBytes}-byte data section (wrong header length?)`,
    );
  }
  return { entries, metadata };
}

/** Converts little-endian `dtype` elements to f32 (a view of `bytes` for F32). */
export function decodeFloats(dtype: FloatDtype, bytes: Uint8Array): Float32Array {
  switch (dtype) {
    case "F32":
      return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    case "F16":
      return Float32Array.from(new Float16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2));
    case "BF16": {
      const half = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
      const bits = new Uint32Array(half.length);
      for (let i = 0; i < half.length; i++) bits[i] = half[i] << 16;
      return new Float32Array(bits.buffer);
    }
  }
}

/** Converts f32 values to little-endian `dtype` elements, rounding to nearest even (a view of `data` for F32). */
export function encodeFloats(dtype: FloatDtype, data: Float32Array): Uint8Array {
  switch (dtype) {
    case "F32":
      return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    case "F16":
      return new Uint8Array(new Float16Array(data).buffer);
    case "BF16": {
      const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
      const out = new Uint16Array(data.length);
      for (let i = 0; i < data.length; i++) {
        const b = bits[i];
        const isNaN = (b & 0x7fffffff) > 0x7f800000;
        out[i] = isNaN ? (b >>> 16) | 0x40 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
      }
      return new Uint8Array(out.buffer);
    }
  }
}

/**
 * Reads a safetensors file, converting F32, F16 and BF16 tensors to f32.
 *
 * @throws {CheckpointError} when the file is short or truncated, its header is not valid JSON, an
 * offset lies outside the data or disagrees with its dtype and shape, the tensors do not tile the
 * data section exactly (overlaps, gaps, bytes after the last), or a loaded tensor has a dtype other
 * than F32, F16 or BF16.
 */
export async function readSafetensors(
  path: string,
  options: ReadSafetensorsOptions = {},
): Promise<SafetensorsContents> {
  const { file, size } = await openCheckpointFile(path);
  try {
    const lengthBytes = new Uint8Array(8);
    if (!await readAt(file, 0, lengthBytes)) {
      throw new CheckpointError(`${path}: file is ${size} bytes, too short for the 8-byte header length`);
    }
    const headerLength = new DataView(lengthBytes.buffer).getBigUint64(0, true);
    if (headerLength > BigInt(Math.min(size - 8, MAX_HEADER_BYTES))) {
      throw new CheckpointError(
        `${path}: header length ${headerLength} does not fit in the ${size}-byte file`,
      );
    }
    const headerBytes = new Uint8Array(Number(headerLength));
    await readAt(file, 8, headerBytes);
    const dataStart = 8 + headerBytes.length;
    const { entries, metadata } = parseHeader(path, headerBytes, size - dataStart);
    const tensors = new Map<string, StoredTensor>();
    for (const { name, dtype, shape, begin, end } of entries) {
      if (options.filter && !options.filter(name)) continue;
      if (!isFloatDtype(dtype)) {
        throw new CheckpointError(
          `${path}: tensor ${name} has dtype ${dtype}; only F32, F16 and BF16 can be read`,
        );
      }
      const bytes = new Uint8Array(end - begin);
      if (!await readAt(file, dataStart + begin, bytes)) {
        throw new CheckpointError(`${path}: file ended inside tensor ${name}`);
      }
      tensors.set(name, { dtype, shape, data: decodeFloats(dtype, bytes) });
    }
    return { tensors, metadata };
  } finally {
    file.close();
  }
}

/**
 * Writes `tensors` to a safetensors file, header and data in the map's order, the header padded
 * with spaces to a multiple of 8 bytes so the data starts aligned. The file is written under a
 * temporary name and renamed into place, so an existing file survives a failed write.
 *
 * @throws {CheckpointError} when a tensor's data length disagrees with its shape.
 */
export async function writeSafetensors(
  path: string,
  tensors: ReadonlyMap<string, TensorData>,
  options: WriteSafetensorsOptions = {},
): Promise<void> {
  const dtype = options.dtype ?? "F32";
  const header: Record<string, unknown> = {};
  if (options.metadata) header.__metadata__ = options.metadata;
  let offset = 0;
  for (const [name, { shape, data }] of tensors) {
    if (name === "__metadata__") {
      throw new CheckpointError(`${path}: __metadata__ is not a valid tensor name`);
    }
    if (!shape.every(isIndex) || data.length !== numel(shape)) {
      throw new CheckpointError(
        `${path}: tensor ${name} has ${data.length} values, shape [${shape}] needs ${numel(shape)}`,
      );
    }
    const bytes = data.length * DTYPE_BYTES[dtype];
    header[name] = { dtype, shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((new TextEncoder().encode(json).length) % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const prefix = new Uint8Array(8 + headerBytes.length);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  prefix.set(headerBytes, 8);
  await writeAtomic(path, async (file) => {
    await writeAll(file, prefix);
    for (const { data } of tensors.values()) await writeAll(file, encodeFloats(dtype, data));
  });
}
