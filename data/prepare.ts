/**
 * Text to llm.c token shards, streaming: text files, JSON Lines, JSON arrays and Parquet files
 * (each optionally `.gz` or `.zst`), folders of any mix, or built-in corpora go in;
 * `DIR/train_000000.bin ...`, `DIR/val_000000.bin ...`, `DIR/meta.json` and the tokenizer's
 * definition (`tokenizer.model` or `tokenizer.json`, none for gpt2 and bytes) come out.
 *
 * Documents (`documents`): a JSON record or Parquet row is a document (its `textField`). In text
 * files, "files" makes each file a document, and a literal `<|endoftext|>` also separates
 * documents (the convention of GPT-2-style text dumps); "paragraphs" also separates them at
 * blank lines and "lines" at every line break, each document stripped of surrounding whitespace
 * (llama2.c's `story.strip()`), in records too. "auto" (the default) is "files" unless the input
 * is text files holding too few such documents for the validation fraction to take one; then
 * "paragraphs" if there are blank lines, else "lines". The tokens around every document are the
 * tokenizer's own (`document_tokens.ts`): GPT-2's `<|endoftext|>` before it as llm.c's data
 * scripts do, a SentencePiece or Llama model's BOS, none for Qwen.
 *
 * Validation split, at document granularity and deterministic: numbering the non-empty documents
 * 0, 1, 2, ... in reading order, document `i` goes to val when `floor((i+1)·f) > floor(i·f)`
 * for `f = valFraction`. That puts exactly `floor(n·f)` of n documents in val, spread evenly
 * through the input (for the genre-ordered Brown Corpus, every genre contributes). With
 * `valFraction` 0 no val split is written.
 *
 * Memory: files are read in chunks (4 MiB by default); text is cut for the tokenizer before a
 * space that follows a letter or digit, which no tokenizer here joins across (`_words.ts`), and
 * the pieces after the first are encoded as continuations, so the ids equal those of encoding
 * each document whole; JSON is split record by record, Parquet read a row group at a time;
 * at most a few jobs of text wait for the tokenizer threads, and shards are written through a
 * 1M-token buffer. Memory stays bounded whatever the input's size.
 *
 * Threads (`workers`): pieces are grouped into jobs encoded on module workers; results are
 * merged in reading order, and every piece's ids depend on its text alone, so the output is
 * byte-identical for every worker count.
 *
 * Safety: everything is written into a hidden folder beside `out` and moved into `out` only once
 * complete; a failure (a bad input, a full disk) leaves the earlier contents of `out` as they were.
 *
 * Determinism: inputs are read in the order given, folders recursively in sorted name order, and
 * `meta.json` holds no times or absolute paths: the same inputs give byte-identical output.
 *
 * @module
 */
import { createHash, type Hash } from "node:crypto";
import { basename, dirname, join, resolve } from "node:path";
import { type DocumentTokens, documentTokens, readTokenizerConfig } from "./document_tokens.ts";
import { DataError } from "./errors.ts";
import { sha256File } from "./io.ts";
import { type DatasetMeta, type DocumentRule, META_FILE, type SourceMeta } from "./meta.ts";
import { formatForVocab, ShardWriter } from "./shard.ts";
import { loadTokenizer, TOKENIZER_NAMES } from "./tokenizer.ts";
import type { Tokenizer } from "./tokenizer_types.ts";
import { type EncodedJob, EncodePool } from "./_encode_pool.ts";
import { JsonRecords, parquetRecords, type TextRecord } from "./_records.ts";
import { listSources, type Source, sourceBytes } from "./_sources.ts";
import { Utf8Chunks } from "./_utf8.ts";
import { lastWordBoundary } from "./_words.ts";

