/**
 * The types every family and its users share: a model on the GPU ({@linkcode LanguageModel}), a
 * model on the CPU ({@linkcode Checkpoint}) and what defines a family ({@linkcode Family}). A leaf:
 * the families (`gpt2.ts`, `families.ts`) implement these, and the registry of families (`model.ts`)
 * and the checkpoint readers import them, so nothing here imports a family or a reader.
 *
 * @module
 */
import type { Gpu, Recorder, View } from "@inheritune/kernels";
import type { ModelConfig } from "./config.ts";
import type { ParamMap, ParamSpec } from "./params.ts";

/** Batch shape of a model instance. */
export interface BatchShape {
  /** Sequences per batch. */
  B: number;
  /** Tokens per sequence (≤ n_positions). */
  T: number;
}

/** Options of `createModel` and {@linkcode Family.create}. */
export interface CreateOptions extends BatchShape {
  /** Allocate gradients and backward scratch (false for evaluation only). */
  training?: boolean;
  /** Largest vocabulary chunk of the classifier (tests force several chunks with it). */
  maxVocabChunk?: number;
}

/** Views of one block's saved activations after a forward pass, for diagnostics. */
export interface BlockActivations {
  /** The block's input, the residual stream (BT,C). */
  input: View;
  /** The attention's input (BT, (NH + 2·NKV)·hs): query, key and value heads (after RoPE in a decoder). */
  qkv: View;
  /** The block's output (BT,C). */
  output: View;
}

/**
 * The parameters of one weight-decay group and their gradients as whole buffers, in the same
 * layout (each tensor at the same offset in both): what the optimizer clears, sums and updates.
 */
export interface ParamGroup {
  /** Whether AdamW decays these tensors. */
  decay: boolean;
  /** The parameter buffers' spans. */
  params: View[];
  /** The gradient buffers' spans (empty when not training). */
  grads: View[];
}

/** A model on the GPU: parameters, optional gradients, activations for one (B,T). */
export interface LanguageModel {
  /** The device. */
  readonly gpu: Gpu;
  /** Architecture. */
  readonly config: ModelConfig;
  /** The parameter table. */
  readonly specs: readonly ParamSpec[];
  /** Sequences per batch. */
  readonly B: number;
  /** Tokens per sequence. */
  readonly T: number;
  /** Parameters by table name. */
  readonly params: Map<string, View>;
  /** Gradients by table name (empty when not training). */
  readonly grads: Map<string, View>;
  /** The parameters and gradients as whole buffers, by weight-decay group. */
  readonly groups: readonly ParamGroup[];
  /** Input token ids (B,T), u32; write a batch here before submitting. */
  readonly tokens: View;
  /** Target token ids (B,T), u32 (`IGNORE_INDEX` to skip a position). */
  readonly targets: View;
  /** Per-position cross-entropy (B,T) after a forward pass. */
  readonly losses: View;
  /** Mean of `losses` (1) after a forward pass. */
  readonly loss: View;
  /** Final normalised hidden states (BT,C), the LM head's input, after a forward pass. */
  readonly hidden: View;
  /** The LM head `(V,C)`: the token embedding when tied. */
  readonly head: View;
  /** Records the forward pass: `tokens` → `losses` (per position) and `loss` (mean). */
  recordForward(rec: Recorder): void;
  /** Records the forward pass up to the final norm only: `tokens` → `hidden` (generation). */
  recordHidden(rec: Recorder): void;
  /**
   * Records the backward pass of the last recorded forward: accumulates into every gradient.
   * `dlossScale` is d(total loss)/d(each position's loss), e.g. 1/(B·T·accumulation steps).
   */
  recordBackward(rec: Recorder, dlossScale: number): void;
  /** Records zeroing every gradient (the start of an optimizer step). */
  recordZeroGrads(rec: Recorder): void;
  /** Records the logits (BT,V) of the last forward pass into `out` (small models: one binding). */
  recordLogits(rec: Recorder, out: View): void;
  /** Block `l`'s saved activations. */
  blockActivations(l: number): BlockActivations;
  /** Copies every parameter back to the CPU, by table name. */
  downloadParams(): Promise<ParamMap>;
  /** Copies every gradient back to the CPU, by table name. */
  downloadGrads(): Promise<ParamMap>;
  /** Releases every buffer. */
  destroy(): void;
}

/**
 * How a family's Hugging Face files store its parameter table where they differ from the table's
 * names: tensors fused into one, names that also refer to a table tensor.
 */
export interface HfTensorLayout {
  /** Tensors stored as one, the table tensors `parts` stacked along the first dimension in order. */
  fused: { stored: string; parts: string[] }[];
  /** The table's name of a stored tensor (GPT-2's optional `transformer.` prefix dropped). */
  tableName(stored: string): string;
  /**
   * The LM head when it is tied: the stored name that may repeat the table tensor, whether a file may
   * hold the matrix under that name alone, and the problem when the two differ.
   */
  tied?: { alias: string; table: string; aliasAlone: boolean; differs: string };
}

/** What defines a family. */
export interface Family<C extends ModelConfig = ModelConfig> {
  /** The family's name in messages ("GPT-2", "Qwen3"). */
  title: string;
  /** The parameter table of `config`, in a fixed order. */
  paramSpecs(config: C): ParamSpec[];
  /** The checkpoint name of tensor `key` of block `layer`. */
  blockParamName(layer: number, key: string): string;
  /** Uploads `params` and allocates everything one (B,T) batch needs. */
  create(gpu: Gpu, config: C, params: ParamMap, options: CreateOptions): LanguageModel;
  /** The Hugging Face `config.json` of `config` (plus our `tokenizer` field). */
  toHfConfig(config: C): Record<string, unknown>;
  /**
   * The configuration in a Hugging Face `config.json`; `fail` throws a one-line error naming the
   * file and the problem.
   */
  fromHfConfig(json: Record<string, unknown>, fail: (problem: string) => never): C;
  /** How the family's Hugging Face files store the table of `config`. */
  hfTensors(config: C): HfTensorLayout;
}

/** A model's configuration and parameters, and the tokenizer files that travel with it. */
export interface Checkpoint {
  /** The architecture. */
  config: ModelConfig;
  /** Every tensor of `paramSpecs(config)`, by name. */
  params: ParamMap;
  /**
   * Tokenizer files written beside the weights, by file name (`tokenizer.model`,
   * `tokenizer.json`, `tokenizer_config.json`, ...); absent for models whose `config.tokenizer`
   * names a built-in tokenizer.
   */
  tokenizerFiles?: Map<string, Uint8Array>;
}
