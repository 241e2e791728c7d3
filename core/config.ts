/**
 * Model configurations of the two families, GPT-2 and LLaMA, with the shared field names of
 * GPT-2's `config.json` (`n_layer`, `n_head`, `n_embd`, `vocab_size`, `n_positions`) so that
 * family-agnostic code (trainer, evaluation, inheritance) reads one set of names. Checkpoint I/O
 * maps them to and from each family's Hugging Face fields.
 *
 * @module
 */
import { ATTENTION_MAX_HEAD_SIZE } from "@inheritune/kernels";
import { UserError } from "@inheritune/data";

/** What every family's configuration has. */
export interface BaseConfig {
  /** Number of transformer blocks (L). */
  n_layer: number;
  /** Query heads per block (NH). */
  n_head: number;
  /** Channels of the residual stream (C). */
  n_embd: number;
  /** Vocabulary size (V). */
  vocab_size: number;
  /** Longest context (maxT). */
  n_positions: number;
  /**
   * Tokenizer the model was trained with, when known by name: "gpt2", "bytes", or a description
   * of the tokenizer files that travel with the model (SentencePiece, tokenizer.json).
   */
  tokenizer?: string;
}

/** A GPT-2: learned positions, LayerNorm, GELU MLP of 4C, biases, LM head tied to `wte`. */
export interface GPT2Config extends BaseConfig {
  /** The family (absent in configurations written before there were two). */
  family?: "gpt2";
  /** LayerNorm epsilon. */
  layer_norm_epsilon: number;
}

/**
 * A LLaMA: RoPE, RMSNorm, SwiGLU MLP, grouped-query attention, no biases, tied or untied LM head.
 * Hugging Face's `LlamaConfig` fields are in parentheses.
 */
export interface LlamaConfig extends BaseConfig {
  /** The family. */
  family: "llama";
  /** Key/value heads, dividing `n_head` (`num_key_value_heads`). */
  n_kv_head: number;
  /** Hidden size of the SwiGLU MLP (`intermediate_size`). */
  n_hidden: number;
  /** RMSNorm epsilon (`rms_norm_eps`). */
  norm_eps: number;
  /** RoPE base θ (`rope_theta`). */
  rope_theta: number;
  /** Whether the LM head is the token embedding (`tie_word_embeddings`). */
  tie_embeddings: boolean;
  /** Beginning-of-sequence token (`bos_token_id`). */
  bos_token_id?: number;
  /** End-of-sequence token (`eos_token_id`). */
  eos_token_id?: number;
}

/** RoPE base θ of a LLaMA whose checkpoint names none (LLaMA 1 and 2, llama2.c's exports). */
export const DEFAULT_ROPE_THETA = 10000;

/** The seed of data order, initialisation and sampling where a run names none. */
export const DEFAULT_SEED = 1337;

/** Any model's configuration; `family` tells which. */
export type ModelConfig = GPT2Config | LlamaConfig;

/** The model families. */
export type FamilyName = "gpt2" | "llama";

/** The family of `config` (GPT-2 when it names none). */
export function familyName(config: ModelConfig): FamilyName {
  return config.family ?? "gpt2";
}

/** GPT-2 small (124M). */
export const GPT2_124M: GPT2Config = {
  n_layer: 12,
  n_head: 12,
  n_embd: 768,
  vocab_size: 50257,
  n_positions: 1024,
  layer_norm_epsilon: 1e-5,
  tokenizer: "gpt2",
};

/** An invalid configuration: one line naming the field. */
export class ConfigError extends UserError {
  /** Creates the error with its one-line message. */
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/**
 * Reads required numbers from a configuration file's fields: `read(key, fallback)` is the value
 * `lookup(key)` gives (a number, or a bigint as GGUF stores some), else `fallback`; with neither,
 * or with a value that is not a number, it calls `fail` with a one-line problem naming `key`
 * (`"n_head is missing"`, `"n_head must be a number, got "8""`).
 */
export function numberReader(
  lookup: (key: string) => unknown,
  fail: (problem: string) => never,
): (key: string, fallback?: number) => number {
  return (key, fallback) => {
    const v = lookup(key) ?? fallback;
    if (v === undefined) fail(`${key} is missing`);
    if (typeof v !== "number" && typeof v !== "bigint") {
      fail(`${key} must be a number, got ${JSON.stringify(v)}`);
    }
    return Number(v);
  };
}

function positiveIntegers(config: object, keys: readonly string[]): void {
  for (const key of keys) {
    const v = (config as Record<string, unknown>)[key];
    if (!Number.isInteger(v) || (v as number) <= 0) {
      throw new ConfigError(`config ${key} must be a positive integer, got ${v}`);
    }
  }
}

function positive(name: string, v: number): void {
  if (!(v > 0)) throw new ConfigError(`config ${name} must be positive, got ${v}`);
}

/**
 * Checks a configuration: positive integer sizes, `n_embd` divisible by `n_head`, head size at
 * most the attention kernels' {@linkcode ATTENTION_MAX_HEAD_SIZE};
 * for LLaMA also `n_kv_head` dividing `n_head` and an even head size (RoPE rotates pairs).
 *
 * @throws {ConfigError} naming the first bad field.
 */
export function validateConfig<C extends ModelConfig>(config: C): C {
  const family = (config as { family?: unknown }).family;
  if (family !== undefined && family !== "gpt2" && family !== "llama") {
    throw new ConfigError(`config family ${JSON.stringify(family)} is not gpt2 or llama`);
  }
  positiveIntegers(config, ["n_layer", "n_head", "n_embd", "vocab_size", "n_positions"]);
  if (config.n_embd % config.n_head !== 0) {
    throw new ConfigError(`config n_embd ${config.n_embd} is not divisible by n_head ${config.n_head}`);
  }
  const hs = config.n_embd / config.n_head;
  if (hs > ATTENTION_MAX_HEAD_SIZE) {
    throw new ConfigError(`config head size ${hs} exceeds ${ATTENTION_MAX_HEAD_SIZE}`);
  }
  if (config.family === "llama") {
    positiveIntegers(config, ["n_kv_head", "n_hidden"]);
    if (config.n_head % config.n_kv_head !== 0) {
      throw new ConfigError(`config n_kv_head ${config.n_kv_head} does not divide n_head ${config.n_head}`);
    }
    if (hs % 2 !== 0) throw new ConfigError(`config head size ${hs} is odd; RoPE rotates pairs`);
    positive("norm_eps", config.norm_eps);
    positive("rope_theta", config.rope_theta);
    if (typeof config.tie_embeddings !== "boolean") {
      throw new ConfigError(`config tie_embeddings must be true or false, got ${config.tie_embeddings}`);
    }
  } else {
    positive("layer_norm_epsilon", config.layer_norm_epsilon);
  }
  return config;
}
