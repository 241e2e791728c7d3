/**
 * Text to llm.c token shards, streaming: text files, folders of them, or built-in corpora go in;
 * `DIR/train_000000.bin ...`, `DIR/val_000000.bin ...` and `DIR/meta.json` come out.
 *
 * Documents: each file is a document, and a literal `<|endoftext|>` inside a text file also
 * separates documents (the convention of GPT-2-style text dumps). As llm.c's data scripts do, the
 * end-of-text token (where the tokenizer has one) precedes every document.
 *
 * Validation split, at document granularity and deterministic: numbering the non-empty documents
 * 0, 1, 2, ... in reading order, document `i` goes to val when `floor((i+1)·f) > floor(i·f)`
 * for `f = valFraction`. That puts exactly `floor(n·f)` of n documents in val, spread evenly
 * through the input (for the genre-ordered Brown Corpus, every genre contributes).
 *
 * Memory: files are read in chunks (4 MiB by default) and cut for the tokenizer where a
 * whitespace character follows a non-whitespace one, which GPT-2's pre-tokenizer never joins
 * across, so the ids equal those of encoding each document whole; shards are written through a
 * 1M-token buffer. Memory stays bounded whatever the input size.
 *
 * Determinism: inputs are read in the order given, folders recursively in sorted name order, and
 * `meta.json` holds no times or absolute paths: the same inputs give byte-identical output.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join, resolve } from "node:path";
import { CORPORA, type Corpus } from "./corpus.ts";
import { DataError } from "./errors.ts";
import { type DatasetMeta, META_FILE, type SourceMeta } from "./meta.ts";
import { formatForVocab, ShardWriter } from "./shard.ts";
import { getTokenizer, type Tokenizer } from "./tokenizer.ts";
import { Utf8Chunks } from "./_utf8.ts";

/** Where `prepare` has got to; passed to `onProgress` after every chunk. */
export interface PrepareProgress {
  /** Input bytes read so far. */
  readonly bytesRead: number;
  /** Input bytes in all sources. */
  readonly totalBytes: number;
  /** Tokens written so far. */
  readonly tokens: number;
  /** Seconds since the start. */
  readonly seconds: number;
}

/** Options of {@linkcode prepare}. */
export interface PrepareOptions {
  /** Text files, folders of text files (recursive), or built-in corpus names (`brown`). */
  inputs: readonly string[];
  /** Output folder, created if missing; earlier shards and meta.json in it are replaced. */
  out: string;
  /** Tokenizer name (default "gpt2"). */
  tokenizer?: string;
  /** Fraction of documents for validation, in [0, 1) (default 0.05). */
  valFraction?: number;
  /** Most tokens per shard file (default 100M, as llm.c's FineWeb shards). */
  shardTokens?: number;
  /** Stop after this many tokens, both splits together (default: all of the input). */
  maxTokens?: number;
  /** Bytes read per chunk (default 4 MiB). */
  chunkBytes?: number;
  /** Called after every chunk, e.g. to draw a progress bar. */
  onProgress?: (progress: PrepareProgress) => void;
}

/** Defaults of {@linkcode PrepareOptions}. */
export const PREPARE_DEFAULTS = {
  tokenizer: "gpt2",
  valFraction: 0.05,
  shardTokens: 100_000_000,
  chunkBytes: 4 << 20,
} as const;

/** Separator of documents inside a text file. */
export const DOCUMENT_SEPARATOR = "<|endoftext|>";

/** Whether document `index` (from 0, in reading order) belongs to the validation split. */
export function isValDocument(index: number, valFraction: number): boolean {
  return Math.floor((index + 1) * valFraction) > Math.floor(index * valFraction);
}

interface Source {
  readonly input: string;
  /** Name in meta.json and errors. */
  readonly name: string;
  readonly path: string;
  readonly size: number;
  /** Set for a built-in corpus file: the file is one document, converted to text. */
  readonly corpus?: Corpus;
}

const SHARD_FILE = /^(train|val)_\d{6}\.bin$/;

/**
 * Tokenizes `options.inputs` into shards in `options.out` and writes `meta.json` last (its
 * presence marks a complete folder). Returns what it wrote to `meta.json`.
 *
 * @throws {DataError} naming the input or option for a missing input, an empty input, text that
 * is not valid UTF-8, or an option out of range; shards of the failed run are removed.
 */
