/**
 * The GGUF file format (llama.cpp), versions 2 and 3: a header, typed key-value metadata, a
 * directory of tensors, then the aligned tensor data. Metadata is read whole when the file is
 * opened; tensor data is read one tensor at a time, on demand, so a loader holds at most one
 * converted copy of the weights.
 *
 * Layout: `"GGUF"`, version u32, tensor count u64, metadata count u64; each metadata entry a key
 * (u64 length + UTF-8), a value type u32 and the value; each tensor a name, dimension count u32,
 * dimensions u64 (innermost first), a ggml type u32 and a data offset u64 relative to the data
 * section, which starts at the next multiple of `general.alignment` (32 by default).
 *
 * @module
 */
import { openCheckpointFile, readAt } from "./_file_io.ts";
import { CheckpointError, decodeFloats, type FloatDtype } from "./safetensors.ts";

/** A metadata value: numbers (64-bit integers as bigint), booleans, strings, or arrays of them. */
export type GgufValue = number | bigint | boolean | string | GgufValue[];

/** One tensor of the directory. */
export interface GgufTensor {
  /** Name, e.g. `blk.0.attn_q.weight`. */
  name: string;
  /** Shape, outermost first (GGUF stores it innermost first). */
  shape: number[];
  /** The ggml type number. */
  type: number;
  /** Byte offset of its data in the file. */
  offset: number;
  /** Bytes of its data. */
  bytes: number;
}

/** An open GGUF file. */
export interface GgufFile {
  /** The path it was opened from. */
  readonly path: string;
  /** Format version (2 or 3). */
  readonly version: number;
  /** Metadata by key. */
  readonly metadata: ReadonlyMap<string, GgufValue>;
  /** The tensor directory, by name. */
  readonly tensors: ReadonlyMap<string, GgufTensor>;
  /**
   * Reads one tensor as f32 (F32, F16 and BF16 converted, Q8_0 dequantised).
   *
   * @throws {CheckpointError} for another element type or a truncated file.
   */
  read(tensor: GgufTensor): Promise<Float32Array>;
  /** Closes the file. */
  close(): void;
}

const MAGIC = 0x46554747; // "GGUF", little-endian

/** ggml element types this reader converts: name, bytes per block, elements per block. */
const TYPES: Record<number, { name: string; blockBytes: number; blockSize: number }> = {
  0: { name: "F32", blockBytes: 4, blockSize: 1 },
  1: { name: "F16", blockBytes: 2, blockSize: 1 },
  8: { name: "Q8_0", blockBytes: 34, blockSize: 32 },
  30: { name: "BF16", blockBytes: 2, blockSize: 1 },
};

/** Names of the other ggml types, for error messages. */
const OTHER_TYPES: Record<number, string> = {
  2: "Q4_0",
  3: "Q4_1",
  6: "Q5_0",
  7: "Q5_1",
  9: "Q8_1",
  10: "Q2_K",
  11: "Q3_K",
  12: "Q4_K",
  13: "Q5_K",
  14: "Q6_K",
  15: "Q8_K",
  16: "IQ2_XXS",
  17: "IQ2_XS",
  18: "IQ3_XXS",
  19: "IQ1_S",
  20: "IQ4_NL",
  21: "IQ3_S",
  22: "IQ2_S",
  23: "IQ4_XS",
  24: "I8",
  25: "I16",
  26: "I32",
  27: "I64",
  28: "F64",
  29: "IQ1_M",
};

/** The name of ggml type `type`. */
export function ggmlTypeName(type: number): string {
  return TYPES[type]?.name ?? OTHER_TYPES[type] ?? `type ${type}`;
}

/** Sequential little-endian reads over a file, fetched in chunks as the cursor advances. */
class Cursor {
  #file: Deno.FsFile;
  #size: number;
  #buf = new Uint8Array(0);
  #start = 0; // file offset of #buf[0]
  pos = 0;

  constructor(file: Deno.FsFile, size: number, readonly path: string) {
    this.#file = file;
    this.#size = size;
  }

