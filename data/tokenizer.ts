/**
 * Tokenizers: GPT-2's byte-pair encoding and one token per byte built in; a model's own tokenizer
 * from a SentencePiece `.model` (`sentencepiece.ts`), a Hugging Face `tokenizer.json`
 * (`tokenizer_json.ts`), or a folder holding one. {@linkcode loadTokenizer} resolves a SPEC to one
 * of them; GGUF files are resolved by `@inheritune/core`, which reads their `tokenizer.ggml.*`
 * metadata and builds the tokenizer with `sentencePieceTokenizer` or `byteLevelBpeTokenizer`.
 *
 * The streaming `prepare` encodes text in pieces cut before a space that follows a letter or
 * digit (`_words.ts`), the later pieces with `continuing: true`; a tokenizer whose vocabulary
 * joins a letter or digit to a following space says so with `splitsAtSpaces: false`.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { DataError } from "./errors.ts";
import { type DatasetMeta, META_FILE } from "./meta.ts";
import { parseSentencePieceModel, PieceType, sentencePieceTokenizer } from "./sentencepiece.ts";
import { type ByteLevelBpeModel, jsonTokenizer, sentencePieceToJson } from "./tokenizer_json.ts";
import { BYTE_CHARS, byteLevelString } from "./_byte_level.ts";
import type { Tokenizer } from "./tokenizer_types.ts";

/** GPT-2's end-of-text id, also the separator llm.c puts before every document. */
export const GPT2_EOT = 50256;

const builtinHash = (name: string): string => createHash("sha256").update(`builtin:${name}`).digest("hex");

const BYTES: Tokenizer = {
  name: "bytes",
  kind: "bytes",
  vocabSize: 256,
  hash: builtinHash("bytes"),
  splitsAtSpaces: true,
  encode(text: string): number[] {
    const bytes = new TextEncoder().encode(text);
    const ids = new Array<number>(bytes.length);
    for (let i = 0; i < bytes.length; i++) ids[i] = bytes[i];
    return ids;
  },
  decode(ids: Iterable<number>): string {
    return new TextDecoder().decode(Uint8Array.from(ids));
  },
  token(id: number): string {
    if (!(Number.isInteger(id) && id >= 0 && id < 256)) throw new RangeError(`id ${id} is not a byte`);
    return `<0x${id.toString(16).toUpperCase().padStart(2, "0")}>`;
  },
};

/** GPT-2's token for the single byte 0xFF. */
const FLUSH_TOKEN = 187;

async function loadGpt2(): Promise<Tokenizer> {
  // Loaded on first use: the BPE ranks take ~90 ms and ~10 MB to build.
  const bpe = await import("gpt-tokenizer/encoding/r50k_base");
  // The ranks are the encoding's own table: token bytes (a string where they are UTF-8) by id.
  const ranks = (await import("gpt-tokenizer/bpeRanks/r50k_base")).default as (string | number[])[];
  const plain = { disallowedSpecial: new Set<string>() };
  const utf8 = new TextEncoder();
  return {
    name: "gpt2",
    kind: "gpt2",
    vocabSize: bpe.vocabularySize,
    eotToken: GPT2_EOT,
    eosToken: GPT2_EOT,
    hash: builtinHash("gpt2"),
    splitsAtSpaces: true,
    encode: (text: string): number[] => bpe.encode(text, plain),
    decode: (ids: Iterable<number>): string => {
      // gpt-tokenizer decodes through one shared streaming TextDecoder, so a call ending inside a
      // character would leak its bytes into the next call. Decoding the lone byte 0xFF (token
      // 187, never valid UTF-8) flushes it: one U+FFFD for 0xFF, one more if bytes were pending.
      const text = bpe.decode(ids);
      return bpe.decode([FLUSH_TOKEN]).length > 1 ? text + "\uFFFD" : text;
    },
    token: (id: number): string => {
      if (id === GPT2_EOT) return "<|endoftext|>";
      const bytes = Number.isInteger(id) ? ranks[id] : undefined;
      if (bytes === undefined) throw new RangeError(`id ${id} is not below GPT-2's ${bpe.vocabularySize}`);
      return byteLevelString(typeof bytes === "string" ? utf8.encode(bytes) : bytes);
    },
  };
}

const BUILTIN: Record<string, () => Promise<Tokenizer>> = {
  gpt2: loadGpt2,
  bytes: () => Promise.resolve(BYTES),
};

/**
 * GPT-2's merges, "left right" in rank order, recovered from its tokens: token `id` (256 ≤ id <
 * 50256) is the result of merge `id − 256`, whose halves are what byte-pair merging of the token's
 * bytes by the lower ranks leaves.
 */