export async function prepare(options: PrepareOptions): Promise<DatasetMeta> {
  const tokenizer = await getTokenizer(options.tokenizer ?? PREPARE_DEFAULTS.tokenizer);
  const valFraction = options.valFraction ?? PREPARE_DEFAULTS.valFraction;
  if (!(valFraction >= 0 && valFraction < 1)) {
    throw new DataError(`valFraction must be in [0, 1), got ${valFraction}`);
  }
  const shardTokens = options.shardTokens ?? PREPARE_DEFAULTS.shardTokens;
  if (!Number.isInteger(shardTokens) || shardTokens < 1 || shardTokens > 0x7fffffff) {
    throw new DataError(`shardTokens must be an integer in [1, 2147483647], got ${shardTokens}`);
  }
  const maxTokens = options.maxTokens ?? null;
  if (maxTokens !== null && (!Number.isSafeInteger(maxTokens) || maxTokens < 1)) {
    throw new DataError(`maxTokens must be a positive integer, got ${maxTokens}`);
  }
  const chunkBytes = options.chunkBytes ?? PREPARE_DEFAULTS.chunkBytes;
  if (options.inputs.length === 0) throw new DataError("no inputs given");

  const sources = await listSources(options.inputs, options.out);
  await clearOutput(options.out);
  const format = formatForVocab(tokenizer.vocabSize);
  const writers = {
    train: new ShardWriter(options.out, "train", { format, shardTokens }),
    val: new ShardWriter(options.out, "val", { format, shardTokens }),
  };
  const docs = new Documents(tokenizer, writers, valFraction, maxTokens);
  const totalBytes = sources.reduce((n, s) => n + s.size, 0);
  const started = performance.now();
  let bytesRead = 0;
  const progress = (bytes: number): void => {
    bytesRead += bytes;
    options.onProgress?.({
      bytesRead,
      totalBytes,
      tokens: docs.tokens,
      seconds: (performance.now() - started) / 1000,
    });
  };
  const sourceMeta: SourceMeta[] = [];
  try {
    for (const source of sources) {
      if (docs.full) break;
      const before = docs.count;
      const { bytes, sha256 } = await readSource(source, docs, chunkBytes, progress);
      sourceMeta.push({
        input: source.input,
        path: source.name,
        bytes,
        sha256,
        documents: docs.count - before,
        ...(docs.full ? { truncated: true as const } : {}),
      });
    }
    if (docs.tokens === 0) {
      throw new DataError(
        `no text in ${options.inputs.join(", ")} (${totalBytes} bytes): nothing to prepare`,
      );
    }
  } catch (e) {
    await writers.train.abort();
    await writers.val.abort();
    throw e;
  }
  const [train, val] = [await writers.train.finish(), await writers.val.finish()];
  const meta: DatasetMeta = {
    tokenizer: tokenizer.name,
    vocabSize: tokenizer.vocabSize,
    eotToken: tokenizer.eotToken ?? null,
    dtype: format.dtype,
    documents: tokenizer.eotToken === undefined
      ? `each file, and each part of a text file between "${DOCUMENT_SEPARATOR}", is a document; documents are concatenated without a separator token`
      : `each file, and each part of a text file between "${DOCUMENT_SEPARATOR}", is a document; token ${tokenizer.eotToken} precedes every document`,
    valFraction,
    valRule:
      "non-empty documents numbered i = 0, 1, ... in reading order; i is val when floor((i+1)*valFraction) > floor(i*valFraction)",
    shardTokens,
    maxTokens,
    splits: {
      train: { tokens: writers.train.tokens, documents: docs.perSplit.train, shards: train },
      val: { tokens: writers.val.tokens, documents: docs.perSplit.val, shards: val },
    },
    sources: sourceMeta,
  };
  await Deno.writeTextFile(join(options.out, META_FILE), JSON.stringify(meta, null, 2) + "\n");
  return meta;
}

/** Routes documents to the splits and writes their tokens, within the token budget. */
class Documents {
  count = 0;
  tokens = 0;
  full = false;
  readonly perSplit = { train: 0, val: 0 };
  #pending = false;
  #split: "train" | "val" = "train";

  constructor(
    readonly tokenizer: Tokenizer,
    readonly writers: { train: ShardWriter; val: ShardWriter },
    readonly valFraction: number,
    readonly maxTokens: number | null,
  ) {}

  /** The next text starts a new document (which counts once it has a token). */
  start(): void {
    this.#pending = true;
  }

  /** Appends text to the current document, splitting at literal separators. */
  async text(text: string): Promise<void> {
    const parts = text.split(DOCUMENT_SEPARATOR);
    for (let i = 0; i < parts.length && !this.full; i++) {
      if (i > 0) this.start();
      await this.#write(this.tokenizer.encode(parts[i]));
    }
  }