/** Where `prepare` has got to; passed to `onProgress` after every chunk. */
export interface PrepareProgress {
  /** Input bytes read so far (as on disk, compressed). */
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
  /**
   * Text, `.jsonl` / `.ndjson`, `.json` and `.parquet` files (each optionally `.gz` / `.zst`),
   * folders of them (recursive), or built-in corpus names (`brown`).
   */
  inputs: readonly string[];
  /** Output folder, created if missing; its earlier shards, meta.json and tokenizer file are replaced once done. */
  out: string;
  /** A tokenizer, or a spec for `loadTokenizer`: "gpt2" (default), "bytes", a file or a folder. */
  tokenizer?: string | Tokenizer;
  /**
   * Tokens around every document. Default: by `tokenizer_config.json` beside a tokenizer given as
   * a path, else the family's default (see `document_tokens.ts`).
   */
  documentTokens?: DocumentTokens;
  /** What makes a document: "auto" (default), "files", "paragraphs" or "lines"; see the module doc. */
  documents?: DocumentsOption;
  /** Field of a JSON record or Parquet column holding the text; dots reach nested fields (default "text"). */
  textField?: string;
  /** Skip JSON lines and Parquet rows without a text, counting them, instead of failing (default false). */
  skipBadLines?: boolean;
  /** Fraction of documents for validation, in [0, 1) (default 0.05); 0 writes no val split. */
  valFraction?: number;
  /** Most tokens per shard file (default 100M, as llm.c's FineWeb shards). */
  shardTokens?: number;
  /** Stop after this many tokens, both splits together (default: all of the input). */
  maxTokens?: number;
  /** Tokenizer threads (default: the cores; 1 for inputs under 1 MiB); every count gives the same bytes. */
  workers?: number;
  /** Bytes read per chunk (default 4 MiB). */
  chunkBytes?: number;
  /** Called after every chunk, e.g. to draw a progress bar. */
  onProgress?: (progress: PrepareProgress) => void;
}

/** Defaults of {@linkcode PrepareOptions}. */
export const PREPARE_DEFAULTS = {
  tokenizer: "gpt2",
  documents: "auto",
  textField: "text",
  valFraction: 0.05,
  shardTokens: 100_000_000,
  chunkBytes: 4 << 20,
} as const;

/** How `prepare` cuts the input into documents; "auto" picks one of the others. */
export type DocumentsOption = "auto" | DocumentRule;

/** The values of {@linkcode DocumentsOption}. */
export const DOCUMENTS_OPTIONS: readonly DocumentsOption[] = ["auto", "files", "paragraphs", "lines"];

/** Separator of documents inside a text file. */
export const DOCUMENT_SEPARATOR = "<|endoftext|>";

/** Whether document `index` (from 0, in reading order) belongs to the validation split. */
export function isValDocument(index: number, valFraction: number): boolean {
  return Math.floor((index + 1) * valFraction) > Math.floor(index * valFraction);
}

/** Inputs smaller than this (bytes on disk) are tokenized in the calling thread unless `workers` says otherwise. */
const SMALL_INPUT = 1 << 20;
const SHARD_FILE = /^(train|val)_\d{6}\.bin$/;
const TOKENIZER_FILES = ["tokenizer.model", "tokenizer.json"];
/** Between paragraphs: a blank line (only whitespace on it), and the whitespace around it. */
const BLANK_LINE = /\s*\n[^\S\n]*\n\s*/;
/** Between lines: a line break and the whitespace around it. */
const LINE_BREAK = /\s*\n\s*/;

/**
 * Tokenizes `options.inputs` into shards in `options.out` and writes `meta.json` last (its
 * presence marks a complete folder). Returns what it wrote to `meta.json`.
 *
 * @throws {DataError} naming the input or option for a missing input, an empty input, text that
 * is not valid UTF-8, a malformed JSON line or record without text (file and line), a corrupt
 * compressed file, a full disk, or an option out of range; `out` is then left as it was.
 */
