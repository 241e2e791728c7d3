/**
 * What a tokenizer is: the interface every tokenizer implements (the built-in ones of
 * `tokenizer.ts`, `sentencepiece.ts`, `tokenizer_json.ts`) and its encoding options. A leaf, so
 * that the implementations and `tokenizer.ts`, which loads them, do not import each other.
 *
 * @module
 */

/** Options of {@linkcode Tokenizer.encode}. */
export interface EncodeOptions {
  /**
   * The text continues a document right after a letter or digit: no start-of-text handling (no
   * SentencePiece dummy prefix, leading spaces kept). Default false: the text starts a document.
   */
  continuing?: boolean;
}

/** Encodes text to token ids and back. */
export interface Tokenizer {
  /** Short name for messages and `meta.json`: "gpt2", "bytes", "sentencepiece" or "tokenizer.json". */
  readonly name: string;
  /** What implements it; equal to `name` for these tokenizers. */
  readonly kind: "gpt2" | "bytes" | "sentencepiece" | "tokenizer.json";
  /** Number of distinct ids; every id is below it. */
  readonly vocabSize: number;
  /**
   * The id `prepare` puts before every document, where the tokenizer has one: GPT-2's
   * `<|endoftext|>`, a SentencePiece or Llama-style model's BOS.
   */
  readonly eotToken?: number;
  /** Beginning-of-sequence id, where there is one. */
  readonly bosToken?: number;
  /** End-of-sequence id, where there is one. */
  readonly eosToken?: number;
  /**
   * SHA-256 (hex) of the definition: equal for the same vocabulary and rules wherever they were
   * read from, so that data and model can be checked against each other.
   */
  readonly hash: string;
  /** Whether ids of a text equal those of its pieces cut before a space after a letter or digit. */
  readonly splitsAtSpaces: boolean;
  /** The file that defines it, for a prepared folder; absent for the built-in ones. */
  definition?(): { file: "tokenizer.model" | "tokenizer.json"; bytes: Uint8Array };
  /** Ids of `text`, all of it plain text (a literal `<|endoftext|>` or `<s>` is not special). */
  encode(text: string, options?: EncodeOptions): number[];
  /** Text of `ids`; control ids (BOS, EOS) decode to nothing; invalid UTF-8 becomes U+FFFD. */
  decode(ids: Iterable<number>): string;
  /**
   * The vocabulary's string for `id`, as the tokenizer's own tools list it: Hugging Face's tokens
   * (byte-level vocabularies write a space as "Ġ"), SentencePiece's pieces ("▁Hello", "<0x0A>");
   * GPT-2's in its byte-level form; the bytes tokenizer's as `<0xXX>`.
   *
   * @throws {RangeError} for an id that is not below `vocabSize` or names no token.
   */
  token(id: number): string;
}
