/**
 * The GGUF file format (llama.cpp), versions 2 and 3: a header, typed key-value metadata, a
 * directory of tensors, then the aligned tensor data. Metadata is read whole when the file is
 * opened; tensor data is read one tensor at a time, on demand, so a loader holds at most one
 * converted copy of the weights. Files are written (version 3) by {@linkcode writeGguf}, one tensor
 * at a time too, to a temporary file renamed over the target once complete.
 *
 * Layout: `"GGUF"`, version u32, tensor count u64, metadata count u64; each metadata entry a key
 * (u64 length + UTF-8), a value type u32 and the value; each tensor a name, dimension count u32,
 * dimensions u64 (innermost first), a ggml type u32 and a data offset u64 relative to the data
 * section, which starts at the next multiple of `general.alignment` (32 by default).
 *
 * @module
 */
import { writeAll } from "@inheritune/data";
import { openCheckpointFile, readAt, writeAtomic } from "./_file_io.ts";
import { CheckpointError } from "./safetensors.ts";
import { dequantize, DEQUANTIZE_TYPES, type GgmlType, ggmlType } from "./ggml_quants.ts";

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
   * Reads one tensor as f32 (see `DEQUANTIZE_TYPES` for the element types it converts).
   *
   * @throws {CheckpointError} for another element type or a truncated file.
   */
  read(tensor: GgufTensor): Promise<Float32Array>;
  /** Closes the file. */
  close(): void;
}

const MAGIC = 0x46554747; // "GGUF", little-endian
const DEFAULT_ALIGNMENT = 32;

/** GGUF's metadata value types (`enum gguf_type`), the numbers a file stores. */
export const GGUF_TYPE = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;

/** Fewest bytes each metadata value type takes (an array: its item type and count). */
const VALUE_BYTES: Record<number, number> = {
  0: 1,
  1: 1,
  2: 2,
  3: 2,
  4: 4,
  5: 4,
  6: 4,
  7: 1,
  8: 8,
  9: 12,
  10: 8,
  11: 8,
  12: 8,
};
/** Fewest bytes of one metadata entry (key length, a one-byte key, value type, a one-byte value). */
const MIN_KV_BYTES = 8 + 1 + 4 + 1;
/** Fewest bytes of one directory entry (name length, dimension count, type, offset). */
const MIN_TENSOR_INFO_BYTES = 8 + 4 + 4 + 8;

/**
 * Sequential little-endian reads over a file, fetched in chunks as the cursor advances. `field`
 * names what is being read, for the one-line error when the bytes cannot be what they claim.
 */
class Cursor {
  #file: Deno.FsFile;
  #buf = new Uint8Array(0);
  #start = 0; // file offset of #buf[0]
  pos = 0;
  field = "header";

  constructor(file: Deno.FsFile, readonly size: number, readonly path: string) {
    this.#file = file;
  }

  /** The one-line error naming the file and the field being read. */
  fail(problem: string): never {
    throw new CheckpointError(`${this.path}: ${this.field}: ${problem}`);
  }

  /** Refuses `count` items of at least `bytes` bytes each when the rest of the file cannot hold them. */
  fits(count: number, bytes: number, what: string): void {
    if (count * bytes > this.size - this.pos) {
      this.fail(
        `${count} ${what} cannot fit in the ${this.size - this.pos} bytes left of the file (corrupt?)`,
      );
    }
  }