export async function prepare(options: PrepareOptions): Promise<DatasetMeta> {
  const spec = options.tokenizer ?? PREPARE_DEFAULTS.tokenizer;
  const tokenizer = typeof spec === "string" ? await loadTokenizer(spec) : spec;
  const documents = options.documents ?? PREPARE_DEFAULTS.documents;
  if (!DOCUMENTS_OPTIONS.includes(documents)) {
    throw new DataError(
      `documents must be one of ${DOCUMENTS_OPTIONS.join(", ")}, got ${JSON.stringify(documents)}`,
    );
  }
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
  if (options.workers !== undefined && (!Number.isInteger(options.workers) || options.workers < 1)) {
    throw new DataError(`workers must be a positive integer, got ${options.workers}`);
  }
  const textField = options.textField ?? PREPARE_DEFAULTS.textField;
  if (textField.split(".").some((k) => k === "")) {
    throw new DataError(`textField must be a field name or a dotted path, got ${JSON.stringify(textField)}`);
  }
  const chunkBytes = options.chunkBytes ?? PREPARE_DEFAULTS.chunkBytes;
  if (options.inputs.length === 0) throw new DataError("no inputs given");
  const ownConfig = typeof spec === "string" && !TOKENIZER_NAMES.includes(spec);
  const framing = options.documentTokens ??
    documentTokens(tokenizer, ownConfig ? await readTokenizerConfig(spec) : undefined);

  const sources = await listSources(options.inputs, options.out);
  const rule = documents === "auto" ? await chooseRule(sources, valFraction, chunkBytes) : documents;
  const staging = await stagingFolder(options.out);
  let pool: EncodePool | undefined;
  const format = formatForVocab(tokenizer.vocabSize);
  const writers = {
    train: new ShardWriter(staging, "train", { format, shardTokens }),
    val: valFraction > 0 ? new ShardWriter(staging, "val", { format, shardTokens }) : null,
  };
  const totalBytes = sources.reduce((n, s) => n + s.size, 0);
  // Starting threads and loading the tokenizer in each costs more than a small input takes.
  const workers = options.workers ?? (totalBytes < SMALL_INPUT ? 1 : navigator.hardwareConcurrency);
  const started = performance.now();
  let bytesRead = 0;
  const merger = new Merger(tokenizer, writers, { valFraction, maxTokens, framing, sources: sources.length });
  const readerOptions: ReaderOptions = {
    rule,
    chunkBytes,
    textField,
    skipBadLines: options.skipBadLines ?? false,
    splitsAtSpaces: tokenizer.splitsAtSpaces,
    onRead: (bytes: number): void => {
      bytesRead += bytes;
      options.onProgress?.({
        bytesRead,
        totalBytes,
        tokens: merger.tokens,
        seconds: (performance.now() - started) / 1000,
      });
    },
  };
  try {
    pool = await EncodePool.open(tokenizer, workers);
    const reader = new Reader(pool, merger, readerOptions);
    const hashes: (string | null)[] = [];
    for (let i = 0; i < sources.length && !merger.full; i++) hashes.push(await reader.read(sources[i], i));
    await reader.drain();
    await merger.finish();
    if (merger.tokens === 0) {
      throw new DataError(
        `no text in ${options.inputs.join(", ")} (${totalBytes} bytes): nothing to prepare`,
      );
    }
    const read = merger.full ? merger.lastSource + 1 : sources.length;
    const sourceMeta: SourceMeta[] = [];
    for (let i = 0; i < read; i++) {
      const s = sources[i];
      sourceMeta.push({
        input: s.input,
        path: s.name,
        bytes: s.size,
        sha256: hashes[i] ?? await sha256File(s.path),
        documents: merger.perSource[i],
        ...(reader.skipped[i] > 0 ? { skippedLines: reader.skipped[i] } : {}),
        ...(merger.full && i === read - 1 ? { truncated: true as const } : {}),
      });
    }
    const train = await writers.train.finish();
    const val = await writers.val?.finish();
    const definition = tokenizer.definition?.();
    if (definition) await Deno.writeFile(join(staging, definition.file), definition.bytes);
    const meta: DatasetMeta = {
      tokenizer: tokenizer.name,
      tokenizerHash: tokenizer.hash,
      tokenizerFile: definition?.file ?? null,
      vocabSize: tokenizer.vocabSize,
      eotToken: framing.bos,
      bosToken: tokenizer.bosToken ?? null,
      eosToken: tokenizer.eosToken ?? null,
      documentTokens: framing,
      dtype: format.dtype,
      documentRule: rule,
      documents: `${RULE_TEXT[rule]}; ${framingText(framing)}`,
      valFraction,
      valRule:
        "non-empty documents numbered i = 0, 1, ... in reading order; i is val when floor((i+1)*valFraction) > floor(i*valFraction)",
      shardTokens,
      maxTokens,
      splits: {
        train: { tokens: writers.train.tokens, documents: merger.perSplit.train, shards: train },
        ...(writers.val && val
          ? { val: { tokens: writers.val.tokens, documents: merger.perSplit.val, shards: val } }
          : {}),
      },
      sources: sourceMeta,
    };
    await Deno.writeTextFile(join(staging, META_FILE), JSON.stringify(meta, null, 2) + "\n");
    await install(staging, options.out);
    return meta;
  } catch (e) {
    writers.train.close();
    writers.val?.close();
    await Deno.remove(staging, { recursive: true });
    if (isNoSpace(e)) {
      throw new DataError(
        `out ${options.out}: no space left on the device; its earlier contents are untouched`,
      );
    }
    throw e;
  } finally {
    pool?.close();
  }
}

