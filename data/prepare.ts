/**
 * Text to llm.c token shards, streaming: text files, folders of them, or built-in corpora go in;
 * `DIR/train_000000.bin ...`, `DIR/val_000000.bin ...`, `DIR/meta.json` and the tokenizer's
 * definition (`tokenizer.model` or `tokenizer.json`, none for gpt2 and bytes) come out.
 *
 * Documents (`documents`): "files" makes each file a document, and a literal `<|endoftext|>`
 * inside a text file also separates documents (the convention of GPT-2-style text dumps);
 * "paragraphs" also separates them at blank lines and "lines" at every line break, each document
 * stripped of surrounding whitespace (llama2.c's `story.strip()`). "auto" (the default) is
 * "files" unless the input holds too few such documents for the validation fraction to take one;
 * then "paragraphs" if there are blank lines, else "lines". The tokenizer's `eotToken` precedes
 * every document: GPT-2's `<|endoftext|>` as llm.c's data scripts do, a SentencePiece or
 * Llama-style model's BOS as llama2.c's and Llama's do.
 *
 * Validation split, at document granularity and deterministic: numbering the non-empty documents
 * 0, 1, 2, ... in reading order, document `i` goes to val when `floor((i+1)·f) > floor(i·f)`
 * for `f = valFraction`. That puts exactly `floor(n·f)` of n documents in val, spread evenly
 * through the input (for the genre-ordered Brown Corpus, every genre contributes). With
 * `valFraction` 0 no val split is written.
 *
 * Memory: files are read in chunks (4 MiB by default) and cut for the tokenizer before a space
 * that follows a letter or digit, which no tokenizer here joins across (`_words.ts`); the pieces
 * after the first are encoded as continuations, so the ids equal those of encoding each document
 * whole; shards are written through a 1M-token buffer. Memory stays bounded whatever the input.
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
import { type DatasetMeta, type DocumentRule, META_FILE, type SourceMeta } from "./meta.ts";
import { formatForVocab, ShardWriter } from "./shard.ts";
import { loadTokenizer } from "./tokenizer.ts";
import type { Tokenizer } from "./tokenizer_types.ts";
import { Utf8Chunks } from "./_utf8.ts";
import { lastWordBoundary } from "./_words.ts";

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
  /** A tokenizer, or a spec for `loadTokenizer`: "gpt2" (default), "bytes", a file or a folder. */
  tokenizer?: string | Tokenizer;
  /** What makes a document: "auto" (default), "files", "paragraphs" or "lines"; see the module doc. */
  documents?: DocumentsOption;
  /** Fraction of documents for validation, in [0, 1) (default 0.05); 0 writes no val split. */
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
  documents: "auto",
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
 * is not valid UTF-8, or an option out of range; shards of the failed run are removed.
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
  const chunkBytes = options.chunkBytes ?? PREPARE_DEFAULTS.chunkBytes;
  if (options.inputs.length === 0) throw new DataError("no inputs given");

  const sources = await listSources(options.inputs, options.out);
  const rule = documents === "auto" ? await chooseRule(sources, valFraction) : documents;
  await clearOutput(options.out);
  const format = formatForVocab(tokenizer.vocabSize);
  const writers = {
    train: new ShardWriter(options.out, "train", { format, shardTokens }),
    val: valFraction > 0 ? new ShardWriter(options.out, "val", { format, shardTokens }) : null,
  };
  const docs = new Documents(tokenizer, writers, { valFraction, maxTokens, rule });
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
    await writers.val?.abort();
    throw e;
  }
  const train = await writers.train.finish();
  const val = await writers.val?.finish();
  const definition = tokenizer.definition?.();
  if (definition) await Deno.writeFile(join(options.out, definition.file), definition.bytes);
  const meta: DatasetMeta = {
    tokenizer: tokenizer.name,
    tokenizerHash: tokenizer.hash,
    tokenizerFile: definition?.file ?? null,
    vocabSize: tokenizer.vocabSize,
    eotToken: tokenizer.eotToken ?? null,
    bosToken: tokenizer.bosToken ?? null,
    eosToken: tokenizer.eosToken ?? null,
    dtype: format.dtype,
    documentRule: rule,
    documents: `${RULE_TEXT[rule]}; ${
      tokenizer.eotToken === undefined
        ? "documents are concatenated without a separator token"
        : `token ${tokenizer.eotToken} precedes every document`
    }`,
    valFraction,
    valRule:
      "non-empty documents numbered i = 0, 1, ... in reading order; i is val when floor((i+1)*valFraction) > floor(i*valFraction)",
    shardTokens,
    maxTokens,
    splits: {
      train: { tokens: writers.train.tokens, documents: docs.perSplit.train, shards: train },
      ...(writers.val && val
        ? { val: { tokens: writers.val.tokens, documents: docs.perSplit.val, shards: val } }
        : {}),
    },
    sources: sourceMeta,
  };
  await Deno.writeTextFile(join(options.out, META_FILE), JSON.stringify(meta, null, 2) + "\n");
  return meta;
}

