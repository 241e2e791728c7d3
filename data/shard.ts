/**
 * llm.c's token shard format, read and written: a header of 256 little-endian int32
 * (`[0]` magic, `[1]` version, `[2]` token count), then the tokens.
 *
 * - magic 20240520, version 1: uint16 tokens (GPT-2-sized vocabularies);
 * - magic 20240801, version 7: uint32 tokens (vocabularies over 65536).
 *
 * @module
 */
import { join } from "node:path";
import { DataError } from "./errors.ts";
import { sha256File, writeAll } from "./io.ts";

/** Bytes before the first token: 256 int32. */
export const HEADER_BYTES = 1024;

/** One of llm.c's two token layouts. */
export interface ShardFormat {
  /** "uint16" or "uint32", as recorded in `meta.json`. */
  readonly dtype: "uint16" | "uint32";
  /** `header[0]`. */
  readonly magic: number;
  /** `header[1]`. */
  readonly version: number;
  /** Bytes per token after the header. */
  readonly bytesPerToken: 2 | 4;
}

/** llm.c's GPT-2 shards: uint16 tokens. */
export const UINT16_SHARD: ShardFormat = { dtype: "uint16", magic: 20240520, version: 1, bytesPerToken: 2 };
/** llm.c's Llama-3 shards: uint32 tokens, for vocabularies over 65536. */
export const UINT32_SHARD: ShardFormat = { dtype: "uint32", magic: 20240801, version: 7, bytesPerToken: 4 };

/** The smaller format that holds every id below `vocabSize`. */
export function formatForVocab(vocabSize: number): ShardFormat {
  return vocabSize <= 65536 ? UINT16_SHARD : UINT32_SHARD;
}

/** A shard's validated header. */
export interface ShardHeader {
  /** Token layout named by the magic number. */
  readonly format: ShardFormat;
  /** Tokens after the header, agreeing with the file size. */
  readonly tokens: number;
}

/** The 1024 header bytes of a shard holding `tokens` tokens. */
export function encodeHeader(format: ShardFormat, tokens: number): Uint8Array {
  if (!Number.isInteger(tokens) || tokens < 0 || tokens > 0x7fffffff) {
    throw new DataError(`a shard holds at most 2147483647 tokens (int32 count), got ${tokens}`);
  }
  const bytes = new Uint8Array(HEADER_BYTES);
  const view = new DataView(bytes.buffer);
  view.setInt32(0, format.magic, true);
  view.setInt32(4, format.version, true);
  view.setInt32(8, tokens, true);
  return bytes;
}

/**
 * Validates the header of the shard at `path` whose file has `fileSize` bytes.
 *
 * @throws {DataError} naming `path` for a short file, an unknown magic or version, or a token
 * count that disagrees with the file size (a truncated or padded shard).
 */
export function parseHeader(header: Uint8Array, fileSize: number, path: string): ShardHeader {
  if (fileSize < HEADER_BYTES || header.length < HEADER_BYTES) {
    throw new DataError(`${path}: ${fileSize} bytes, shorter than the ${HEADER_BYTES}-byte shard header`);
  }
  const view = new DataView(header.buffer, header.byteOffset, HEADER_BYTES);
  const magic = view.getInt32(0, true);
  const version = view.getInt32(4, true);
  const tokens = view.getInt32(8, true);
  const format = [UINT16_SHARD, UINT32_SHARD].find((f) => f.magic === magic);
  if (!format) {
    throw new DataError(
      `${path}: not a token shard (magic ${magic}; expected ${UINT16_SHARD.magic} or ${UINT32_SHARD.magic})`,
    );
  }
  if (version !== format.version) {
    throw new DataError(
      `${path}: unknown shard version ${version} for magic ${magic} (expected ${format.version})`,
    );
  }
  const expected = HEADER_BYTES + tokens * format.bytesPerToken;
  if (tokens < 0 || fileSize !== expected) {
    throw new DataError(
      `${path}: header counts ${tokens} tokens (${expected} bytes) but the file has ${fileSize} bytes`,
    );
  }
  return { format, tokens };
}

