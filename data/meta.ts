/**
 * `meta.json`, written by `prepare` next to the shards: what produced them, so that a run can be
 * checked and repeated.
 *
 * @module
 */
import type { WrittenShard } from "./shard.ts";

/** Name of the description file inside a prepared folder. */
export const META_FILE = "meta.json";

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
  /** Bytes read from it. */
  readonly bytes: number;
  /** SHA-256 of those bytes, hex. */
  readonly sha256: string;
  /** Non-empty documents it held. */
  readonly documents: number;
  /** Present on the file during which `maxTokens` was reached; reading stopped there. */
  readonly truncated?: true;
}

/** The contents of `meta.json`. */
export interface DatasetMeta {
  /** Tokenizer name, for `getTokenizer`. */
  readonly tokenizer: string;
  /** Its vocabulary size; every token is below it. */
  readonly vocabSize: number;
  /** Id placed before every document, or null when the tokenizer has none. */
  readonly eotToken: number | null;
  /** Token layout of the shards. */
  readonly dtype: "uint16" | "uint32";
  /** How documents are delimited in the input and in the shards. */
  readonly documents: string;
  /** Requested fraction of documents for validation. */
  readonly valFraction: number;
  /** The deterministic rule that routed documents to validation. */
  readonly valRule: string;
  /** Most tokens per shard. */
  readonly shardTokens: number;
  /** Token budget, or null for all of the input. */
  readonly maxTokens: number | null;
  /** Per split: token and document counts, shard files with their SHA-256. */
  readonly splits: { readonly train: SplitMeta; readonly val: SplitMeta };
  /** Every file read, in reading order, with its SHA-256. */
  readonly sources: readonly SourceMeta[];
}