  async #write(ids: number[]): Promise<void> {
    if (ids.length === 0) return;
    if (this.#pending) {
      this.#pending = false;
      this.#split = isValDocument(this.count, this.valFraction) ? "val" : "train";
      this.count++;
      this.perSplit[this.#split]++;
      if (this.tokenizer.eotToken !== undefined) ids = [this.tokenizer.eotToken, ...ids];
    }
    if (this.maxTokens !== null && this.tokens + ids.length >= this.maxTokens) {
      ids = ids.slice(0, this.maxTokens - this.tokens);
      this.full = true;
    }
    await this.writers[this.#split].write(ids);
    this.tokens += ids.length;
  }
}

async function readSource(
  source: Source,
  docs: Documents,
  chunkBytes: number,
  progress: (bytes: number) => void,
): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash("sha256");
  const utf8 = new Utf8Chunks(source.name);
  docs.start();
  if (source.corpus) {
    const raw = await Deno.readFile(source.path);
    hash.update(raw);
    const text = utf8.decode(raw);
    utf8.finish();
    await docs.text(source.corpus.toText(text));
    progress(raw.length);
    return { bytes: raw.length, sha256: hash.digest("hex") };
  }
  using file = await Deno.open(source.path);
  const buf = new Uint8Array(chunkBytes);
  let bytes = 0;
  let pending = "";
  while (!docs.full) {
    const n = await readFull(file, buf);
    if (n === 0) break;
    const chunk = buf.subarray(0, n);
    hash.update(chunk);
    bytes += n;
    pending += utf8.decode(chunk);
    let cut = lastBoundary(pending);
    // Text without whitespace for 16 chunks is cut anyway, at a character boundary, to bound memory.
    if (cut === 0 && pending.length > 16 * chunkBytes) {
      cut = pending.length - (isHighSurrogate(pending) ? 1 : 0);
    }
    if (cut > 0) {
      await docs.text(pending.slice(0, cut));
      pending = pending.slice(cut);
    }
    progress(n);
  }
  if (!docs.full) {
    utf8.finish();
    await docs.text(pending);
  }
  return { bytes, sha256: hash.digest("hex") };
}

async function readFull(file: Deno.FsFile, buf: Uint8Array): Promise<number> {
  let got = 0;
  while (got < buf.length) {
    const n = await file.read(buf.subarray(got));
    if (n === null) break;
    got += n;
  }
  return got;
}

function isHighSurrogate(s: string): boolean {
  const c = s.charCodeAt(s.length - 1);
  return c >= 0xd800 && c <= 0xdbff;
}

const SPACE = /\s/;

function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13) || (c >= 0x80 && SPACE.test(String.fromCharCode(c)));
}

/** The last index `i > 0` where whitespace follows non-whitespace (a safe cut), or 0. */
function lastBoundary(s: string): number {
  for (let i = s.length - 1; i > 0; i--) {
    if (isSpace(s.charCodeAt(i)) && !isSpace(s.charCodeAt(i - 1))) return i;
  }
  return 0;
}

async function listSources(inputs: readonly string[], out: string): Promise<Source[]> {
  const skip = resolve(out);
  const sources: Source[] = [];
  for (const input of inputs) {
    let info: Deno.FileInfo | null = null;
    try {
      info = await Deno.stat(input);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    if (!info) {
      const corpus = Object.hasOwn(CORPORA, input) ? CORPORA[input] : undefined;
      if (!corpus) {
        throw new DataError(
          `input ${input}: no such file, folder or built-in corpus (built-in: ${
            Object.keys(CORPORA).join(", ")
          })`,
        );
      }
      for (const f of await corpus.files()) {
        sources.push({ input, name: f.name, path: f.path, size: f.size, corpus });
      }
    } else if (info.isDirectory) {
      const before = sources.length;
      await walk(input, skip, (path, size) => sources.push({ input, name: path, path, size }));
      if (sources.length === before) throw new DataError(`input ${input}: folder holds no files`);
    } else {
      sources.push({ input, name: input, path: input, size: info.size });
    }
  }
  return sources;
}

/** Calls `add` for every non-hidden file under `dir`, in sorted path order, skipping the folder `skip`. */
async function walk(dir: string, skip: string, add: (path: string, size: number) => void): Promise<void> {
  if (resolve(dir) === skip) return;
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) if (!e.name.startsWith(".")) names.push(e.name);
  for (const name of names.sort()) {
    const path = join(dir, name);
    const info = await Deno.stat(path);
    if (info.isDirectory) await walk(path, skip, add);
    else if (info.isFile) add(path, info.size);
  }
}

/** Creates `out`, removing the meta.json and shards of an earlier run so none can be mixed in. */
async function clearOutput(out: string): Promise<void> {
  try {
    await Deno.mkdir(out, { recursive: true });
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) throw new DataError(`out ${out}: exists and is not a folder`);
    throw e;
  }
  for await (const e of Deno.readDir(out)) {
    if (e.isFile && (e.name === META_FILE || SHARD_FILE.test(e.name))) await Deno.remove(join(out, e.name));
  }
}
