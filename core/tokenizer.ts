/**
 * A model's own tokenizer: from the files that travel with a checkpoint, from a GGUF file's
 * `tokenizer.ggml.*` metadata, or, for a command's `--tokenizer SPEC`, from whatever
 * `@inheritune/data`'s `loadTokenizer` resolves plus GGUF files.
 *
 * @module
 */
import {
  byteLevelBpeJson,
  DataError,
  encodeSentencePieceModel,
  loadTokenizer,
  PieceType,
  type SentencePieceModel,
  type Tokenizer,
  tokenizerFromFiles,
} from "@inheritune/data";
import { isDecoder } from "./config.ts";
import type { Checkpoint } from "./family.ts";
import { type GgufFile, type GgufValue, openGguf } from "./gguf.ts";

function array(metadata: GgufFile["metadata"], key: string): GgufValue[] | undefined {
  const v = metadata.get(key);
  return Array.isArray(v) ? v : undefined;
}

function id(metadata: GgufFile["metadata"], key: string): number {
  const v = metadata.get(`tokenizer.ggml.${key}_token_id`);
  // 0xFFFFFFFF is llama.cpp's "none".
  return typeof v === "number" && v !== 0xffffffff ? v : -1;
}

/**
 * The tokenizer files (`tokenizer.model` or `tokenizer.json`) equivalent to a GGUF file's
 * `tokenizer.ggml.*` metadata, or an empty map when it has none. Both encode as llama.cpp does
 * with the file.
 *
 * `llama` vocabularies become a SentencePiece BPE model with byte fallback. Its flags are
 * llama.cpp's: a missing `tokenizer.ggml.add_space_prefix` is true and a missing
 * `tokenizer.ggml.remove_extra_whitespaces` false (as the `.model` files of Llama 2 and Mistral
 * have it; a model trained with SentencePiece's default, such as llama2.c's tok512, then keeps runs
 * of spaces that its `.model` would collapse). `gpt2` vocabularies (byte-level BPE with merges)
 * become a `tokenizer.json` with the pre-tokenizer `tokenizer.ggml.pre` names.
 *
 * @throws {DataError} for another tokenizer model, an unsupported pre-tokenizer or malformed
 * vocabulary arrays, naming the file.
 */
export function ggufTokenizerFiles(gguf: GgufFile): Map<string, Uint8Array> {
  const { metadata, path } = gguf;
  const model = metadata.get("tokenizer.ggml.model");
  if (model === undefined) return new Map();
  const tokens = array(metadata, "tokenizer.ggml.tokens");
  if (!tokens || !tokens.every((t) => typeof t === "string")) {
    throw new DataError(`${path}: tokenizer.ggml.tokens is missing or not strings`);
  }
  const types = array(metadata, "tokenizer.ggml.token_type")?.map(Number) ??
    tokens.map(() => PieceType.normal);
  const flag = (key: string): boolean | undefined => {
    const v = metadata.get(`tokenizer.ggml.${key}`);
    return typeof v === "boolean" ? v : undefined;
  };
  if (model === "llama") {
    const scores = array(metadata, "tokenizer.ggml.scores")?.map(Number) ?? tokens.map(() => 0);
    const sp: SentencePieceModel = {
      pieces: tokens as string[],
      scores,
      types,
      bosId: id(metadata, "bos"),
      eosId: id(metadata, "eos"),
      unkId: Math.max(0, id(metadata, "unknown")),
      padId: id(metadata, "padding"),
      addDummyPrefix: flag("add_space_prefix") ?? true,
      removeExtraWhitespaces: flag("remove_extra_whitespaces") ?? false,
      escapeWhitespaces: true,
      byteFallback: types.includes(PieceType.byte),
    };
    return new Map([["tokenizer.model", encodeSentencePieceModel(sp)]]);
  }
  if (model === "gpt2") {
    const merges = array(metadata, "tokenizer.ggml.merges");
    if (!merges || !merges.every((m) => typeof m === "string")) {
      throw new DataError(`${path}: tokenizer.ggml.merges is missing or not strings`);
    }
    const pre = metadata.get("tokenizer.ggml.pre");
    let json: Record<string, unknown>;
    try {
      json = byteLevelBpeJson({
        tokens: tokens as string[],
        merges: merges as string[],
        types,
        bosId: id(metadata, "bos"),
        eosId: id(metadata, "eos"),
        addBos: flag("add_bos_token"),
        addEos: flag("add_eos_token"),
        pre: typeof pre === "string" ? pre : undefined,
      });
    } catch (e) {
      if (e instanceof DataError) throw new DataError(`${path}: tokenizer.ggml.pre: ${e.message}`);
      throw e;
    }
    return new Map([["tokenizer.json", new TextEncoder().encode(JSON.stringify(json))]]);
  }
  throw new DataError(
    `${path}: tokenizer.ggml.model ${JSON.stringify(model)} is not supported (llama or gpt2)`,
  );
}

/**
 * The tokenizer a checkpoint was trained with, or undefined for a model of bare ids (a decoder
 * without tokenizer files or a named tokenizer: a llama2.c export, a random test model): from its
 * tokenizer files, else the built-in one its configuration names ("gpt2" when it names none, as
 * Hugging Face GPT-2 folders do).
 *
 * @throws {DataError} when its tokenizer files are corrupt or it names an unknown tokenizer.
 */
export async function ownTokenizer(checkpoint: Checkpoint, where: string): Promise<Tokenizer | undefined> {
  const own = checkpoint.tokenizerFiles && tokenizerFromFiles(checkpoint.tokenizerFiles, where);
  if (own) return own;
  const name = checkpoint.config.tokenizer ?? (isDecoder(checkpoint.config) ? undefined : "gpt2");
  return name === undefined ? undefined : await loadTokenizer(name);
}

/**
 * The tokenizer a checkpoint was trained with ({@linkcode ownTokenizer}), which it must have.
 *
 * @throws {DataError} when the model carries no tokenizer, or its files are corrupt.
 */
export async function checkpointTokenizer(checkpoint: Checkpoint, where: string): Promise<Tokenizer> {
  const own = await ownTokenizer(checkpoint, where);
  if (!own) {
    throw new DataError(`${where}: the model carries no tokenizer (no tokenizer.json or tokenizer.model)`);
  }
  return own;
}

/**
 * The tokenizer `spec` names: a GGUF file's (from its metadata, without loading the weights), or
 * whatever `loadTokenizer` of `@inheritune/data` resolves (`gpt2`, `bytes`, a `.model`, a
 * `tokenizer.json`, a model or prepared data folder).
 *
 * @throws {DataError} for an unknown spec or a file without a tokenizer.
 */
export async function loadModelTokenizer(spec: string): Promise<Tokenizer> {
  if (!spec.toLowerCase().endsWith(".gguf")) return await loadTokenizer(spec);
  const gguf = await openGguf(spec);
  try {
    const own = tokenizerFromFiles(ggufTokenizerFiles(gguf), spec);
    if (!own) throw new DataError(`${spec}: the GGUF file has no tokenizer.ggml metadata`);
    return own;
  } finally {
    gguf.close();
  }
}
