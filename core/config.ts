/**
 * Model configurations of GPT-2 and of the LLaMA-like decoder families, with the shared field names of
 * GPT-2's `config.json` (`n_layer`, `n_head`, `n_embd`, `vocab_size`, `n_positions`) so that
 * family-agnostic code (trainer, evaluation, inheritance) reads one set of names. Checkpoint I/O
 * maps them to and from each family's Hugging Face fields.
 *
 * @module
 */
import {
  ATTENTION_MAX_HEAD_SIZE,
  type RopeScaling,
  ropeScaling,
  RopeScalingError,
  type RopeSpec,
} from "@inheritune/kernels";
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

/** The LLaMA-like families, all served by one configurable decoder (`decoder.ts`). */
export const DECODER_FAMILIES = ["llama", "qwen2", "qwen3", "mistral", "phi3", "gemma3_text"] as const;

/** One of {@linkcode DECODER_FAMILIES}: a Hugging Face `model_type`. */
export type DecoderFamilyName = (typeof DECODER_FAMILIES)[number];

/** How a block attends: to every earlier position, or to the last `sliding_window` only. */
export type LayerType = "full_attention" | "sliding_attention";

/** The gated MLP's activation: SwiGLU (SiLU) or GeGLU with GELU's tanh approximation. */
export type MlpKind = "swiglu" | "geglu_tanh";

/**
 * A LLaMA-like decoder: RoPE, RMSNorm, a gated MLP, grouped-query attention, tied or untied LM
 * head; each optional field turns on one architectural feature (absent = off), as the families of
 * `families.ts` set them. Hugging Face's names are in parentheses.
 */
export interface DecoderConfig extends BaseConfig {
  /** The family. */
  family: DecoderFamilyName;
  /** Key/value heads, dividing `n_head` (`num_key_value_heads`). */
  n_kv_head: number;
  /** Hidden size of the MLP (`intermediate_size`). */
  n_hidden: number;
  /** Size of one attention head (`head_dim`); absent: `n_embd / n_head`. */
  head_dim?: number;
  /** RMSNorm epsilon (`rms_norm_eps`). */
  norm_eps: number;
  /** RoPE base θ of the full-attention blocks (`rope_theta`). */
  rope_theta: number;
  /** RoPE scaling of the full-attention blocks (`rope_scaling`, never `default`); absent: none. */
  rope_scaling?: RopeScaling;
  /**
   * Divisors of the full-attention blocks' `head_dim/2` RoPE frequencies, after `rope_scaling`:
   * llama.cpp's `rope_freqs` tensor, which is how a GGUF file states Llama 3's scaling (in a
   * `config.json`, a `longrope` scaling with `short_factor` = `long_factor` and `attention_factor`
   * 1); absent: none.
   */
  rope_freq_factors?: number[];
  /** Whether the LM head is the token embedding (`tie_word_embeddings`). */
  tie_embeddings: boolean;
  /** Beginning-of-sequence token (`bos_token_id`). */
  bos_token_id?: number;
  /** End-of-sequence token (`eos_token_id`). */
  eos_token_id?: number;
  /** Biases on the query, key and value projections (Qwen2; `attention_bias`). */
  attention_bias?: boolean;
  /** RMSNorm of each query and key head before RoPE (Qwen3, Gemma 3). */
  qk_norm?: boolean;
  /** Added to every RMSNorm weight: Gemma scales by `1 + w`. */
  norm_offset?: number;
  /** RMSNorms of the attention and MLP outputs before their residual adds (Gemma 3). */
  sandwich_norms?: boolean;
  /** The MLP's activation (default swiglu). */
  mlp?: MlpKind;
  /** Whether the token embedding is multiplied by √n_embd (Gemma). */
  embed_scale?: boolean;
  /** Attention scores are scaled by `query_pre_attn_scalar^-½` (Gemma); absent: `head_dim^-½`. */
  query_pre_attn_scalar?: number;
  /**
   * Each block's attention (`layer_types`): one entry per block, carried with the block by
   * inheritance; absent: every block full attention.
   */
  layer_types?: LayerType[];
  /** The window of the `sliding_attention` blocks, in positions (`sliding_window`). */
  sliding_window?: number;
  /**
   * RoPE base θ of the `sliding_attention` blocks, unscaled (Gemma 3's `rope_local_base_freq`);
   * absent: they use `rope_theta` and `rope_scaling` as the full-attention blocks do.
   */
  rope_local_theta?: number;
  /** Logits are soft-capped to `c·tanh(logit/c)` (`final_logit_softcapping`). */
  final_logit_softcapping?: number;
}