/** Writes `tokens` as one shard at `path` (whole, for small data and tests); uint16 by default. */
export async function writeShard(
  path: string,
  tokens: ArrayLike<number>,
  options: { format?: ShardFormat } = {},
): Promise<void> {
  const format = options.format ?? UINT16_SHARD;
  const body = format.bytesPerToken === 2 ? Uint16Array.from(tokens) : Uint32Array.from(tokens);
  const bytes = new Uint8Array(HEADER_BYTES + body.byteLength);
  bytes.set(encodeHeader(format, tokens.length));
  bytes.set(new Uint8Array(body.buffer), HEADER_BYTES);
  await Deno.writeFile(path, bytes);
}

/** A shard that {@linkcode ShardWriter} finished. */
export interface WrittenShard {
  /** File name inside the output folder, e.g. `train_000000.bin`. */
  readonly file: string;
  /** Tokens in it. */
  readonly tokens: number;
  /** SHA-256 of the whole file, hex. */
  readonly sha256: string;
}

const BUFFER_TOKENS = 1 << 20;

/**
 * Streams one split's tokens into `DIR/<split>_000000.bin`, `_000001.bin`, ... with at most
 * `shardTokens` tokens each. Memory is one 1M-token buffer; each header is written as a
 * placeholder and patched when its shard is full or the split ends.
 */
export class ShardWriter {
  readonly #dir: string;
  readonly #split: string;
  readonly #format: ShardFormat;
  readonly #shardTokens: number;
  readonly #buffer: Uint16Array | Uint32Array;
  #fill = 0;
  #file: Deno.FsFile | null = null;
  #inShard = 0;
  #total = 0;
  readonly #done: WrittenShard[] = [];

  /** Prepares a writer; no file is created before the first token. */
  constructor(dir: string, split: string, options: { format: ShardFormat; shardTokens: number }) {
    this.#dir = dir;
    this.#split = split;
    this.#format = options.format;
    this.#shardTokens = options.shardTokens;
    this.#buffer = options.format.bytesPerToken === 2
      ? new Uint16Array(BUFFER_TOKENS)
      : new Uint32Array(BUFFER_TOKENS);
  }

  /** Tokens written so far, across shards. */
  get tokens(): number {
    return this.#total;
  }

  /** Appends `ids` (each below the vocabulary the format was chosen for). */
  async write(ids: ArrayLike<number>): Promise<void> {
    let i = 0;
    while (i < ids.length) {
      if (!this.#file) await this.#open();
      const n = Math.min(
        ids.length - i,
        this.#shardTokens - this.#inShard,
        this.#buffer.length - this.#fill,
      );
      const buf = this.#buffer;
      const fill = this.#fill;
      for (let j = 0; j < n; j++) buf[fill + j] = ids[i + j];
      this.#fill += n;
      this.#inShard += n;
      this.#total += n;
      i += n;
      if (this.#fill === buf.length) await this.#flush();
      if (this.#inShard === this.#shardTokens) await this.#closeShard();
    }
  }

  /** Closes the last shard and returns every shard written, in order. */
  async finish(): Promise<WrittenShard[]> {
    if (this.#file) await this.#closeShard();
    return [...this.#done];
  }

  /** Closes the open shard file, if any, without finishing it (after a failed run). */
  close(): void {
    this.#file?.close();
    this.#file = null;
  }

  #name(): string {
    return `${this.#split}_${String(this.#done.length).padStart(6, "0")}.bin`;
  }

  async #open(): Promise<void> {
    const name = this.#name();
    this.#file = await Deno.open(join(this.#dir, name), { write: true, create: true, truncate: true });
    await writeAll(this.#file, encodeHeader(this.#format, 0));
  }

  async #flush(): Promise<void> {
    const bytes = new Uint8Array(this.#buffer.buffer, 0, this.#fill * this.#format.bytesPerToken);
    await writeAll(this.#file!, bytes);
    this.#fill = 0;
  }

  async #closeShard(): Promise<void> {
    const file = this.#file!;
    await this.#flush();
    await file.seek(0, Deno.SeekMode.Start);
    await writeAll(file, encodeHeader(this.#format, this.#inShard));
    file.close();
    const name = this.#name();
    this.#done.push({ file: name, tokens: this.#inShard, sha256: await sha256File(join(this.#dir, name)) });
    this.#file = null;
    this.#inShard = 0;
  }
}
