/**
 * GPT-2 model configuration, with the Hugging Face `config.json` field names.
 *
 * @module
 */

/** Architecture of a GPT-2 model. */
export interface GPTConfig {
  /** Number of transformer blocks (L). */
  n_layer: number;
  /** Attention heads per block (NH). */
  n_head: number;
  /** Channels (C). */
  n_embd: number;
  /** Vocabulary size (V). */
  vocab_size: number;
  /** Longest context; rows of the position table (maxT). */
  n_positions: number;
  /** LayerNorm epsilon. */
  layer_norm_epsilon: number;
  /** Tokenizer the model was trained with: "gpt2" (the default for Hugging Face models) or "bytes". */
  tokenizer?: string;
}

/** GPT-2 small (124M). */
export const GPT2_124M: GPTConfig = {
  n_layer: 12,
  n_head: 12,
  n_embd: 768,
  vocab_size: 50257,
  n_positions: 1024,
  layer_norm_epsilon: 1e-5,
  tokenizer: "gpt2",
};

/** An invalid configuration: one line naming the field. */
export class ConfigError extends Error {
  /** Creates the error with its one-line message. */
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/**
 * Checks a configuration: positive integer sizes, `n_embd` divisible by `n_head`, head size ≤ 128.
 *
 * @throws {ConfigError} naming the first bad field.
 */
export function validateConfig(config: GPTConfig): GPTConfig {
  for (const key of ["n_layer", "n_head", "n_embd", "vocab_size", "n_positions"] as const) {
    const v = config[key];
    if (!Number.isInteger(v) || v <= 0) {
      throw new ConfigError(`config ${key} must be a positive integer, got ${v}`);
    }
  }
  if (config.n_embd % config.n_head !== 0) {
    throw new ConfigError(`config n_embd ${config.n_embd} is not divisible by n_head ${config.n_head}`);
  }
  if (config.n_embd / config.n_head > 128) {
    throw new ConfigError(`config head size ${config.n_embd / config.n_head} exceeds 128`);
  }
  if (!(config.layer_norm_epsilon > 0)) {
    throw new ConfigError(`config layer_norm_epsilon must be positive, got ${config.layer_norm_epsilon}`);
  }
  return config;
}