/** RoPE base θ of a LLaMA whose checkpoint names none (LLaMA 1 and 2, llama2.c's exports). */
export const DEFAULT_ROPE_THETA = 10000;

/** The seed of data order, initialisation and sampling where a run names none. */
export const DEFAULT_SEED = 1337;

/** Any model's configuration; `family` tells which. */
export type ModelConfig = GPT2Config | DecoderConfig;

/** The model families. */
export type FamilyName = "gpt2" | DecoderFamilyName;

/** The family of `config` (GPT-2 when it names none). */
export function familyName(config: ModelConfig): FamilyName {
  return config.family ?? "gpt2";
}

/** Whether `config` is one of the decoder families'. */
export function isDecoder(config: ModelConfig): config is DecoderConfig {
  return config.family !== undefined && config.family !== "gpt2";
}

/** The size of one attention head: `head_dim` where the configuration states it, else C/NH. */
export function headSize(config: ModelConfig): number {
  return (isDecoder(config) ? config.head_dim : undefined) ?? config.n_embd / config.n_head;
}

/** Key/value heads: `n_kv_head` of a decoder, every query head's own for GPT-2. */
export function kvHeads(config: ModelConfig): number {
  return isDecoder(config) ? config.n_kv_head : config.n_head;
}

/**
 * The attention of block `l`: its window in positions (0: the whole context), the factor of its
 * scores where it is not 1/√hs, and its RoPE.
 */
export function layerAttention(
  config: DecoderConfig,
  l: number,
): RopeSpec & { window: number; scale?: number } {
  const sliding = config.layer_types?.[l] === "sliding_attention";
  const window = sliding ? config.sliding_window ?? 0 : 0;
  const scalar = config.query_pre_attn_scalar;
  const scale = scalar === undefined ? undefined : scalar ** -0.5;
  if (sliding && config.rope_local_theta !== undefined) {
    return { window, scale, theta: config.rope_local_theta };
  }
  return {
    window,
    scale,
    theta: config.rope_theta,
    scaling: config.rope_scaling,
    ...(config.rope_freq_factors ? { freqFactors: config.rope_freq_factors } : {}),
  };
}

/**
 * `config` reduced to the blocks `blocks` of it, in that order: the per-block attributes
 * (`layer_types`) follow their blocks, so a chosen block keeps its window and RoPE base.
 */
export function selectLayers<C extends ModelConfig>(config: C, blocks: readonly number[]): C {
  const out = { ...config, n_layer: blocks.length };
  if (isDecoder(config) && config.layer_types) {
    (out as DecoderConfig).layer_types = blocks.map((b) => config.layer_types![b]);
  }
  return out;
}

/**
 * `config` followed by the blocks `blocks` of `source` (a model of the same family and sizes), each
 * with its own per-block attributes.
 */