function gpt2Merges(tokens: readonly string[]): string[] {
  const rank = new Map(tokens.map((t, id) => [t, id]));
  const merges: string[] = [];
  for (let id = 256; id < GPT2_EOT; id++) {
    const parts = [...tokens[id]];
    while (parts.length > 2) {
      let best = -1, bestRank = id;
      for (let i = 0; i + 1 < parts.length; i++) {
        const r = rank.get(parts[i] + parts[i + 1]) ?? id;
        if (r < bestRank) [best, bestRank] = [i, r];
      }
      if (best < 0) throw new Error(`GPT-2 token ${id} is not a merge of lower ranks`);
      parts.splice(best, 2, parts[best] + parts[best + 1]);
    }
    merges.push(parts.join(" "));
  }
  return merges;
}

/**
 * A built-in tokenizer as the byte-level BPE vocabulary GGUF files store (`tokenizer.ggml.model`
 * "gpt2", pre-tokenizer "gpt-2"): GPT-2's 50,257 tokens, `<|endoftext|>` its BOS and EOS, and its
 * 50,000 merges (as llama.cpp's own GPT-2 vocabulary file holds them); `bytes` as its 256 byte
 * tokens without merges. Undefined for another name.
 */
export async function builtinByteLevelModel(name: string): Promise<ByteLevelBpeModel | undefined> {
  if (name === "bytes") return { tokens: [...BYTE_CHARS], merges: [], pre: "gpt-2" };
  if (name !== "gpt2") return undefined;
  const gpt2 = await BUILTIN.gpt2();
  const tokens = Array.from({ length: gpt2.vocabSize }, (_, id) => gpt2.token(id));
  return {
    tokens,
    merges: gpt2Merges(tokens),
    types: tokens.map((_, id) => id === GPT2_EOT ? PieceType.control : PieceType.normal),
    bosId: GPT2_EOT,
    eosId: GPT2_EOT,
    pre: "gpt-2",
  };
}

/** Built-in tokenizer names {@linkcode loadTokenizer} accepts besides files and folders. */
export const TOKENIZER_NAMES: readonly string[] = Object.keys(BUILTIN);

/** What {@linkcode loadTokenizer} accepts, for usage texts. */
export const TOKENIZER_SPECS =
  "gpt2, bytes, a SentencePiece .model, a tokenizer.json, or a model or prepared data folder holding one";

const loaded = new Map<string, Promise<Tokenizer>>();

async function readIfFile(path: string): Promise<Uint8Array | null> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.IsADirectory) return null;
    throw e;
  }
}

function fromModelFile(bytes: Uint8Array, path: string): Tokenizer {
  try {
    return sentencePieceTokenizer(parseSentencePieceModel(bytes));
  } catch (e) {
    if (e instanceof DataError) throw new DataError(`${path}: ${e.message}`);
    throw e;
  }
}

function fromJsonFile(bytes: Uint8Array, path: string): Tokenizer {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new DataError(`${path}: not valid JSON`);
  }
  try {
    return jsonTokenizer(json);
  } catch (e) {
    if (e instanceof DataError) throw new DataError(`${path}: ${e.message}`);
    throw e;
  }
}

/** Whether `json` is the `tokenizer.json` that {@linkcode sentencePieceToJson} writes for the `.model` `model`. */
function derivedFrom(json: Uint8Array, model: Uint8Array): boolean {
  try {
    return new TextDecoder().decode(json) ===
      JSON.stringify(sentencePieceToJson(parseSentencePieceModel(model)));
  } catch {
    return false;
  }
}

/**
 * The tokenizer defined by model files held in memory (`tokenizer.json` preferred, then
 * `tokenizer.model`, as a folder is read), or undefined when `files` has neither; `where` names
 * their origin in errors. A `tokenizer.json` written here from the `tokenizer.model` beside it
 * (for `transformers`, in saved model folders) leaves the `.model` defining the tokenizer, so that
 * its hash stays that of the data prepared with it.
 *
 * @throws {DataError} for a corrupt file, naming `where` and the file.
 */
export function tokenizerFromFiles(
  files: ReadonlyMap<string, Uint8Array>,
  where: string,
): Tokenizer | undefined {
  const json = files.get("tokenizer.json");
  const model = files.get("tokenizer.model");
  if (json && !(model && derivedFrom(json, model))) return fromJsonFile(json, join(where, "tokenizer.json"));
  return model ? fromModelFile(model, join(where, "tokenizer.model")) : undefined;
}