const RULE_TEXT: Record<DocumentRule, string> = {
  files:
    `each JSON record or Parquet row is a document; so is each text file, and each part of one between "${DOCUMENT_SEPARATOR}"`,
  paragraphs:
    `each paragraph (text between blank lines) of a record, of a text file or of a part between "${DOCUMENT_SEPARATOR}" is a document, stripped of surrounding whitespace`,
  lines:
    `each non-empty line of a record, of a text file or of a part between "${DOCUMENT_SEPARATOR}" is a document, stripped of surrounding whitespace`,
};

function framingText(framing: DocumentTokens): string {
  if (framing.bos === null && framing.eos === null) {
    return "documents are concatenated without a separator token";
  }
  const parts = [];
  if (framing.bos !== null) parts.push(`token ${framing.bos} precedes every document`);
  if (framing.eos !== null) parts.push(`token ${framing.eos} follows every document`);
  return parts.join(", ");
}

/**
 * The rule "auto" picks: "files" while records, files and separators give the validation split a
 * document, else "paragraphs" if some text file has a blank line, else "lines". Text files are
 * scanned, streaming, only when the count of files alone is too small.
 */
async function chooseRule(
  sources: readonly Source[],
  valFraction: number,
  chunkBytes: number,
): Promise<DocumentRule> {
  const enough = (n: number): boolean => valFraction === 0 || Math.floor(n * valFraction) >= 1;
  if (enough(sources.length) || sources.some((s) => s.format !== "text")) return "files";
  let documents = sources.length;
  let blankLine = false;
  for (const source of sources) {
    if (source.corpus) continue;
    const utf8 = new Utf8Chunks(source.name);
    const scan = new TextScan();
    for await (const chunk of sourceBytes(source, { chunkBytes })) scan.push(utf8.decode(chunk));
    documents += scan.separators;
    blankLine ||= scan.blankLine;
  }
  return enough(documents) ? "files" : blankLine ? "paragraphs" : "lines";
}

/**
 * Counts document separators and finds a blank line between two pieces of text (BLANK_LINE inside
 * the trimmed text), in text pushed piece by piece.
 */
class TextScan {
  separators = 0;
  blankLine = false;
  #tail = "";
  #seenText = false;
  /** In the current run of whitespace: line breaks with only non-newline whitespace between. */
  #breaks = 0;
  #blankRun = false;

  push(text: string): void {
    const s = this.#tail + text;
    this.separators += s.split(DOCUMENT_SEPARATOR).length - 1;
    this.#tail = s.slice(Math.max(0, s.length - DOCUMENT_SEPARATOR.length + 1));
    if (this.blankLine) return;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 10) {
        this.#breaks++;
        if (this.#breaks >= 2) this.#blankRun = true;
      } else if (c === 32 || (c >= 9 && c <= 13) || (c > 127 && /\s/.test(text[i]))) {
        continue;
      } else {
        if (this.#blankRun && this.#seenText) {
          this.blankLine = true;
          return;
        }
        this.#seenText = true;
        this.#blankRun = false;
        this.#breaks = 0;
      }
    }
  }
}

/** Piece flags: the piece starts a document; it continues one after a letter or digit. */
const START = 1;
const CONTINUING = 2;

/** Pieces of text bound for the tokenizer, with where each came from. */
interface Job {
  readonly pieces: string[];
  readonly continuing: boolean[];
  readonly flags: number[];
  readonly sources: number[];
  chars: number;
}

const newJob = (): Job => ({ pieces: [], continuing: [], flags: [], sources: [], chars: 0 });

/**
 * Reads sources into documents cut into pieces (`text`), groups pieces into jobs for the pool,
 * and hands encoded jobs to the merger in reading order, with a bounded number in flight.
 */
class Reader {
  /** Per source: lines or rows skipped. */
  readonly skipped: number[] = [];
  readonly #pool: EncodePool;
  readonly #merger: Merger;
  readonly #cut: RegExp | null;
  readonly #options: ReaderOptions;
  readonly #jobChars: number;
  readonly #inFlight: number;
  readonly #pending: { job: Job; encoded: Promise<EncodedJob> }[] = [];
  #job = newJob();
  #source = 0;
  /** The next piece starts a document. */
  #startNext = true;
  /** Some text of the current document has been cut into a piece. */
  #docStarted = false;

