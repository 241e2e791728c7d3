/**
 * Reading prepared token shards: one shard ({@linkcode openShard}), or a prepared folder's
 * splits as continuous token streams ({@linkcode openDataset}).
 *
 * Shards are memory-mapped through libc `mmap` when FFI is permitted (`--allow-ffi`), so only the
 * pages a batch touches are read; otherwise each read is a positioned read of just the requested
 * tokens. Neither loads a shard whole. Headers are validated on open, and so is every token
 * against the vocabulary (one pass over each shard).
 *
 * @module
 */
import { basename, join } from "node:path";
import { canMap, mapFile, type Mapping } from "./_mmap.ts";
import { DataError } from "./errors.ts";
import { sha256File } from "./io.ts";
import { type DatasetMeta, META_FILE } from "./meta.ts";
import { HEADER_BYTES, parseHeader, type ShardFormat } from "./shard.ts";

/** A stream of tokens addressed by position. */
export interface TokenSource {
  /** Tokens in the stream. */
  readonly length: number;
  /** Copies tokens `[start, start + count)`; throws RangeError outside `[0, length]`. */
  read(start: number, count: number): Uint32Array;
}

/** A {@linkcode TokenSource} over tokens already in memory (tests, small corpora). */
export function arraySource(tokens: ArrayLike<number>): TokenSource {
  const data = Uint32Array.from(tokens);
  return {
    length: data.length,
    read(start: number, count: number): Uint32Array {
      checkRange(start, count, data.length);
      return data.slice(start, start + count);
    },
  };
}

function checkRange(start: number, count: number, length: number): void {
  if (
    !Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > length
  ) {
    throw new RangeError(`read(${start}, ${count}) outside a source of ${length} tokens`);
  }
}

/** Options for opening shards. */
export interface OpenOptions {
  /**
   * The model's vocabulary: a token at or above it is an error naming the shard. Defaults to the
   * tokenizer's vocabulary in `meta.json`, if there is one.
   */
  vocabSize?: number;
  /** Whether to memory-map when FFI allows it (default true); false forces positioned reads. */
  mmap?: boolean;
}

const SCAN_TOKENS = 1 << 20;

/** One validated shard, memory-mapped or read on demand. Close it when done. */
export class ShardReader implements TokenSource, Disposable {
  /** The file. */
  readonly path: string;
  /** Its token layout. */
  readonly format: ShardFormat;
  /** Tokens in it. */
  readonly length: number;
  #mapping: Mapping | null;
  #view: Uint16Array | Uint32Array | null;
  #file: Deno.FsFile | null;
  #closed = false;

  private constructor(
    path: string,
    header: { format: ShardFormat; tokens: number },
    mapping: Mapping | null,
  ) {
    this.path = path;
    this.format = header.format;
    this.length = header.tokens;
    this.#mapping = mapping;
    const Typed = header.format.bytesPerToken === 2 ? Uint16Array : Uint32Array;
    this.#view = mapping ? new Typed(mapping.bytes.buffer, HEADER_BYTES, header.tokens) : null;
    this.#file = mapping ? null : Deno.openSync(path);
  }

  /**
   * Opens and validates the shard at `path`.
   *
   * @throws {DataError} naming `path` when it is missing, its header is wrong, its size disagrees
   * with the header, or a token is at or above `options.vocabSize`.
   */
  static async open(path: string, options: OpenOptions = {}): Promise<ShardReader> {
    let size: number;
    const header = new Uint8Array(HEADER_BYTES);
    try {
      using file = await Deno.open(path);
      size = (await file.stat()).size;
      let got = 0;
      while (got < HEADER_BYTES) {
        const n = await file.read(header.subarray(got));
        if (n === null) break;
        got += n;
      }
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) throw new DataError(`${path}: no such shard file`);
      throw e;
    }
    const parsed = parseHeader(header, size, path);
    const mapping = options.mmap === false ? null : mapFile(path, size);
    const reader = new ShardReader(path, parsed, mapping);
    try {
      if (options.vocabSize !== undefined) reader.#checkVocab(options.vocabSize);
    } catch (e) {
      reader.close();
      throw e;
    }
    return reader;
  }

  /** Whether the shard is memory-mapped (else read with positioned reads). */
  get mapped(): boolean {
    return this.#mapping !== null;
  }

  /** Copies tokens `[start, start + count)`. */
  read(start: number, count: number): Uint32Array {
    const out = new Uint32Array(count);
    out.set(this.#raw(start, count));
    return out;
  }

  /** Unmaps or closes the file; reads afterwards throw. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#view = null;
    this.#mapping?.unmap();
    this.#mapping = null;
    this.#file?.close();
    this.#file = null;
  }

  /** Same as {@linkcode ShardReader.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Tokens `[start, start + count)` in the shard's own dtype, without a copy when mapped. */
  #raw(start: number, count: number): Uint16Array | Uint32Array {
    if (this.#closed) throw new Error(`${this.path}: read after close`);
    checkRange(start, count, this.length);
    if (this.#view) return this.#view.subarray(start, start + count);
    const bpt = this.format.bytesPerToken;
    const bytes = new Uint8Array(count * bpt);
    const file = this.#file!;
    file.seekSync(HEADER_BYTES + start * bpt, Deno.SeekMode.Start);
    for (let got = 0; got < bytes.length;) {
      const n = file.readSync(bytes.subarray(got));
      if (n === null) throw new DataError(`${this.path}: file shrank while reading`);
      got += n;
    }
    return bpt === 2 ? new Uint16Array(bytes.buffer) : new Uint32Array(bytes.buffer);
  }

  #checkVocab(vocabSize: number): void {
    if (vocabSize >= 2 ** (8 * this.format.bytesPerToken)) return;
    for (let start = 0; start < this.length; start += SCAN_TOKENS) {
      const chunk = this.#raw(start, Math.min(SCAN_TOKENS, this.length - start));
      for (let i = 0; i < chunk.length; i++) {
        if (chunk[i] >= vocabSize) {
          throw new DataError(
            `${this.path}: token ${chunk[i]} at position ${
              start + i
            } is not below the vocabulary size ${vocabSize}`,
          );
        }
      }
    }
  }
}

