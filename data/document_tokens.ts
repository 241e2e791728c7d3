/**
 * Which tokens frame each document in prepared data, as the tokenizer's own configuration says:
 * `add_bos_token` / `add_eos_token` of a `tokenizer_config.json` beside the tokenizer (or a GGUF
 * file's `tokenizer.ggml.add_bos_token` / `add_eos_token`, read by the caller), else the family's
 * default: GPT-2's `<|endoftext|>` before every document (llm.c's data scripts), a SentencePiece
 * model's BOS (llama2.c, Llama), the BOS a `tokenizer.json` post-processor adds, Llama 3's
 * `<|begin_of_text|>` for a vocabulary that has it, else a `tokenizer.json`'s `<|endoftext|>`.
 * So Llama 3 data gets `<|begin_of_text|>`, Qwen data (`bos_token` null, no `add_bos_token`)
 * none, GPT-2 `<|endoftext|>`.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { DataError } from "./errors.ts";
import type { Tokenizer } from "./tokenizer_types.ts";

/** The tokens around every document, and where that rule came from. */
export interface DocumentTokens {
  /** Id put before every document, or null. */
  readonly bos: number | null;
  /** Id put after every document, or null. */
  readonly eos: number | null;
  /** Where the rule comes from, in words (recorded in `meta.json`). */
  readonly rule: string;
}

/** What a tokenizer's own configuration says about the tokens around a sequence. */
export interface TokenizerConfig {
  /** Where it was read: a `tokenizer_config.json` or a `.gguf` file. */
  readonly from: string;
  /** `add_bos_token`, when given. */
  readonly addBos?: boolean;
  /** `add_eos_token`, when given. */
  readonly addEos?: boolean;
  /** The BOS id it names; null when it says there is none (`"bos_token": null`). */
  readonly bosToken?: number | null;
  /** The EOS id it names; null when it says there is none. */
  readonly eosToken?: number | null;
}

const CONFIG_FILE = "tokenizer_config.json";

type Json = Record<string, unknown>;

/**
 * The `tokenizer_config.json` of tokenizer spec `spec`: inside it when it is a folder, beside it
 * when it is a file; undefined when there is none (or the spec is a built-in name).
 *
 * @throws {DataError} naming the file when it is not valid JSON.
 */
export async function readTokenizerConfig(spec: string): Promise<TokenizerConfig | undefined> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(spec);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  const path = join(info.isDirectory ? spec : dirname(spec), CONFIG_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  let json: Json;
  try {
    json = JSON.parse(text);
  } catch {
    throw new DataError(`${path}: not valid JSON`);
  }
  const ids = new Map<string, number>();
  const decoder = json.added_tokens_decoder;
  if (typeof decoder === "object" && decoder !== null) {
    for (const [id, t] of Object.entries(decoder as Json)) {
      const content = (t as Json | null)?.content;
      if (typeof content === "string") ids.set(content, Number(id));
    }
  }
  /** The id of a `bos_token` / `eos_token` entry: a string or `{ content }`; null for null. */
  const token = (key: string): number | null | undefined => {
    const v = json[key];
    if (v === null) return null;
    const content = typeof v === "string" ? v : (v as Json | undefined)?.content;
    return typeof content === "string" ? ids.get(content) : undefined;
  };
  const flag = (key: string): boolean | undefined =>
    typeof json[key] === "boolean" ? json[key] as boolean : undefined;
  return {
    from: path,
    addBos: flag("add_bos_token"),
    addEos: flag("add_eos_token"),
    bosToken: token("bos_token"),
    eosToken: token("eos_token"),
  };
}

/**
 * The tokens around every document for `tokenizer`, by its configuration `config` when there is
 * one, else by the family default (see the module doc).
 *
 * @throws {DataError} when the configuration asks for a BOS or EOS the tokenizer does not have.
 */
export function documentTokens(tokenizer: Tokenizer, config?: TokenizerConfig): DocumentTokens {
  if (!config) {
    const bos = tokenizer.eotToken ?? llama3Bos(tokenizer);
    return {
      bos: bos ?? null,
      eos: null,
      rule: `the ${tokenizer.name} tokenizer's default: ${
        bos === undefined ? "no token" : `token ${bos}`
      } before every document, none after`,
    };
  }
  const pick = (
    what: "BOS" | "EOS",
    add: boolean | undefined,
    named: number | null | undefined,
  ): number | null => {
    const own = what === "BOS" ? tokenizer.bosToken : tokenizer.eosToken;
    // Without add_bos_token a BOS comes only from the post-processor (tokenizer.json's bosToken).
    if (add === undefined) return what === "BOS" && named !== null ? own ?? null : null;
    if (!add) return null;
    const id = named ?? own;
    if (id === undefined || id === null) {
      throw new DataError(
        `${config.from}: add_${what.toLowerCase()}_token is true but it names no ${what} token`,
      );
    }
    return id;
  };
  const bos = pick("BOS", config.addBos, config.bosToken);
  const eos = pick("EOS", config.addEos, config.eosToken);
  const shown = (v: boolean | undefined): string => v === undefined ? "unset" : String(v);
  return {
    bos,
    eos,
    rule: `${config.from}: add_bos_token ${shown(config.addBos)}, add_eos_token ${shown(config.addEos)}: ${
      bos === null ? "no token" : `token ${bos}`
    } before every document, ${eos === null ? "none" : `token ${eos}`} after`,
  };
}

/** Llama 3's `<|begin_of_text|>` id when a `tokenizer.json` has it as a special token. */
function llama3Bos(tokenizer: Tokenizer): number | undefined {
  const definition = tokenizer.kind === "tokenizer.json" ? tokenizer.definition?.() : undefined;
  if (!definition) return undefined;
  const json = JSON.parse(new TextDecoder().decode(definition.bytes)) as Json;
  const added = Array.isArray(json.added_tokens) ? json.added_tokens as Json[] : [];
  const found = added.find((t) => t.special === true && t.content === "<|begin_of_text|>");
  return typeof found?.id === "number" ? found.id : undefined;
}
