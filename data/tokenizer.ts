/**
 * Tokenizers: the GPT-2 byte-pair encoding and a one-token-per-byte encoding for tiny models.
 *
 * Adding a tokenizer means writing one {@linkcode Tokenizer} and one entry in `LOADERS`. The
 * streaming `prepare` encodes text in pieces cut where a whitespace character follows a
 * non-whitespace one, so a tokenizer must give the same ids for a text as for its pieces cut at
 * such places; GPT-2-style pre-tokenizers (which never join a word to the whitespace after it)
 * and byte-level encodings do.
 *
 * @module
 */
import { DataError } from "./errors.ts";

/** Encodes text to token ids and back. */
export interface Tokenizer {
  /** The name `getTokenizer` knows it by, recorded in `meta.json`. */
  readonly name: string;
  /** Number of distinct ids; every id is below it. */
  readonly vocabSize: number;
  /** The id that starts every document in prepared shards, where the tokenizer has one. */
  readonly eotToken?: number;
  /** Ids of `text`, treating all of it as plain text (a literal `<|endoftext|>` is not special). */
  encode(text: string): number[];
  /** Text of `ids`; bytes that do not form valid UTF-8 become U+FFFD. */
  decode(ids: Iterable<number>): string;
}

/** GPT-2's end-of-text id, also the separator llm.c puts before every document. */
export const GPT2_EOT = 50256;

const BYTES: Tokenizer = {
  name: "bytes",
  vocabSize: 256,
  encode(text: string): number[] {
    const bytes = new TextEncoder().encode(text);
    const ids = new Array<number>(bytes.length);
    for (let i = 0; i < bytes.length; i++) ids[i] = bytes[i];
    return ids;
  },
  decode(ids: Iterable<number>): string {
    return new TextDecoder().decode(Uint8Array.from(ids));
  },
};

/** GPT-2's token for the single byte 0xFF. */
const FLUSH_TOKEN = 187;

async function loadGpt2(): Promise<Tokenizer> {
  // Loaded on first use: the BPE ranks take ~90 ms and ~10 MB to build.
  const bpe = await import("gpt-tokenizer/encoding/r50k_base");
  const plain = { disallowedSpecial: new Set<string>() };
  return {
    name: "gpt2",
    vocabSize: bpe.vocabularySize,
    eotToken: GPT2_EOT,
    encode: (text: string): number[] => bpe.encode(text, plain),
    decode: (ids: Iterable<number>): string => {
      // gpt-tokenizer decodes through one shared streaming TextDecoder, so a call ending inside a
      // character would leak its bytes into the next call. Decoding the lone byte 0xFF (token
      // 187, never valid UTF-8) flushes it: one U+FFFD for 0xFF, one more if bytes were pending.
      const text = bpe.decode(ids);
      return bpe.decode([FLUSH_TOKEN]).length > 1 ? text + "\uFFFD" : text;
    },
  };
}

const LOADERS: Record<string, () => Promise<Tokenizer>> = {
  gpt2: loadGpt2,
  bytes: () => Promise.resolve(BYTES),
};

/** Names {@linkcode getTokenizer} accepts. */
export const TOKENIZER_NAMES: readonly string[] = Object.keys(LOADERS);

const loaded = new Map<string, Promise<Tokenizer>>();

/**
 * Returns the tokenizer called `name` ("gpt2" or "bytes"), loading it once per process.
 *
 * @throws {DataError} for an unknown name (as a rejection).
 */
export async function getTokenizer(name: string): Promise<Tokenizer> {
  const load = Object.hasOwn(LOADERS, name) ? LOADERS[name] : undefined;
  if (!load) {
    throw new DataError(`unknown tokenizer ${JSON.stringify(name)}; known: ${TOKENIZER_NAMES.join(", ")}`);
  }
  let tokenizer = loaded.get(name);
  if (!tokenizer) {
    tokenizer = load();
    loaded.set(name, tokenizer);
  }
  return await tokenizer;
}
