/**
 * The parameter table: every GPT-2 tensor's name (Hugging Face layout, without the optional
 * `transformer.` prefix) and shape, in one fixed order. Optimisers, checkpoints and inheritance
 * walk this table.
 *
 * Linear weights are stored `[in, out]` (Conv1D), so `Y = X·W + b`; the LM head is tied to `wte`.
 *
 * @module
 */
import type { GPTConfig } from "./config.ts";

/** One named parameter tensor. */
export interface ParamSpec {
  /** Hugging Face name, e.g. `h.0.attn.c_attn.weight`. */
  name: string;
  /** Shape, outermost first. */
  shape: number[];
  /** Block index, or -1 for embeddings and the final LayerNorm. */
  layer: number;
  /** How the tensor is initialised: normal (std 0.02, scaled for residual projections), ones or zeros. */
  init: "normal" | "residual" | "ones" | "zeros";
  /** Whether AdamW applies weight decay (2-D weights only). */
  decay: boolean;
}

/** The per-block tensor names after `h.{i}.`, in table order. */
export const BLOCK_TENSORS = [
  "ln_1.weight",
  "ln_1.bias",
  "attn.c_attn.weight",
  "attn.c_attn.bias",
  "attn.c_proj.weight",
  "attn.c_proj.bias",
  "ln_2.weight",
  "ln_2.bias",
  "mlp.c_fc.weight",
  "mlp.c_fc.bias",
  "mlp.c_proj.weight",
  "mlp.c_proj.bias",
] as const;

/** One of {@linkcode BLOCK_TENSORS}. */
export type BlockTensor = (typeof BLOCK_TENSORS)[number];

function blockSpec(config: GPTConfig, layer: number, t: BlockTensor): ParamSpec {
  const C = config.n_embd;
  const name = `h.${layer}.${t}`;
  switch (t) {
    case "ln_1.weight":
    case "ln_2.weight":
      return { name, shape: [C], layer, init: "ones", decay: false };
    case "ln_1.bias":
    case "ln_2.bias":
    case "attn.c_proj.bias":
    case "mlp.c_proj.bias":
      return { name, shape: [C], layer, init: "zeros", decay: false };
    case "attn.c_attn.weight":
      return { name, shape: [C, 3 * C], layer, init: "normal", decay: true };
    case "attn.c_attn.bias":
      return { name, shape: [3 * C], layer, init: "zeros", decay: false };
    case "attn.c_proj.weight":
      return { name, shape: [C, C], layer, init: "residual", decay: true };
    case "mlp.c_fc.weight":
      return { name, shape: [C, 4 * C], layer, init: "normal", decay: true };
    case "mlp.c_fc.bias":
      return { name, shape: [4 * C], layer, init: "zeros", decay: false };
    case "mlp.c_proj.weight":
      return { name, shape: [4 * C, C], layer, init: "residual", decay: true };
  }
}

/** The full parameter table of `config`: `wte, wpe`, then each block, then `ln_f`. */
export function paramSpecs(config: GPTConfig): ParamSpec[] {
  const C = config.n_embd;
  const specs: ParamSpec[] = [
    { name: "wte.weight", shape: [config.vocab_size, C], layer: -1, init: "normal", decay: true },
    { name: "wpe.weight", shape: [config.n_positions, C], layer: -1, init: "normal", decay: true },
  ];
  for (let l = 0; l < config.n_layer; l++) {
    for (const t of BLOCK_TENSORS) specs.push(blockSpec(config, l, t));
  }
  specs.push({ name: "ln_f.weight", shape: [C], layer: -1, init: "ones", decay: false });
  specs.push({ name: "ln_f.bias", shape: [C], layer: -1, init: "zeros", decay: false });
  return specs;
}

/** Number of elements of a shape. */
export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Total parameter count of `config` (the tied LM head counted once). */
export function countParams(config: GPTConfig): number {
  return paramSpecs(config).reduce((s, p) => s + numel(p.shape), 0);
}

/** CPU copies of every parameter, by name. */
export type ParamMap = Map<string, Float32Array>;