const RULE_TEXT: Record<DocumentRule, string> = {
  files: `each file, and each part of a text file between "${DOCUMENT_SEPARATOR}", is a document`,
  paragraphs:
    `each paragraph (text between blank lines) of a file or of a part between "${DOCUMENT_SEPARATOR}" is a document, stripped of surrounding whitespace`,
  lines:
    `each non-empty line of a file or of a part between "${DOCUMENT_SEPARATOR}" is a document, stripped of surrounding whitespace`,
};

/**
 * The rule "auto" picks: "files" while files and separators give the validation split a document,
 * else "paragraphs" if some file has a blank line, else "lines". Files are scanned only when their
 * count alone is too small.
 */
async function chooseRule(sources: readonly Source[], valFraction: number): Promise<DocumentRule> {
  const enough = (n: number): boolean => valFraction === 0 || Math.floor(n * valFraction) >= 1;
  if (enough(sources.length)) return "files";
  let documents = sources.length;
  let blankLine = false;
  for (const source of sources) {
    if (source.corpus) continue;
    const text = new TextDecoder().decode(await Deno.readFile(source.path));
    documents += text.split(DOCUMENT_SEPARATOR).length - 1;
    blankLine ||= BLANK_LINE.test(text.trim());
  }
  return enough(documents) ? "files" : blankLine ? "paragraphs" : "lines";
}

/** Routes documents to the splits and writes their tokens, within the token budget. */
class Documents {
  count = 0;
  tokens = 0;
  full = false;
  readonly perSplit = { train: 0, val: 0 };
  /** No token of the current document written yet: its next text starts it. */
  #pending = false;
  #split: "train" | "val" = "train";
  readonly #valFraction: number;
  readonly #maxTokens: number | null;
  readonly #cut: RegExp | null;

  constructor(
    readonly tokenizer: Tokenizer,
    readonly writers: { train: ShardWriter; val: ShardWriter | null },
    options: { valFraction: number; maxTokens: number | null; rule: DocumentRule },
  ) {
    this.#valFraction = options.valFraction;
    this.#maxTokens = options.maxTokens;
    this.#cut = options.rule === "paragraphs" ? BLANK_LINE : options.rule === "lines" ? LINE_BREAK : null;
  }

  /** The next text starts a new document (which counts once it has a token). */
  start(): void {
    this.#pending = true;
  }

  /**
   * Appends text to the current document, starting new ones at literal separators (and blank
   * lines or line breaks, by the rule); `last` marks the end of a file.
   */
  async text(text: string, last = false): Promise<void> {
    const parts = text.split(DOCUMENT_SEPARATOR);
    for (let i = 0; i < parts.length && !this.full; i++) {
      if (i > 0) this.start();
      if (!this.#cut) {
        await this.#encode(parts[i]);
        continue;
      }
      const pieces = parts[i].split(this.#cut);
      for (let k = 0; k < pieces.length && !this.full; k++) {
        if (k > 0) this.start();
        let piece = this.#pending ? pieces[k].trimStart() : pieces[k];
        if (k < pieces.length - 1 || i < parts.length - 1 || last) piece = piece.trimEnd();
        await this.#encode(piece);
      }
    }
  }

  async #encode(text: string): Promise<void> {
    if (text === "") return;
    let ids = this.tokenizer.encode(text, { continuing: !this.#pending });
    if (ids.length === 0) return;
    if (this.#pending) {
      this.#pending = false;
      const val = this.writers.val !== null && isValDocument(this.count, this.#valFraction);
      this.#split = val ? "val" : "train";
      this.count++;
      this.perSplit[this.#split]++;
      if (this.tokenizer.eotToken !== undefined) ids = [this.tokenizer.eotToken, ...ids];
    }
    if (this.#maxTokens !== null && this.tokens + ids.length >= this.#maxTokens) {
      ids = ids.slice(0, this.#maxTokens - this.tokens);
      this.full = true;
    }
    await (this.#split === "val" ? this.writers.val! : this.writers.train).write(ids);
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
    await docs.text(source.corpus.toText(text), true);
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
    let cut = docs.tokenizer.splitsAtSpaces ? lastWordBoundary(pending) : 0;
    // Text without a word boundary for 16 chunks is cut anyway, at a character boundary, to bound memory.
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
    await docs.text(pending, true);
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

/**
 * Creates `out`, removing the meta.json, shards and tokenizer file of an earlier run so none can
 * be mixed in.
 */
async function clearOutput(out: string): Promise<void> {
  try {
    await Deno.mkdir(out, { recursive: true });
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) throw new DataError(`out ${out}: exists and is not a folder`);
    throw e;
  }
  for await (const e of Deno.readDir(out)) {
    const earlier = e.name === META_FILE || SHARD_FILE.test(e.name) || TOKENIZER_FILES.includes(e.name);
    if (e.isFile && earlier) await Deno.remove(join(out, e.name));
  }
}