export function appendLayers<C extends ModelConfig>(config: C, source: C, blocks: readonly number[]): C {
  const out = { ...config, n_layer: config.n_layer + blocks.length };
  if (isDecoder(config) && isDecoder(source) && (config.layer_types || source.layer_types)) {
    const type = (c: DecoderConfig, l: number): LayerType => c.layer_types?.[l] ?? "full_attention";
    (out as DecoderConfig).layer_types = [
      ...Array.from({ length: config.n_layer }, (_, l) => type(config, l)),
      ...blocks.map((b) => type(source, b)),
    ];
    (out as DecoderConfig).sliding_window ??= source.sliding_window;
    (out as DecoderConfig).rope_local_theta ??= source.rope_local_theta;
  }
  return out;
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

function check(ok: boolean, problem: string): void {
  if (!ok) throw new ConfigError(`config ${problem}`);
}

/** The decoder's own checks (see {@linkcode validateConfig}). */
function validateDecoder(config: DecoderConfig): void {
  positiveIntegers(config, ["n_kv_head", "n_hidden"]);
  check(
    config.n_head % config.n_kv_head === 0,
    `n_kv_head ${config.n_kv_head} does not divide n_head ${config.n_head}`,
  );
  const hs = headSize(config);
  check(Number.isInteger(hs) && hs > 0, `head_dim ${hs} is not a positive integer`);
  if (config.head_dim === undefined) {
    check(
      config.n_embd % config.n_head === 0,
      `n_embd ${config.n_embd} is not divisible by n_head ${config.n_head}`,
    );
  }
  check(hs % 2 === 0, `head size ${hs} is odd; RoPE rotates pairs`);
  positive("norm_eps", config.norm_eps);
  positive("rope_theta", config.rope_theta);
  check(
    typeof config.tie_embeddings === "boolean",
    `tie_embeddings must be true or false, got ${config.tie_embeddings}`,
  );
  if (config.rope_scaling !== undefined) {
    try {
      ropeScaling(config.rope_scaling, { what: "config rope_scaling" });
    } catch (e) {
      if (e instanceof RopeScalingError) throw new ConfigError(e.message);
      throw e;
    }
  }
  const factors = config.rope_freq_factors;
  if (factors !== undefined) {
    check(
      Array.isArray(factors) && factors.length === hs / 2 &&
        factors.every((x) => typeof x === "number" && x > 0 && Number.isFinite(x)),
      `rope_freq_factors must be ${hs / 2} positive numbers (one per RoPE pair), got ${
        JSON.stringify(factors)
      }`,
    );
  }
  if (config.mlp !== undefined) {
    check(
      config.mlp === "swiglu" || config.mlp === "geglu_tanh",
      `mlp ${JSON.stringify(config.mlp)} is not swiglu or geglu_tanh`,
    );
  }
  for (const key of ["query_pre_attn_scalar", "rope_local_theta", "final_logit_softcapping"] as const) {
    if (config[key] !== undefined) positive(key, config[key]);
  }
  const types = config.layer_types;
  if (types !== undefined) {
    check(
      Array.isArray(types) && types.length === config.n_layer,
      `layer_types must list ${config.n_layer} blocks, got ${JSON.stringify(types)}`,
    );
    for (const t of types) {
      check(
        t === "full_attention" || t === "sliding_attention",
        `layer_types entry ${JSON.stringify(t)} is not full_attention or sliding_attention`,
      );
    }
    if (types.includes("sliding_attention")) {
      check(
        Number.isInteger(config.sliding_window) && config.sliding_window! > 0,
        `sliding_window must be a positive integer for sliding blocks, got ${config.sliding_window}`,
      );
    }
  }
}

/**
 * Checks a configuration: a known family, positive integer sizes; for GPT-2 `n_embd` divisible by
 * `n_head` and a head size of at most the attention kernels' {@linkcode ATTENTION_MAX_HEAD_SIZE};
 * for the decoder families `n_kv_head` dividing `n_head`, an even head size (RoPE rotates pairs)
 * and well-formed feature fields. What the GPU kernels cannot run (a head longer than
 * {@linkcode ATTENTION_MAX_HEAD_SIZE}) is refused when the model is created, so such a model still
 * loads, inherits and saves.
 *
 * @throws {ConfigError} naming the first bad field.
 */
export function validateConfig<C extends ModelConfig>(config: C): C {
  const family = (config as { family?: unknown }).family;
  if (
    family !== undefined && family !== "gpt2" && !(DECODER_FAMILIES as readonly unknown[]).includes(family)
  ) {
    throw new ConfigError(
      `config family ${JSON.stringify(family)} is not one of gpt2, ${DECODER_FAMILIES.join(", ")}`,
    );
  }
  positiveIntegers(config, ["n_layer", "n_head", "n_embd", "vocab_size", "n_positions"]);
  if (isDecoder(config)) {
    validateDecoder(config);
    return config;
  }
  if (config.n_embd % config.n_head !== 0) {
    throw new ConfigError(`config n_embd ${config.n_embd} is not divisible by n_head ${config.n_head}`);
  }
  const hs = config.n_embd / config.n_head;
  if (hs > ATTENTION_MAX_HEAD_SIZE) {
    throw new ConfigError(`config head size ${hs} exceeds ${ATTENTION_MAX_HEAD_SIZE}`);
  }
  positive("layer_norm_epsilon", config.layer_norm_epsilon);
  return config;
}
