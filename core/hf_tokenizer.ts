/**
 * The Hugging Face tokenizer files of a model folder, so that `transformers`' `AutoTokenizer`
 * (and lm-evaluation-harness's `HFLM`, which loads it) gives the ids this project gives:
 * `tokenizer.json` (a SentencePiece `.model` converted to the Llama-2-style definition of
 * `sentencePieceToJson`), `tokenizer_config.json`, `special_tokens_map.json` and
 * `generation_config.json`; and the rule by which such a tokenizer puts BOS before a text.
 *
 * `tokenizer_config.json` names `PreTrainedTokenizerFast` (transformers 5's `TokenizersBackend`),
 * which runs `tokenizer.json` as written. `LlamaTokenizer` would rebuild the pipeline instead
 * (a `Metaspace` pre-tokenizer that adds no "▁" before text starting with a space, unlike
 * SentencePiece) and differ on such text. `split_special_tokens` makes a literal "<s>" in text
 * plain text, as everywhere here.
 *
 * @module
 */
import {
  parseSentencePieceModel,
  sentencePieceToJson,
  type Tokenizer,
  tokenizerFromFiles,
} from "@inheritune/data";

type Json = Record<string, unknown>;

/** Files a folder's tokenizer is described by for `transformers`. */
export const HF_TOKENIZER_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "generation_config.json",
] as const;

/** tokenizer_config.json classes that run tokenizer.json as it is, its post-processor deciding on BOS. */
const GENERIC_CLASSES = new Set(["PreTrainedTokenizerFast", "TokenizersBackend"]);

function parseJson(bytes: Uint8Array | undefined): Json | undefined {
  if (!bytes) return undefined;
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes));
    return typeof v === "object" && v !== null && !Array.isArray(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The id `transformers`' tokenizer of a model puts before every text it encodes (with its
 * default `add_special_tokens`), which lm-evaluation-harness's `HFLM.tok_encode` therefore puts
 * before every context: a model-specific class (`LlamaTokenizer`, `GemmaTokenizer`...) follows
 * `add_bos_token` of `tokenizer_config.json`; otherwise `tokenizer.json`'s post-processor decides
 * (Llama 2 and 3 add BOS, GPT-2, Qwen2 and SmolLM2 none), and a SentencePiece `.model` alone adds
 * its BOS, as `LlamaTokenizer` does by default. Built-in tokenizers (GPT-2's, bytes) add none.
 */
export function hfBosToken(
  tokenizer: Tokenizer,
  files?: ReadonlyMap<string, Uint8Array>,
): number | undefined {
  const config = parseJson(files?.get("tokenizer_config.json"));
  const cls = config?.tokenizer_class;
  if (
    config && typeof cls === "string" && !GENERIC_CLASSES.has(cls) &&
    typeof config.add_bos_token === "boolean"
  ) {
    return config.add_bos_token ? tokenizer.bosToken : undefined;
  }
  return tokenizer.kind === "tokenizer.json" || tokenizer.kind === "sentencepiece"
    ? tokenizer.bosToken
    : undefined;
}

/**
 * `files` (a checkpoint's tokenizer files) completed with the Hugging Face files a folder needs,
 * for a model of context `maxLength`: each missing one of {@linkcode HF_TOKENIZER_FILES} is
 * written from the tokenizer (`tokenizer.json` from `tokenizer.model`); the ones present are kept.
 * A checkpoint without tokenizer files gets none.
 *
 * @throws {DataError} when a tokenizer file is corrupt.
 */
export function hfTokenizerFiles(
  files: ReadonlyMap<string, Uint8Array> | undefined,
  options: { maxLength: number; where: string },
): Map<string, Uint8Array> {
  const out = new Map(files ?? []);
  const tokenizer = files && tokenizerFromFiles(files, options.where);
  if (!tokenizer) return out;
  const encoder = new TextEncoder();
  const put = (name: string, json: Json): void => {
    if (!out.has(name)) out.set(name, encoder.encode(JSON.stringify(json, null, 2) + "\n"));
  };
  const model = files.get("tokenizer.model");
  let definition = parseJson(files.get("tokenizer.json"));
  if (!definition && model) {
    definition = sentencePieceToJson(parseSentencePieceModel(model));
    out.set("tokenizer.json", encoder.encode(JSON.stringify(definition)));
  }
  const name = (id: number | undefined): string | undefined =>
    id === undefined ? undefined : tokenizer.token(id);
  const unk = (definition?.model as Json | undefined)?.unk_token;
  // HFLM conditions an empty context on bos_token_id, else eos_token_id: the end-of-text id here.
  const bosId = tokenizer.bosToken ?? tokenizer.eotToken;
  const special = {
    bos_token: name(bosId),
    eos_token: name(tokenizer.eosToken),
    unk_token: typeof unk === "string" ? unk : undefined,
  };
  put("tokenizer_config.json", {
    tokenizer_class: "PreTrainedTokenizerFast",
    ...special,
    add_bos_token: hfBosToken(tokenizer, files) !== undefined,
    add_eos_token: false,
    model_max_length: options.maxLength,
    clean_up_tokenization_spaces: false,
    split_special_tokens: true,
  });
  put("special_tokens_map.json", special);
  put("generation_config.json", { bos_token_id: bosId, eos_token_id: tokenizer.eosToken });
  return out;
}
