/**
 * A model's own tokenizer: from the files that travel with a checkpoint, from a GGUF file's
 * `tokenizer.ggml.*` metadata, or, for a command's `--tokenizer SPEC`, from whatever
 * `@inheritune/data`'s `loadTokenizer` resolves plus GGUF files; and a checkpoint's tokenizer as
 * the `tokenizer.ggml.*` metadata of a GGUF file it is exported to.
 *
 * @module
 */
import {
  builtinByteLevelModel,
  byteLevelBpeJson,
  type ByteLevelBpeModel,
  byteLevelBpeModel,
  DataError,
  encodeSentencePieceModel,
  loadTokenizer,
  parseSentencePieceModel,
  PieceType,
  type SentencePieceModel,
  type Tokenizer,
  tokenizerFromFiles,
} from "@inheritune/data";
import { isDecoder } from "./config.ts";
import type { Checkpoint } from "./family.ts";
import { GGUF_TYPE, type GgufEntry, type GgufFile, type GgufValue, openGguf } from "./gguf.ts";

/** `tokenizer.ggml.model` of a file without a vocabulary, as llama.cpp reads it. */
const NO_VOCAB = ["no_vocab", "none"];

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
  if (model === undefined || NO_VOCAB.includes(model as string)) return new Map();
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

// ---------------------------------------------------------------------------------------------
// Writing a GGUF file's tokenizer

/** A vocabulary as GGUF states it (llama.cpp's `tokenizer.ggml.*`). */
interface GgufVocabulary {
  /** `tokenizer.ggml.model`: SentencePiece ("llama") or byte-level BPE ("gpt2"). */
  model: "llama" | "gpt2";
  /** The pre-tokenizer's name ("default" for SentencePiece). */
  pre: string;
  tokens: string[];
  types: number[];
  /** SentencePiece's piece scores. */
  scores?: number[];
  /** Byte-level BPE's merges, "left right" in priority order. */
  merges?: string[];
  /** Special ids by GGUF key stem (`bos`, `eos`, `unknown`, `padding`), absent ones left out. */
  ids: Record<string, number>;
  /** The `tokenizer.ggml.*` flags to state. */
  flags: Record<string, boolean>;
}

/** What {@linkcode ggufTokenizerMetadata} gives. */
export interface GgufTokenizerMetadata {
  /** The `tokenizer.ggml.*` entries (`tokenizer.ggml.model` "no_vocab" for a model without one). */
  metadata: Map<string, GgufEntry>;
  /** Why the vocabulary was left out, when it was. */
  notes: string[];
}

/** A SentencePiece model's vocabulary as GGUF's `llama` tokenizer. */
function sentencePieceVocabulary(sp: SentencePieceModel): GgufVocabulary {
  const ids: Record<string, number> = { bos: sp.bosId, eos: sp.eosId, unknown: sp.unkId, padding: sp.padId };
  return {
    model: "llama",
    pre: "default",
    tokens: [...sp.pieces],
    types: [...sp.types],
    scores: [...sp.scores],
    ids: Object.fromEntries(Object.entries(ids).filter(([, id]) => id >= 0)),
    flags: {
      add_bos_token: sp.bosId >= 0,
      add_eos_token: false,
      add_space_prefix: sp.addDummyPrefix,
      remove_extra_whitespaces: sp.removeExtraWhitespaces,
    },
  };
}

/** A byte-level BPE vocabulary as GGUF's `gpt2` tokenizer. */
function byteLevelVocabulary(model: ByteLevelBpeModel): GgufVocabulary {
  const ids: Record<string, number | undefined> = { bos: model.bosId, eos: model.eosId };
  return {
    model: "gpt2",
    pre: model.pre ?? "default",
    tokens: [...model.tokens],
    types: model.types ? [...model.types] : model.tokens.map(() => PieceType.normal),
    merges: [...model.merges],
    ids: Object.fromEntries(Object.entries(ids).filter(([, id]) => id !== undefined)) as Record<
      string,
      number
    >,
    flags: model.addBos === undefined ? {} : { add_bos_token: model.addBos },
  };
}

/** `tokenizer_config.json`'s `add_bos_token` and `add_eos_token`, which override a vocabulary's. */
function configFlags(files: ReadonlyMap<string, Uint8Array>, where: string): Record<string, boolean> {
  const bytes = files.get("tokenizer_config.json");
  if (!bytes) return {};
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new DataError(`${where}: tokenizer_config.json is not valid JSON`);
  }
  const flags: Record<string, boolean> = {};
  for (const key of ["add_bos_token", "add_eos_token"]) {
    if (typeof json?.[key] === "boolean") flags[key] = json[key] as boolean;
  }
  return flags;
}

/**
 * The vocabulary the checkpoint's tokenizer files (a byte-level BPE `tokenizer.json`, else a
 * `tokenizer.model`) or the built-in tokenizer its configuration names define; undefined for a
 * model of bare ids.
 *
 * @throws {DataError} naming `where` for a tokenizer GGUF cannot state.
 */