  constructor(pool: EncodePool, merger: Merger, options: ReaderOptions) {
    this.#pool = pool;
    this.#merger = merger;
    this.#options = options;
    this.#cut = options.rule === "paragraphs" ? BLANK_LINE : options.rule === "lines" ? LINE_BREAK : null;
    this.#jobChars = Math.max(1, options.chunkBytes >> 2);
    this.#inFlight = Math.max(2, 2 * pool.threads);
  }

  /**
   * Reads source `index`; returns the SHA-256 of its bytes on disk, or null when reading stopped
   * early at the token budget.
   */
  async read(source: Source, index: number): Promise<string | null> {
    this.#source = index;
    this.skipped[index] = 0;
    this.#start();
    const hash = createHash("sha256");
    try {
      const complete = source.corpus
        ? await this.#readCorpus(source, hash)
        : source.format === "parquet"
        ? await this.#readParquet(source)
        : source.format === "text"
        ? await this.#readText(source, hash)
        : await this.#readJson(source, hash);
      if (!complete) return null;
      return source.format === "parquet" ? await sha256File(source.path) : hash.digest("hex");
    } catch (e) {
      // Reading runs ahead of the merge: an error past the token budget does not count.
      if (!(e instanceof DataError)) throw e;
      await this.drain();
      if (this.#merger.full) return null;
      throw e;
    }
  }

  /** Encodes and merges every piece still waiting. */
  async drain(): Promise<void> {
    this.#submit();
    while (this.#pending.length > 0) await this.#mergeOldest();
  }

  async #readCorpus(source: Source, hash: Hash): Promise<boolean> {
    const raw = await Deno.readFile(source.path);
    hash.update(raw);
    const utf8 = new Utf8Chunks(source.name);
    const text = utf8.decode(raw);
    utf8.finish();
    await this.#text(source.corpus!.toText(text), { last: true, separators: true });
    this.#options.onRead(raw.length);
    return true;
  }

  async #readText(source: Source, hash: Hash): Promise<boolean> {
    const { chunkBytes, onRead } = this.#options;
    const utf8 = new Utf8Chunks(
      source.compression === "none" ? source.name : `${source.name} (decompressed)`,
    );
    let pending = "";
    for await (
      const chunk of sourceBytes(source, {
        chunkBytes,
        onRead: (raw) => hashed(hash, raw, onRead),
      })
    ) {
      if (this.#merger.full) return false;
      pending += utf8.decode(chunk);
      let cut = this.#options.splitsAtSpaces ? lastWordBoundary(pending) : 0;
      // Text without a word boundary for 16 chunks is cut anyway, at a character boundary, to bound memory.
      if (cut === 0 && pending.length > 16 * chunkBytes) {
        cut = pending.length - (isHighSurrogate(pending) ? 1 : 0);
      }
      if (cut > 0) {
        await this.#text(pending.slice(0, cut), { last: false, separators: true });
        pending = pending.slice(cut);
      }
    }
    utf8.finish();
    await this.#text(pending, { last: true, separators: true });
    return true;
  }

  async #readJson(source: Source, hash: Hash): Promise<boolean> {
    const { chunkBytes, onRead, textField } = this.#options;
    const utf8 = new Utf8Chunks(
      source.compression === "none" ? source.name : `${source.name} (decompressed)`,
    );
    const records = new JsonRecords(source.name, textField, { array: source.format === "json" });
    for await (
      const chunk of sourceBytes(source, {
        chunkBytes,
        onRead: (raw) => hashed(hash, raw, onRead),
      })
    ) {
      if (this.#merger.full) return false;
      for (const r of records.push(utf8.decode(chunk))) await this.#record(source, r, ":");
    }
    utf8.finish();
    for (const r of records.finish()) await this.#record(source, r, ":");
    return true;
  }

  async #readParquet(source: Source): Promise<boolean> {
    let done = 0;
    const rows = parquetRecords(source.path, {
      name: source.name,
      field: this.#options.textField,
      onRowGroup: (fraction) => {
        const now = Math.round(fraction * source.size);
        this.#options.onRead(now - done);
        done = now;
      },
    });
    for await (const group of rows) {
      for (const r of group) {
        if (this.#merger.full) return false;
        await this.#record(source, r, ": row ");
      }
    }
    return true;
  }

  /** One record: a document of its own; or, without text, an error or a skipped line. */
  async #record(source: Source, record: TextRecord, at: string): Promise<void> {
    if (record.text === undefined) {
      if (!this.#options.skipBadLines) {
        throw new DataError(
          `${source.name}${at}${record.at}: ${record.problem} (--skip-bad-lines skips such lines)`,
        );
      }
      this.skipped[this.#source]++;
      return;
    }
    this.#start();
    await this.#text(record.text, { last: true, separators: false });
  }

  /** The next text starts a new document. */
  #start(): void {
    this.#startNext = true;
    this.#docStarted = false;
  }