  async #need(n: number): Promise<DataView> {
    if (this.pos + n > this.size) this.fail(`the file ends inside it (truncated?)`);
    if (this.pos < this.#start || this.pos + n > this.#start + this.#buf.length) {
      const length = Math.min(this.size - this.pos, Math.max(n, 1 << 20));
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

  /** A u64 that counts or locates bytes of this file, so at most its size. */
  async u64(): Promise<number> {
    const v = await this.u64Big();
    if (v > BigInt(this.size)) {
      this.fail(`a count or offset of ${v} is larger than the ${this.size}-byte file`);
    }
    return Number(v);
  }

  async u64Big(): Promise<bigint> {
    return (await this.#need(8)).getBigUint64(0, true);
  }

  async string(): Promise<string> {
    const n = await this.u64();
    const view = await this.#need(n);
    // ignoreBOM: a leading U+FEFF is content (a vocabulary has it as a token), not a byte-order mark.
    return new TextDecoder("utf-8", { ignoreBOM: true }).decode(
      new Uint8Array(view.buffer, view.byteOffset, n),
    );
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
        if (!(itemType in VALUE_BYTES)) this.fail(`unknown GGUF array item type ${itemType} (corrupt file?)`);
        this.fits(n, VALUE_BYTES[itemType], "array items");
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
        this.fail(`unknown GGUF metadata value type ${type} (corrupt file?)`);
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

/**
 * Opens a GGUF file and reads its metadata and tensor directory, refusing, before allocating
 * anything their sizes claim, what llama.cpp's reader refuses: counts and lengths the file's bytes
 * cannot hold, duplicate keys or tensor names, more than 4 dimensions, element counts that
 * overflow, ggml types that do not exist, rows that are not whole blocks, an alignment that is not
 * a power of two, and tensor data that is not aligned, not in directory order one tensor after
 * another, or past the end of the file.
 *
 * @throws {CheckpointError} one line naming the file and the field: not GGUF, an unsupported
 * version, a truncated or corrupt header, tensor data running past the end of the file.
 */
export async function openGguf(path: string): Promise<GgufFile> {
  const { file, size } = await openCheckpointFile(path);
  try {
    const c: Cursor = new Cursor(file, size, path);
    if (size < 24 || await c.u32() !== MAGIC) {
      throw new CheckpointError(`${path}: not a GGUF file (no "GGUF" magic)`);
    }
    const version = await c.u32();
    if (version !== 2 && version !== 3) {
      throw new CheckpointError(`${path}: GGUF version ${version} is not supported (2 or 3)`);
    }
    c.field = "tensor count";
    const tensorCount = await c.u64();
    c.field = "metadata count";
    const kvCount = await c.u64();
    c.fits(kvCount, MIN_KV_BYTES, "metadata entries");
    c.field = "tensor count";
    c.fits(tensorCount, MIN_TENSOR_INFO_BYTES, "tensors");
    const metadata = new Map<string, GgufValue>();
    for (let i = 0; i < kvCount; i++) {
      c.field = `metadata key ${i}`;
      const key = await c.string();
      c.field = `metadata ${key}`;
      if (metadata.has(key)) c.fail("the key appears twice");
      metadata.set(key, await c.value(await c.u32()));
    }
    const alignment = metadata.get("general.alignment") ?? DEFAULT_ALIGNMENT;
    if (typeof alignment !== "number" || !Number.isInteger(Math.log2(alignment))) {
      c.field = "metadata general.alignment";
      c.fail(`${alignment} is not a power of two (a u32)`);
    }
    const infos: { name: string; shape: number[]; type: GgmlType; offset: number; bytes: number }[] = [];
    const names = new Set<string>();
    for (let i = 0; i < tensorCount; i++) {
      c.field = `tensor ${i}`;
      const name = await c.string();
      c.field = `tensor ${name}`;
      if (names.has(name)) c.fail("the name appears twice");
      names.add(name);
      const nd = await c.u32();
      if (nd > 4) c.fail(`${nd} dimensions (at most 4)`);
      const dims: bigint[] = [];
      for (let d = 0; d < nd; d++) dims.push(await c.u64Big());
      const count = dims.reduce((a, b) => a * b, 1n);
      const id = await c.u32();
      const type = ggmlType(id);
      if (!type) c.fail(`ggml type ${id} does not exist (corrupt file?)`);
      if ((dims[0] ?? 1n) % BigInt(type.blockSize) !== 0n) {
        c.fail(`rows of ${dims[0]} ${type.name} elements are not whole blocks of ${type.blockSize}`);
      }
      const bytes = (count / BigInt(type.blockSize)) * BigInt(type.blockBytes);
      if (bytes > BigInt(size)) {
        c.fail(`shape [${dims.toReversed()}] of ${type.name} needs ${bytes} bytes, more than the file`);
      }
      const offset = await c.u64();
      infos.push({ name, shape: dims.toReversed().map(Number), type, offset, bytes: Number(bytes) });
    }
    const dataStart = Math.ceil(c.pos / alignment) * alignment;
    const tensors = new Map<string, GgufTensor>();
    let next = 0; // llama.cpp's layout: each tensor's data right after the previous one's, padded
    for (const { name, shape, type, offset, bytes } of infos) {
      c.field = `tensor ${name}`;
      if (offset % alignment !== 0) {
        c.fail(`data offset ${offset} is not a multiple of general.alignment ${alignment}`);
      }
      if (offset !== next) {
        c.fail(
          `data offset ${offset} is not ${next}, where the previous tensor's data ends (overlapping or out of order)`,
        );
      }
      next += Math.ceil(bytes / alignment) * alignment;
      const tensor = { name, shape, type: type.id, offset: dataStart + offset, bytes };
      if (tensor.offset + bytes > size) {
        c.fail(
          `data [${tensor.offset}, ${tensor.offset + bytes}) runs past the ${size}-byte file: truncated?`,
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
        const type = ggmlType(tensor.type)!;
        if (!type.dequantize) {
          throw new CheckpointError(
            `${path}: tensor ${tensor.name} has type ${type.name}; the types that can be read are ` +
              DEQUANTIZE_TYPES.join(", "),
          );
        }
        const bytes = new Uint8Array(tensor.bytes);
        if (!await readAt(file, tensor.offset, bytes)) {
          throw new CheckpointError(`${path}: file ended inside tensor ${tensor.name}`);
        }
        return dequantize(type, bytes, tensor.shape.reduce((a, b) => a * b, 1));
      },
      close: () => file.close(),
    };
  } catch (e) {
    file.close();
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

/**
 * A metadata entry to write: its {@linkcode GGUF_TYPE}, its value, and for an array (`ARRAY`) the
 * type of its items (arrays of arrays are not written).
 */
export type GgufEntry = [type: number, value: GgufValue, itemType?: number];

/** A tensor's directory entry: its name, shape (outermost first), ggml type and bytes of data. */
export interface GgufTensorInfo {
  /** Name, e.g. `blk.0.attn_q.weight`. */
  name: string;
  /** Shape, outermost first. */
  shape: readonly number[];
  /** The ggml type number. */
  type: number;
  /** Bytes of its data. */
  bytes: number;
}

/** A tensor to write: its name, shape and ggml type, and its data, produced when its turn comes. */
export interface GgufTensorSource {
  /** Name, e.g. `blk.0.attn_q.weight`. */
  name: string;
  /** Shape, outermost first. */
  shape: readonly number[];
  /** The ggml type number. */
  type: number;
  /** Its bytes in that type (called once, in directory order). */
  data(): Uint8Array | Promise<Uint8Array>;
}

/** Little-endian writes into a growing buffer. */
class ByteWriter {
  #buf = new Uint8Array(1024);
  #view = new DataView(this.#buf.buffer);
  length = 0;

  #room(n: number): DataView {
    if (this.length + n > this.#buf.length) {
      const grown = new Uint8Array(Math.max(this.#buf.length * 2, this.length + n));
      grown.set(this.#buf);
      this.#buf = grown;
      this.#view = new DataView(grown.buffer);
    }
    const at = this.length;
    this.length += n;
    return new DataView(this.#buf.buffer, at, n);
  }

  bytes(b: Uint8Array): void {
    this.#room(b.length);
    this.#buf.set(b, this.length - b.length);
  }

  u32(v: number): void {
    this.#room(4).setUint32(0, v, true);
  }

  u64(v: number | bigint): void {
    this.#room(8).setBigUint64(0, BigInt(v), true);
  }

  string(s: string): void {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    this.bytes(b);
  }

  value(type: number, v: GgufValue, itemType?: number): void {
    const wrong = (): never => {
      throw new RangeError(`GGUF value ${JSON.stringify(String(v))} is not of type ${type}`);
    };
    switch (type) {
      case GGUF_TYPE.UINT8:
        return this.#room(1).setUint8(0, Number(v));
      case GGUF_TYPE.INT8:
        return this.#room(1).setInt8(0, Number(v));
      case GGUF_TYPE.UINT16:
        return this.#room(2).setUint16(0, Number(v), true);
      case GGUF_TYPE.INT16:
        return this.#room(2).setInt16(0, Number(v), true);
      case GGUF_TYPE.UINT32:
        return this.#room(4).setUint32(0, Number(v), true);
      case GGUF_TYPE.INT32:
        return this.#room(4).setInt32(0, Number(v), true);
      case GGUF_TYPE.FLOAT32:
        return this.#room(4).setFloat32(0, Number(v), true);
      case GGUF_TYPE.BOOL:
        if (typeof v !== "boolean") wrong();
        return this.#room(1).setUint8(0, v ? 1 : 0);
      case GGUF_TYPE.STRING:
        if (typeof v !== "string") wrong();
        return this.string(v as string);
      case GGUF_TYPE.ARRAY:
        if (!Array.isArray(v) || itemType === undefined || itemType === GGUF_TYPE.ARRAY) wrong();
        this.u32(itemType!);
        this.u64((v as GgufValue[]).length);
        for (const item of v as GgufValue[]) this.value(itemType!, item);
        return;
      case GGUF_TYPE.UINT64:
        return this.#room(8).setBigUint64(0, BigInt(v as number | bigint), true);
      case GGUF_TYPE.INT64:
        return this.#room(8).setBigInt64(0, BigInt(v as number | bigint), true);
      case GGUF_TYPE.FLOAT64:
        return this.#room(8).setFloat64(0, Number(v), true);
      default:
        wrong();
    }
  }

  /** The bytes written, zero-padded to a multiple of `alignment`. */
  padded(alignment: number): Uint8Array {
    const out = new Uint8Array(Math.ceil(this.length / alignment) * alignment);
    out.set(this.#buf.subarray(0, this.length));
    return out;
  }
}

/**
 * The bytes of a GGUF v3 file before its tensor data: magic, version, counts, `metadata` in its
 * order, then each tensor's directory entry with its data offset (the data of each tensor after
 * the previous one's, padded to 32 bytes), zero-padded to the 32-byte aligned start of the data.
 * Takes the tensors' byte counts as given, so tests can describe malformed files.
 */
export function encodeGgufHeader(
  metadata: ReadonlyMap<string, GgufEntry>,
  tensors: readonly GgufTensorInfo[],
): Uint8Array {
  const w = new ByteWriter();
  w.u32(MAGIC);
  w.u32(3);
  w.u64(tensors.length);
  w.u64(metadata.size);
  for (const [key, [type, value, itemType]] of metadata) {
    w.string(key);
    w.u32(type);
    w.value(type, value, itemType);
  }
  let offset = 0;
  for (const t of tensors) {
    w.string(t.name);
    w.u32(t.shape.length);
    for (const d of t.shape.toReversed()) w.u64(d);
    w.u32(t.type);
    w.u64(offset);
    offset += Math.ceil(t.bytes / DEFAULT_ALIGNMENT) * DEFAULT_ALIGNMENT;
  }
  return w.padded(DEFAULT_ALIGNMENT);
}

/** Bytes of a tensor of `shape` in ggml type `id`, whose rows must be whole blocks. */
function tensorBytes(name: string, shape: readonly number[], id: number): number {
  const type = ggmlType(id);
  const count = shape.reduce((a, b) => a * b, 1);
  if (!type || (shape.at(-1) ?? 1) % type.blockSize !== 0) {
    throw new RangeError(`tensor ${name}: rows of shape [${shape}] are not whole blocks of ggml type ${id}`);
  }
  return (count / type.blockSize) * type.blockBytes;
}

/**
 * Writes a GGUF v3 file of `metadata` and `tensors` at `path` (data aligned to 32 bytes, no
 * `general.alignment` key), asking each tensor for its data in turn, so that one tensor's bytes are
 * held at a time. The file is written under a temporary name beside `path` and renamed over it once
 * complete and synced: a failure leaves whatever was at `path` as it was.
 *
 * @throws {RangeError} when a tensor's data is not its shape and type's size (a programming
 * error); file-system errors as they come.
 */
export async function writeGguf(
  path: string,
  metadata: ReadonlyMap<string, GgufEntry>,
  tensors: readonly GgufTensorSource[],
): Promise<void> {
  const infos = tensors.map((t) => ({ ...t, bytes: tensorBytes(t.name, t.shape, t.type) }));
  const header = encodeGgufHeader(metadata, infos);
  await writeAtomic(path, async (file) => {
    await writeAll(file, header);
    for (const t of infos) {
      const data = await t.data();
      if (data.length !== t.bytes) {
        throw new RangeError(
          `tensor ${t.name}: ${data.length} bytes of data, its shape and type need ${t.bytes}`,
        );
      }
      await writeAll(file, data);
      const pad = Math.ceil(t.bytes / DEFAULT_ALIGNMENT) * DEFAULT_ALIGNMENT - t.bytes;
      if (pad > 0) await writeAll(file, new Uint8Array(pad));
    }
  });
}