async function checkpointVocabulary(
  checkpoint: Checkpoint,
  where: string,
): Promise<GgufVocabulary | undefined> {
  const files = checkpoint.tokenizerFiles ?? new Map<string, Uint8Array>();
  const json = files.get("tokenizer.json");
  let vocab: GgufVocabulary | undefined;
  if (json) {
    let definition: unknown;
    try {
      definition = JSON.parse(new TextDecoder().decode(json));
    } catch {
      throw new DataError(`${where}: tokenizer.json is not valid JSON`);
    }
    let model: ByteLevelBpeModel | undefined;
    try {
      model = byteLevelBpeModel(definition);
    } catch (e) {
      if (e instanceof DataError) throw new DataError(`${where}: ${e.message}`);
      throw e;
    }
    if (model) vocab = byteLevelVocabulary(model);
    else if (!files.has("tokenizer.model")) {
      throw new DataError(
        `${where}: tokenizer.json is not byte-level BPE, and llama.cpp reads other vocabularies from a ` +
          `SentencePiece tokenizer.model, which the model does not carry`,
      );
    }
  }
  const sentencePiece = files.get("tokenizer.model");
  if (!vocab && sentencePiece) {
    const sp = parseSentencePieceModel(sentencePiece);
    if ((sp.modelType ?? 2) !== 2) {
      throw new DataError(
        `${where}: tokenizer.model is not a BPE SentencePiece model (llama.cpp's llama vocabulary)`,
      );
    }
    vocab = sentencePieceVocabulary(sp);
  }
  if (!vocab) {
    const name = checkpoint.config.tokenizer ?? (isDecoder(checkpoint.config) ? undefined : "gpt2");
    const builtin = name === undefined ? undefined : await builtinByteLevelModel(name);
    if (!builtin) return undefined;
    vocab = byteLevelVocabulary(builtin);
  }
  return { ...vocab, flags: { ...vocab.flags, ...configFlags(files, where) } };
}

/**
 * The `tokenizer.ggml.*` metadata of `checkpoint`'s tokenizer, as llama.cpp's converter writes it:
 * a byte-level BPE `tokenizer.json` or built-in tokenizer (GPT-2's, bytes) as `gpt2` (tokens,
 * types, merges, the name of llama.cpp's pre-tokenizer that splits as it does, special ids), a
 * SentencePiece model as `llama` (tokens, scores, types, special ids, and the flags that decide the
 * ids: `add_space_prefix`, `remove_extra_whitespaces`), `tokenizer_config.json`'s `add_bos_token`
 * and `add_eos_token` where the model carries one; padded to the model's vocabulary with unused
 * `[PAD{id}]` tokens. A model without a tokenizer, or whose tokenizer has more ids than its
 * vocabulary (a test model), gets `tokenizer.ggml.model` "no_vocab", as llama.cpp reads a model of
 * bare ids. The configuration's BOS and EOS ids, where it states them, win over the tokenizer's.
 *
 * @throws {DataError} naming `where` for a tokenizer GGUF cannot state.
 */
export async function ggufTokenizerMetadata(
  checkpoint: Checkpoint,
  where: string,
): Promise<GgufTokenizerMetadata> {
  const V = checkpoint.config.vocab_size;
  const config = checkpoint.config as { bos_token_id?: number; eos_token_id?: number };
  const vocab = await checkpointVocabulary(checkpoint, where);
  const notes: string[] = [];
  const key = (k: string) => `tokenizer.ggml.${k}`;
  const metadata = new Map<string, GgufEntry>();
  const special = (name: string, id: number | undefined) => {
    if (id !== undefined) metadata.set(key(`${name}_token_id`), [GGUF_TYPE.UINT32, id]);
  };
  if (vocab && vocab.tokens.length > V) {
    notes.push(
      `the tokenizer has ${vocab.tokens.length} ids, more than the model's ${V}: written without a vocabulary`,
    );
  }
  if (!vocab || vocab.tokens.length > V) {
    metadata.set(key("model"), [GGUF_TYPE.STRING, "no_vocab"]);
    special("bos", config.bos_token_id);
    special("eos", config.eos_token_id);
    return { metadata, notes };
  }
  const pads = Array.from({ length: V - vocab.tokens.length }, (_, i) => vocab.tokens.length + i);
  metadata.set(key("model"), [GGUF_TYPE.STRING, vocab.model]);
  metadata.set(key("pre"), [GGUF_TYPE.STRING, vocab.pre]);
  metadata.set(key("tokens"), [
    GGUF_TYPE.ARRAY,
    [...vocab.tokens, ...pads.map((id) => `[PAD${id}]`)],
    GGUF_TYPE.STRING,
  ]);
  if (vocab.scores) {
    metadata.set(key("scores"), [
      GGUF_TYPE.ARRAY,
      [...vocab.scores, ...pads.map(() => -10000)],
      GGUF_TYPE.FLOAT32,
    ]);
  }
  metadata.set(
    key("token_type"),
    [GGUF_TYPE.ARRAY, [...vocab.types, ...pads.map(() => PieceType.unused)], GGUF_TYPE.INT32],
  );
  if (vocab.merges) metadata.set(key("merges"), [GGUF_TYPE.ARRAY, vocab.merges, GGUF_TYPE.STRING]);
  const ids = { ...vocab.ids };
  if (config.bos_token_id !== undefined) ids.bos = config.bos_token_id;
  if (config.eos_token_id !== undefined) ids.eos = config.eos_token_id;
  for (const [name, id] of Object.entries(ids)) special(name, id);
  for (const [name, flag] of Object.entries(vocab.flags)) metadata.set(key(name), [GGUF_TYPE.BOOL, flag]);
  return { metadata, notes };
}
