/**
 * `meta.json`, written by `prepare` next to the shards: what produced them, so that a run can be
 * checked and repeated.
 *
 * @module
 */
import type { DocumentTokens } from "./document_tokens.ts";
import type { WrittenShard } from "./shard.ts";

/** Name of the description file inside a prepared folder. */
export const META_FILE = "meta.json";

/** A rule that cuts the input into documents, recorded in `meta.json`. */
export type DocumentRule = "files" | "paragraphs" | "lines";

/** One split of a prepared folder. */
export interface SplitMeta {
  /** Tokens across the split's shards, end-of-text tokens included. */
  readonly tokens: number;
  /** Documents routed to the split. */
  readonly documents: number;
  /** Shards in stream order. */
  readonly shards: readonly WrittenShard[];
}

/** One file read by `prepare`. */
export interface SourceMeta {
  /** The `--input` it came from: a path or a built-in corpus name. */
  readonly input: string;
  /** The file: a path as given, or `npm:<package>@<version>/<file>` for a built-in corpus. */
  readonly path: string;
  /** Its size in bytes, as on disk (compressed). */
  readonly bytes: number;
  /** SHA-256 of those bytes, hex. */
  readonly sha256: string;
  /** Non-empty documents it held. */
  readonly documents: number;
  /** JSON lines or Parquet rows without a text that were skipped (`skipBadLines`); absent when none. */
  readonly skippedLines?: number;
  /** Present on the file during which `maxTokens` was reached; reading stopped there. */
  readonly truncated?: true;
}

/** The contents of `meta.json`. */
export interface DatasetMeta {
  /** Tokenizer name: "gpt2", "bytes", "sentencepiece" or "tokenizer.json" (`Tokenizer.name`). */
  readonly tokenizer: string;
  /** SHA-256 of the tokenizer's definition (`Tokenizer.hash`); absent in folders from before it. */
  readonly tokenizerHash?: string;
  /** The tokenizer's definition copied into the folder ("tokenizer.model", "tokenizer.json"), or null. */
  readonly tokenizerFile?: string | null;
  /** Its vocabulary size; every token is below it. */
  readonly vocabSize: number;
  /** Id placed before every document, or null when none is (`documentTokens.bos`). */
  readonly eotToken: number | null;
  /** The tokenizer's beginning-of-sequence id, or null. */
  readonly bosToken?: number | null;
  /** The tokenizer's end-of-sequence id, or null. */
  readonly eosToken?: number | null;
  /** The tokens around every document and the rule that chose them; absent in folders from before it. */
  readonly documentTokens?: DocumentTokens;
  /** Token layout of the shards. */
  readonly dtype: "uint16" | "uint32";
  /** The rule that cut the input into documents. */
  readonly documentRule?: DocumentRule;
  /** How documents are delimited in the input and in the shards, in words. */
  readonly documents: string;
  /** Requested fraction of documents for validation. */
  readonly valFraction: number;
  /** The deterministic rule that routed documents to validation. */
  readonly valRule: string;
  /** Most tokens per shard. */
  readonly shardTokens: number;
  /** Token budget, or null for all of the input. */
  readonly maxTokens: number | null;
  /** Per split: token and document counts, shard files with their SHA-256; no val when valFraction is 0. */
  readonly splits: { readonly train: SplitMeta; readonly val?: SplitMeta };
  /** Every file read, in reading order, with its SHA-256. */
  readonly sources: readonly SourceMeta[];
}