async function loadFolder(dir: string): Promise<Tokenizer> {
  // A prepared folder names its tokenizer in meta.json; a model folder holds its files.
  const meta = await readIfFile(join(dir, META_FILE));
  if (meta) {
    let name: unknown;
    try {
      name = JSON.parse(new TextDecoder().decode(meta)).tokenizer;
    } catch {
      throw new DataError(`${join(dir, META_FILE)}: not valid JSON`);
    }
    if (typeof name === "string" && Object.hasOwn(BUILTIN, name)) return await BUILTIN[name]();
  }
  const files = new Map<string, Uint8Array>();
  for (const name of ["tokenizer.json", "tokenizer.model"]) {
    const bytes = await readIfFile(join(dir, name));
    if (bytes) files.set(name, bytes);
  }
  const own = tokenizerFromFiles(files, dir);
  if (own) return own;
  const config = await readIfFile(join(dir, "config.json"));
  if (config) {
    let c: { tokenizer?: unknown; model_type?: unknown };
    try {
      c = JSON.parse(new TextDecoder().decode(config));
    } catch {
      throw new DataError(`${join(dir, "config.json")}: not valid JSON`);
    }
    if (typeof c.tokenizer === "string" && Object.hasOwn(BUILTIN, c.tokenizer)) {
      return await BUILTIN[c.tokenizer]();
    }
    if (c.model_type === "gpt2" && c.tokenizer === undefined) return await BUILTIN.gpt2();
  }
  throw new DataError(
    `${dir}: no tokenizer.json, tokenizer.model, or ${META_FILE}/config.json naming ${
      TOKENIZER_NAMES.join(" or ")
    }`,
  );
}

async function load(spec: string): Promise<Tokenizer> {
  if (Object.hasOwn(BUILTIN, spec)) return await BUILTIN[spec]();
  if (spec.toLowerCase().endsWith(".gguf")) {
    throw new DataError(
      `${spec}: GGUF tokenizers are resolved by @inheritune/core (loadModelTokenizer), not by the data module`,
    );
  }
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(spec);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    throw new DataError(`unknown tokenizer ${JSON.stringify(spec)}: not ${TOKENIZER_SPECS}`);
  }
  if (info.isDirectory) return await loadFolder(spec);
  const bytes = await Deno.readFile(spec);
  if (spec.endsWith(".json")) return fromJsonFile(bytes, spec);
  if (spec.endsWith(".model")) return fromModelFile(bytes, spec);
  throw new DataError(`${spec}: not a tokenizer file (expected ${TOKENIZER_SPECS})`);
}

/**
 * Returns the tokenizer `spec` names, loading each spec once per process: "gpt2", "bytes", a
 * SentencePiece `.model`, a Hugging Face `tokenizer.json`, or a folder — a model folder with
 * `tokenizer.json` or `tokenizer.model` (or a `config.json` whose `tokenizer` is "gpt2"/"bytes",
 * or `model_type` "gpt2"), or a prepared data folder (its `meta.json` and tokenizer file).
 *
 * @throws {DataError} (as a rejection) for an unknown spec, a `.gguf` file (resolved by core), or
 * a corrupt tokenizer file, naming the file.
 */
export async function loadTokenizer(spec: string): Promise<Tokenizer> {
  let tokenizer = loaded.get(spec);
  if (!tokenizer) {
    tokenizer = load(spec);
    loaded.set(spec, tokenizer);
    tokenizer.catch(() => loaded.delete(spec));
  }
  return await tokenizer;
}

/**
 * Checks that data prepared as `meta` describes was tokenized by `tokenizer`, comparing
 * definition hashes (names, for a `meta.json` written before hashes were recorded).
 *
 * @throws {DataError} one line naming `what` (e.g. the data folder) and both tokenizers.
 */
export function checkTokenizerMatch(meta: DatasetMeta, tokenizer: Tokenizer, what: string): void {
  const same = meta.tokenizerHash !== undefined
    ? meta.tokenizerHash === tokenizer.hash
    : meta.tokenizer === tokenizer.name;
  if (same) return;
  const short = (hash: string | undefined): string => (hash ? ` ${hash.slice(0, 12)}` : "");
  throw new DataError(
    `${what}: data was tokenized with ${meta.tokenizer}${
      short(meta.tokenizerHash)
    } (${meta.vocabSize} ids) ` +
      `but the model uses ${tokenizer.name}${short(tokenizer.hash)} (${tokenizer.vocabSize} ids); ` +
      `prepare the data again with the model's tokenizer (--tokenizer MODEL)`,
  );
}