/** Opens and validates one shard; see {@linkcode ShardReader.open}. */
export function openShard(path: string, options: OpenOptions = {}): Promise<ShardReader> {
  return ShardReader.open(path, options);
}

/** Shards read one after another as one stream. */
class ConcatSource implements TokenSource {
  readonly length: number;
  readonly #shards: readonly ShardReader[];
  readonly #starts: number[];

  constructor(shards: readonly ShardReader[]) {
    this.#shards = shards;
    this.#starts = [];
    let n = 0;
    for (const s of shards) {
      this.#starts.push(n);
      n += s.length;
    }
    this.length = n;
  }

  read(start: number, count: number): Uint32Array {
    checkRange(start, count, this.length);
    if (count === 0) return new Uint32Array(0);
    // The last shard starting at or before `start`: an empty shard shares its start with the next.
    let lo = 0;
    for (let hi = this.#starts.length - 1; lo < hi;) {
      const mid = (lo + hi + 1) >> 1;
      if (this.#starts[mid] <= start) lo = mid;
      else hi = mid - 1;
    }
    const first = start - this.#starts[lo];
    if (first + count <= this.#shards[lo].length) return this.#shards[lo].read(first, count);
    const out = new Uint32Array(count);
    for (let i = lo, done = 0; done < count; i++) {
      const from = start + done - this.#starts[i];
      const n = Math.min(count - done, this.#shards[i].length - from);
      if (n > 0) out.set(this.#shards[i].read(from, n), done);
      done += Math.max(n, 0);
    }
    return out;
  }
}

/** Prepared token data: named splits, each a continuous stream across its shards. */
export interface Dataset extends Disposable {
  /** The folder or shard file opened. */
  readonly path: string;
  /** `meta.json`'s contents, or null for a bare shard or a folder of llm.c shards. */
  readonly meta: DatasetMeta | null;
  /** Splits present, e.g. `["train", "val"]`. */
  readonly splits: readonly string[];
  /** Whether the shards are memory-mapped (else positioned reads). */
  readonly mapped: boolean;
  /**
   * The tokens of split `name` (usually "train" or "val"), shards concatenated in order.
   *
   * @throws {DataError} for a split the dataset does not have.
   */
  split(name: string): TokenSource;
  /** Unmaps and closes every shard; the split sources must not be read afterwards. */
  close(): void;
}

/**
 * The split to validate on at context `T`: "val" when it holds at least one window, T tokens and
 * the next-token target of the last (T + 1), else undefined. Training then validates on nothing;
 * evaluation and analysis, which must measure on something, fall back to "train" and say so.
 */
export function validationSplit(dataset: Pick<Dataset, "splits" | "split">, T: number): "val" | undefined {
  return dataset.splits.includes("val") && dataset.split("val").length >= T + 1 ? "val" : undefined;
}

const SHARD_NAME = /(?:^|_)(train|val)(?:_\d+)?\.bin$/;

/**
 * Opens a prepared folder (with `meta.json`, or a folder of llm.c shards named like
 * `*train_000001.bin` / `*val.bin`) or a single shard file. A single file is split "val" when
 * its name says so (`val_000000.bin`, `fineweb_val_000000.bin`), else "train".
 *
 * @throws {DataError} naming the file for a missing path, a corrupt or truncated shard, a
 * `meta.json` that disagrees with its shards, or a token not below the vocabulary size.
 */
export async function openDataset(path: string, options: OpenOptions = {}): Promise<Dataset> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new DataError(`${path}: no such dataset folder or shard file`);
    }
    throw e;
  }
  let meta: DatasetMeta | null = null;
  const files = new Map<string, { path: string; tokens?: number }[]>();
  const add = (split: string, file: { path: string; tokens?: number }): void => {
    if (!files.has(split)) files.set(split, []);
    files.get(split)!.push(file);
  };
  if (info.isFile) {
    add(basename(path).match(SHARD_NAME)?.[1] ?? "train", { path });
  } else {
    meta = await readMeta(path);
    if (meta) {
      for (const split of ["train", "val"] as const) {
        const shards = meta.splits[split]?.shards;
        if (!shards) continue;
        files.set(split, []);
        for (const s of shards) add(split, { path: join(path, s.file), tokens: s.tokens });
      }
    } else {
      const names: string[] = [];
      for await (const e of Deno.readDir(path)) if (e.isFile && SHARD_NAME.test(e.name)) names.push(e.name);
      if (names.length === 0) {
        throw new DataError(`${path}: no ${META_FILE} and no shard files (*train*.bin, *val*.bin)`);
      }
      for (const name of names.sort()) add(name.match(SHARD_NAME)![1], { path: join(path, name) });
    }
  }
  if (meta && options.vocabSize !== undefined && meta.vocabSize > options.vocabSize) {
    throw new DataError(
      `${
        join(path, META_FILE)
      }: tokenizer ${meta.tokenizer} has ${meta.vocabSize} tokens, more than the model's vocabulary of ${options.vocabSize}`,
    );
  }
  const vocabSize = options.vocabSize ?? meta?.vocabSize;
  const opened: ShardReader[] = [];
  const sources = new Map<string, TokenSource>();
  try {
    for (const [split, list] of files) {
      const readers: ShardReader[] = [];
      for (const f of list) {
        const reader = await ShardReader.open(f.path, { vocabSize, mmap: options.mmap });
        opened.push(reader);
        readers.push(reader);
        if (f.tokens !== undefined && f.tokens !== reader.length) {
          throw new DataError(`${f.path}: holds ${reader.length} tokens but ${META_FILE} says ${f.tokens}`);
        }
      }
      sources.set(split, new ConcatSource(readers));
    }
  } catch (e) {
    for (const r of opened) r.close();
    throw e;
  }
  const close = (): void => {
    for (const r of opened) r.close();
  };
  return {
    path,
    meta,
    splits: [...sources.keys()],
    mapped: opened.length > 0 && opened.every((r) => r.mapped),
    split(name: string): TokenSource {
      const source = sources.get(name);
      if (!source) throw new DataError(`${path}: no ${name} split (has ${[...sources.keys()].join(", ")})`);
      return source;
    },
    close,
    [Symbol.dispose]: close,
  };
}

async function readMeta(dir: string): Promise<DatasetMeta | null> {
  const file = join(dir, META_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  let meta: DatasetMeta;
  try {
    meta = JSON.parse(text);
  } catch {
    throw new DataError(`${file}: not valid JSON`);
  }
  const ok = typeof meta === "object" && meta !== null && typeof meta.vocabSize === "number" &&
    Array.isArray(meta.splits?.train?.shards) &&
    (meta.splits.val === undefined || Array.isArray(meta.splits.val.shards));
  if (!ok) throw new DataError(`${file}: missing vocabSize or splits.train.shards`);
  return meta;
}

/**
 * Checks every shard `meta.json` lists against its SHA-256 there, reading each whole (a byte
 * changed after `prepare` would otherwise train silently). Sizes and token counts were checked by
 * {@linkcode openDataset}; bare shards, without `meta.json`, have nothing to check against.
 * Returns the bytes hashed.
 *
 * @throws {DataError} naming the first shard whose SHA-256 differs.
 */
export async function verifyShards(dataset: Pick<Dataset, "path" | "meta">): Promise<number> {
  let bytes = 0;
  for (const split of Object.values(dataset.meta?.splits ?? {})) {
    for (const shard of split.shards) {
      const path = join(dataset.path, shard.file);
      const sha256 = await sha256File(path);
      bytes += (await Deno.stat(path)).size;
      if (sha256 !== shard.sha256) {
        throw new DataError(
          `${path}: SHA-256 ${sha256.slice(0, 12)}… differs from ${META_FILE}'s ${
            shard.sha256.slice(0, 12)
          }…: the shard changed after prepare; prepare the data again`,
        );
      }
    }
  }
  return bytes;
}

/** Whether this process can memory-map shards (FFI permitted and libc found). */
export function canMemoryMap(): boolean {
  return canMap();
}

/** The largest token id of `source` (-1 when it is empty), read in chunks of 1M tokens. */
export function maxToken(source: TokenSource): number {
  let max = -1;
  for (let start = 0; start < source.length; start += SCAN_TOKENS) {
    const chunk = source.read(start, Math.min(SCAN_TOKENS, source.length - start));
    for (let i = 0; i < chunk.length; i++) if (chunk[i] > max) max = chunk[i];
  }
  return max;
}