  async #need(n: number): Promise<DataView> {
    if (this.pos + n > this.#size) {
      throw new CheckpointError(`${this.path}: file ends inside the GGUF header (truncated?)`);
    }
    if (this.pos < this.#start || this.pos + n > this.#start + this.#buf.length) {
      const length = Math.min(this.#size - this.pos, Math.max(n, 1 << 20));
      this.#buf = new Uint8Array(length);
      await readAt(this.#file, this.pos, this.#buf);
      this.#start = this.pos;
    }
    const view = new DataView(this.#buf.buffer, this.pos - this.#start, n);
    this.pos += n;
    return view;
  }

  async u32(): Promise<number> {
    return (await this.#need(4)).getUint32(0, true);
  }

  async u64(): Promise<number> {
    const v = (await this.#need(8)).getBigUint64(0, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new CheckpointError(`${this.path}: a count or offset of ${v} is not plausible (corrupt header?)`);
    }
    return Number(v);
  }

  async string(): Promise<string> {
    const n = await this.u64();
    const view = await this.#need(n);
    return new TextDecoder().decode(new Uint8Array(view.buffer, view.byteOffset, n));
  }

  async value(type: number): Promise<GgufValue> {
    switch (type) {
      case 0:
        return (await this.#need(1)).getUint8(0);
      case 1:
        return (await this.#need(1)).getInt8(0);
      case 2:
        return (await this.#need(2)).getUint16(0, true);
      case 3:
        return (await this.#need(2)).getInt16(0, true);
      case 4:
        return await this.u32();
      case 5:
        return (await this.#need(4)).getInt32(0, true);
      case 6:
        return shortestF32((await this.#need(4)).getFloat32(0, true));
      case 7:
        return (await this.#need(1)).getUint8(0) !== 0;
      case 8:
        return await this.string();
      case 9: {
        const itemType = await this.u32();
        const n = await this.u64();
        const items: GgufValue[] = new Array(n);
        for (let i = 0; i < n; i++) items[i] = await this.value(itemType);
        return items;
      }
      case 10:
        return (await this.#need(8)).getBigUint64(0, true);
      case 11:
        return (await this.#need(8)).getBigInt64(0, true);
      case 12:
        return (await this.#need(8)).getFloat64(0, true);
      default:
        throw new CheckpointError(`${this.path}: unknown GGUF metadata value type ${type} (corrupt file?)`);
    }
  }
}

/** The shortest decimal that rounds to the f32 `v` (1e-5 rather than 0.000009999999747378752). */
function shortestF32(v: number): number {
  for (let digits = 1; digits < 9; digits++) {
    const d = Number(v.toPrecision(digits));
    if (Math.fround(d) === v) return d;
  }
  return v;
}

/** Dequantises Q8_0 blocks (an f16 scale, then 32 int8 values) to f32. */
function dequantizeQ8_0(bytes: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let b = 0; b < n / 32; b++) {
    const d = view.getFloat16(b * 34, true);
    for (let i = 0; i < 32; i++) out[b * 32 + i] = d * view.getInt8(b * 34 + 2 + i);
  }
  return out;
}

/**
 * Opens a GGUF file and reads its metadata and tensor directory.
 *
 * @throws {CheckpointError} naming the file: not GGUF, an unsupported version, a truncated or
 * corrupt header, or tensor data running past the end of the file.
 */
export async function openGguf(path: string): Promise<GgufFile> {
  const { file, size } = await openCheckpointFile(path);
  try {
    const c = new Cursor(file, size, path);
    if (size < 24 || await c.u32() !== MAGIC) {
      throw new CheckpointError(`${path}: not a GGUF file (no "GGUF" magic)`);
    }
    const version = await c.u32();
    if (version !== 2 && version !== 3) {
      throw new CheckpointError(`${path}: GGUF version ${version} is not supported (2 or 3)`);
    }
    const tensorCount = await c.u64();
    const kvCount = await c.u64();
    const metadata = new Map<string, GgufValue>();
    for (let i = 0; i < kvCount; i++) {
      const key = await c.string();
      metadata.set(key, await c.value(await c.u32()));
    }
    const infos: { name: string; dims: number[]; type: number; offset: number }[] = [];
    for (let i = 0; i < tensorCount; i++) {
      const name = await c.string();
      const nd = await c.u32();
      if (nd > 4) throw new CheckpointError(`${path}: tensor ${name} has ${nd} dimensions (corrupt header?)`);
      const dims: number[] = [];
      for (let d = 0; d < nd; d++) dims.push(await c.u64());
      infos.push({ name, dims, type: await c.u32(), offset: await c.u64() });
    }
    const alignment = Number(metadata.get("general.alignment") ?? 32);
    const dataStart = Math.ceil(c.pos / alignment) * alignment;
    const tensors = new Map<string, GgufTensor>();
    for (const { name, dims, type, offset } of infos) {
      const count = dims.reduce((a, b) => a * b, 1);
      const t = TYPES[type];
      const bytes = t ? (count / t.blockSize) * t.blockBytes : 0;
      const tensor = { name, shape: dims.toReversed(), type, offset: dataStart + offset, bytes };
      if (t && tensor.offset + bytes > size) {
        throw new CheckpointError(
          `${path}: tensor ${name} data [${tensor.offset}, ${
            tensor.offset + bytes
          }) runs past the ${size}-byte file: truncated?`,
        );
      }
      tensors.set(name, tensor);
    }
    return {
      path,
      version,
      metadata,
      tensors,
      async read(tensor: GgufTensor): Promise<Float32Array> {
        const t = TYPES[tensor.type];
        if (!t) {
          throw new CheckpointError(
            `${path}: tensor ${tensor.name} has type ${ggmlTypeName(tensor.type)}; ` +
              `only F32, F16, BF16 and Q8_0 can be read`,
          );
        }
        const count = tensor.shape.reduce((a, b) => a * b, 1);
        if (count % t.blockSize !== 0) {
          throw new CheckpointError(
            `${path}: tensor ${tensor.name} of ${count} elements is not whole ${t.name} blocks`,
          );
        }
        const bytes = new Uint8Array(tensor.bytes);
        if (!await readAt(file, tensor.offset, bytes)) {
          throw new CheckpointError(`${path}: file ended inside tensor ${tensor.name}`);
        }
        return t.name === "Q8_0" ? dequantizeQ8_0(bytes, count) : decodeFloats(t.name as FloatDtype, bytes);
      },
      close: () => file.close(),
    };
  } catch (e) {
    file.close();
    throw e;
  }
}