  /**
   * Cuts text of the current document into pieces, starting new documents at literal separators
   * (`separators`, text files only) and at blank lines or line breaks, by the rule; `last` marks
   * the end of a file or record.
   */
  async #text(text: string, options: { last: boolean; separators: boolean }): Promise<void> {
    const parts = options.separators ? text.split(DOCUMENT_SEPARATOR) : [text];
    for (let i = 0; i < parts.length; i++) {
      if (i > 0) this.#start();
      if (!this.#cut) {
        this.#piece(parts[i]);
        continue;
      }
      const pieces = parts[i].split(this.#cut);
      for (let k = 0; k < pieces.length; k++) {
        if (k > 0) this.#start();
        let piece = this.#docStarted ? pieces[k] : pieces[k].trimStart();
        if (k < pieces.length - 1 || i < parts.length - 1 || options.last) piece = piece.trimEnd();
        this.#piece(piece);
      }
    }
    if (this.#job.chars >= this.#jobChars) {
      this.#submit();
      while (this.#pending.length > this.#inFlight) await this.#mergeOldest();
    }
  }

  #piece(text: string): void {
    if (text === "") return;
    const job = this.#job;
    job.pieces.push(text);
    job.continuing.push(this.#docStarted);
    job.flags.push((this.#startNext ? START : 0) | (this.#docStarted ? CONTINUING : 0));
    job.sources.push(this.#source);
    job.chars += text.length;
    this.#startNext = false;
    this.#docStarted = true;
  }

  #submit(): void {
    if (this.#job.pieces.length === 0) return;
    const job = this.#job;
    const encoded = this.#pool.encode(job);
    // Awaited in order later; a worker failure rejects every waiting job at once.
    encoded.catch(() => {});
    this.#pending.push({ job, encoded });
    this.#job = newJob();
  }

  async #mergeOldest(): Promise<void> {
    const { job, encoded } = this.#pending.shift()!;
    await this.#merger.merge(job, await encoded);
  }
}

interface ReaderOptions {
  rule: DocumentRule;
  chunkBytes: number;
  textField: string;
  skipBadLines: boolean;
  splitsAtSpaces: boolean;
  onRead: (bytes: number) => void;
}

function hashed(hash: Hash, raw: Uint8Array, onRead: (bytes: number) => void): void {
  hash.update(raw);
  onRead(raw.length);
}

function isHighSurrogate(s: string): boolean {
  const c = s.charCodeAt(s.length - 1);
  return c >= 0xd800 && c <= 0xdbff;
}

/**
 * Writes encoded pieces in reading order: routes each document to its split when its first
 * token comes, puts the framing tokens around it, and stops at the token budget.
 */
class Merger {
  tokens = 0;
  full = false;
  /** Index of the source of the last token written. */
  lastSource = 0;
  readonly perSplit = { train: 0, val: 0 };
  readonly perSource: number[];
  #count = 0;
  /** A document has started but has no token yet. */
  #pendingDoc = false;
  /** The current document has tokens (it gets an EOS when it ends). */
  #open = false;
  #split: "train" | "val" = "train";
  readonly #tokenizer: Tokenizer;
  readonly #writers: { train: ShardWriter; val: ShardWriter | null };
  readonly #valFraction: number;
  readonly #maxTokens: number | null;
  readonly #framing: DocumentTokens;

  constructor(
    tokenizer: Tokenizer,
    writers: { train: ShardWriter; val: ShardWriter | null },
    options: { valFraction: number; maxTokens: number | null; framing: DocumentTokens; sources: number },
  ) {
    this.#tokenizer = tokenizer;
    this.#writers = writers;
    this.#valFraction = options.valFraction;
    this.#maxTokens = options.maxTokens;
    this.#framing = options.framing;
    this.perSource = new Array(options.sources).fill(0);
  }

  async merge(job: Job, encoded: EncodedJob): Promise<void> {
    for (let p = 0; p < job.pieces.length && !this.full; p++) {
      if (job.flags[p] & START) {
        await this.#endDocument();
        this.#pendingDoc = true;
      }
      let ids: Uint32Array | number[] = encoded.ids.subarray(
        p === 0 ? 0 : encoded.ends[p - 1],
        encoded.ends[p],
      );
      // Text encoded as a continuation whose document has no token yet is encoded again as its start.
      if ((job.flags[p] & CONTINUING) && this.#pendingDoc) ids = this.#tokenizer.encode(job.pieces[p]);
      if (ids.length === 0) continue;
      const source = job.sources[p];
      if (this.#pendingDoc) {
        this.#pendingDoc = false;
        this.#open = true;
        const val = this.#writers.val !== null && isValDocument(this.#count, this.#valFraction);
        this.#split = val ? "val" : "train";
        this.#count++;
        this.perSplit[this.#split]++;
        this.perSource[source]++;
        if (this.#framing.bos !== null) await this.#write([this.#framing.bos], source);
      }
      await this.#write(ids, source);
    }
  }

  /** Ends the last document. */
  async finish(): Promise<void> {
    await this.#endDocument();
  }

  async #endDocument(): Promise<void> {
    if (!this.#open) return;
    this.#open = false;
    if (this.#framing.eos !== null) await this.#write([this.#framing.eos], this.lastSource);
  }

  async #write(ids: Uint32Array | number[], source: number): Promise<void> {
    if (this.full) return;
    let n = ids.length;
    if (this.#maxTokens !== null && this.tokens + n >= this.#maxTokens) {
      n = this.#maxTokens - this.tokens;
      this.full = true;
    }
    const writer = this.#split === "val" ? this.#writers.val! : this.#writers.train;
    await writer.write(n === ids.length ? ids : ids.slice(0, n));
    this.tokens += n;
    this.lastSource = source;
  }
}

/** A new hidden folder beside `out` for the run's files; checks that `out` is not a file. */
async function stagingFolder(out: string): Promise<string> {
  const target = resolve(out);
  let info: Deno.FileInfo | null = null;
  try {
    info = await Deno.stat(target);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  if (info && !info.isDirectory) throw new DataError(`out ${out}: exists and is not a folder`);
  await Deno.mkdir(dirname(target), { recursive: true });
  return await Deno.makeTempDir({ dir: dirname(target), prefix: `.${basename(target)}.prepare-` });
}

/**
 * Moves the finished files of `staging` into `out`, replacing the meta.json, shards and tokenizer
 * file of an earlier run (other files stay). The old meta.json goes first and the new one comes
 * last, so that no meta.json ever describes shards of another run.
 */
async function install(staging: string, out: string): Promise<void> {
  await Deno.mkdir(out, { recursive: true });
  const earlier: string[] = [];
  for await (const e of Deno.readDir(out)) {
    if (e.isFile && (e.name === META_FILE || SHARD_FILE.test(e.name) || TOKENIZER_FILES.includes(e.name))) {
      earlier.push(e.name);
    }
  }
  if (earlier.includes(META_FILE)) await Deno.remove(join(out, META_FILE));
  const names = (await Array.fromAsync(Deno.readDir(staging))).map((e) => e.name).filter((n) =>
    n !== META_FILE
  );
  for (const name of names) await Deno.rename(join(staging, name), join(out, name));
  for (const name of earlier) {
    if (name !== META_FILE && !names.includes(name)) await Deno.remove(join(out, name));
  }
  await Deno.rename(join(staging, META_FILE), join(out, META_FILE));
  await Deno.remove(staging);
}

/** Whether `e` is a write that failed for want of space (ENOSPC) or quota (EDQUOT). */
function isNoSpace(e: unknown): boolean {
  return e instanceof Error &&
    /\(os error (28|122)\)|ENOSPC|EDQUOT/.test(`${e.message} ${(e as { code?: string }).code}`);
}
