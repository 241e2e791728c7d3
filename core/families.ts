/**
 * The LLaMA-like families as data, each one configuration of the decoder (`decoder.ts`): its
 * Hugging Face tensor names and fused tensors, its GGUF (llama.cpp) form, its `config.json`
 * mapping, and the decoder features it turns on. A family is a diff of LLaMA, as in
 * transformers' modular files, but of data.
 *
 * `config.json` is read in both of the forms `transformers` writes: v4 (`rope_theta`,
 * `rope_scaling`, `rope_local_base_freq`, `sliding_window_pattern`) and v5 (`rope_parameters`,
 * `layer_types`). A key the family does not understand is refused, unless it is a known harmless
 * one (metadata, dropout, caching) or states a feature as off (`null`, `false`): silently ignoring
 * a key that changes the model would load another model. Configurations are written back in the
 * v4 form, which both `transformers` 4 and 5 read, plus `layer_types` where a family has windows.
 *
 * @module
 */
import {
  ConfigError,
  type DecoderConfig,
  type DecoderFamilyName,
  DEFAULT_ROPE_THETA,
  headSize,
  type LayerType,
  numberReader,
} from "./config.ts";
import { type RopeScaling, ropeScaling, RopeScalingError } from "@inheritune/kernels";
import type { Family, HfTensorLayout } from "./family.ts";
import {
  type BlockRole,
  Decoder,
  DECODER_NAMES,
  decoderBlockName,
  type DecoderNames,
  decoderParamSpecs,
  type DecoderRole,
} from "./decoder.ts";

/** A family's GGUF form: llama.cpp's architecture, its names and how tensors were converted. */
export interface GgufForm {
  /** `general.architecture`, also the prefix of the model's metadata keys (`qwen3.block_count`). */
  arch: string;
  /** Whether query and key rows are in Meta's interleaved-pair RoPE layout (llama.cpp's `llama`). */
  interleavedRope: boolean;
  /** What llama.cpp's converter added to every norm weight (Gemma: 1, so it stores `1 + w`). */
  normShift: number;
  /** Tensors stored fused: the stored name after `blk.{i}.` and the roles stacked along rows. */
  fused: { stored: string; roles: BlockRole[] }[];
}

/** llama.cpp's name of each decoder role (after `blk.{i}.` in a block). */
export const GGUF_NAMES: Record<DecoderRole, string> = {
  attn_norm: "attn_norm.weight",
  q_proj: "attn_q.weight",
  k_proj: "attn_k.weight",
  v_proj: "attn_v.weight",
  q_bias: "attn_q.bias",
  k_bias: "attn_k.bias",
  v_bias: "attn_v.bias",
  q_norm: "attn_q_norm.weight",
  k_norm: "attn_k_norm.weight",
  o_proj: "attn_output.weight",
  attn_post_norm: "post_attention_norm.weight",
  mlp_norm: "ffn_norm.weight",
  gate_proj: "ffn_gate.weight",
  up_proj: "ffn_up.weight",
  down_proj: "ffn_down.weight",
  mlp_post_norm: "post_ffw_norm.weight",
  embed: "token_embd.weight",
  final_norm: "output_norm.weight",
  head: "output.weight",
};

/** One of the decoder families in `model.ts`'s registry, with the data that defines it. */
export interface DecoderFamily extends Family<DecoderConfig> {
  /** The family, its Hugging Face `model_type`. */
  name: DecoderFamilyName;
  /** Its checkpoint names. */
  names: DecoderNames;
  /** The decoder features every model of the family has (a model from scratch gets them too). */
  features: Partial<DecoderConfig>;
  /** Its GGUF form, where llama.cpp has the architecture. */
  gguf?: GgufForm;
}

// ---------------------------------------------------------------------------------------------
// Reading config.json

/**
 * Keys of a `config.json` that do not change the model: metadata, training-only settings
 * (dropout, initialisation), caching and generation defaults.
 */
const HARMLESS_KEYS = new Set([
  "_name_or_path",
  "architectures",
  "auto_map",
  "model_type",
  "transformers_version",
  "torch_dtype",
  "dtype",
  "use_cache",
  "cache_implementation",
  "initializer_range",
  "attention_dropout",
  "embd_pdrop",
  "resid_pdrop",
  "pad_token_id",
  "sep_token_id",
  "decoder_start_token_id",
  "pretraining_tp",
  "is_llama_config",
  "output_attentions",
  "output_hidden_states",
  "return_dict",
  "torchscript",
  "use_bfloat16",
  "tf_legacy_loss",
  "id2label",
  "label2id",
  "problem_type",
  "tokenizer_class",
  "task_specific_params",
  "finetuning_task",
  "chunk_size_feed_forward",
  "max_length",
  "min_length",
  "do_sample",
  "num_beams",
  "temperature",
  "top_k",
  "top_p",
  "repetition_penalty",
  "num_return_sequences",
]);

/** The fields of a `config.json` as a family reads them, remembering which it read. */
class HfReader {
  readonly #json: Record<string, unknown>;
  readonly #used = new Set<string>();
  readonly fail: (problem: string) => never;
  readonly num: (key: string, fallback?: number) => number;

  constructor(json: Record<string, unknown>, fail: (problem: string) => never) {
    this.#json = json;
    this.fail = fail;
    const read = numberReader((key) => this.get(key) ?? undefined, fail);
    this.num = read;
  }

  /** `key` when it is a number, without marking it read. */
  peekNumber(key: string): number | undefined {
    const v = this.#json[key];
    return typeof v === "number" ? v : undefined;
  }

  /** The raw value of `key` (null and absent both read as undefined). */
  get(key: string): unknown {
    this.#used.add(key);
    return this.#json[key] ?? undefined;
  }

  /** `key`, which must be `expected` (or absent) because the family has no other form of it. */
  only(key: string, expected: unknown, what: string): void {
    const v = this.get(key);
    if (v !== undefined && v !== expected) {
      this.fail(`${key} ${JSON.stringify(v)} is not supported (${what})`);
    }
  }

  /** Refuses the first key no one read that may change the model. */
  finish(family: string): void {
    for (const [key, v] of Object.entries(this.#json)) {
      if (this.#used.has(key) || HARMLESS_KEYS.has(key) || v === null || v === false) continue;
      this.fail(`${key} ${JSON.stringify(v)} is not understood for ${family} (it may change the model)`);
    }
  }
}

/**
 * One RoPE of a `rope_scaling` / `rope_parameters` object: its base (when stated), its scaling and
 * its per-frequency divisors.
 */
interface RopeParams {
  theta?: number;
  scaling?: RopeScaling;
  freqFactors?: number[];
}

/** The keys of the one `longrope` form read (see {@linkcode longropeParams}). */
const LONGROPE_KEYS = new Set([
  "rope_type",
  "type",
  "rope_theta",
  "short_factor",
  "long_factor",
  "attention_factor",
  "factor",
  "original_max_position_embeddings",
]);

/**
 * A `longrope` object read as per-frequency divisors (`rope_freq_factors`): the form
 * {@linkcode toHfConfig} writes them in, which transformers computes as the same frequencies
 * (`short_factor` = `long_factor`, so the context length picks nothing; `attention_factor` 1, so
 * cos and sin are not scaled). Phi-3's long-context scaling (two lists, an attention factor) is
 * refused.
 */
function longropeParams(o: Record<string, unknown>, where: string, r: HfReader): RopeParams {
  const short = o.short_factor;
  const divisors = Array.isArray(short) && short.length > 0 &&
    short.every((x) => typeof x === "number" && x > 0 && Number.isFinite(x));
  if (!divisors || JSON.stringify(short) !== JSON.stringify(o.long_factor) || o.attention_factor !== 1) {
    r.fail(
      `${where}: rope_type "longrope" is supported only as per-frequency divisors (short_factor equal to ` +
        `long_factor, attention_factor 1)`,
    );
  }
  for (const key of Object.keys(o)) {
    if (!LONGROPE_KEYS.has(key)) r.fail(`${where}: key ${key} is not understood for rope_type longrope`);
  }
  return { ...ropeTheta(o, where, r), freqFactors: short as number[] };
}

/** The base `rope_theta` a RoPE object states, if any. */
function ropeTheta(o: Record<string, unknown> | null | undefined, where: string, r: HfReader): RopeParams {
  const theta = o?.rope_theta;
  if (theta !== undefined && theta !== null && typeof theta !== "number") {
    r.fail(`${where} rope_theta must be a number, got ${JSON.stringify(theta)}`);
  }
  return typeof theta === "number" ? { theta } : {};
}

/**
 * Parses one RoPE object (`where` names it in problems): its base, when stated, and its scaling by
 * the kernels' reader, which refuses any type but default, linear and llama3, or the per-frequency
 * divisors of {@linkcode longropeParams}.
 */
function ropeParams(raw: unknown, where: string, r: HfReader): RopeParams {
  const o = raw as Record<string, unknown> | null | undefined;
  if (typeof o === "object" && o !== null && (o.rope_type ?? o.type) === "longrope") {
    return longropeParams(o, where, r);
  }
  let scaling: RopeScaling;
  try {
    scaling = ropeScaling(raw, {
      what: where,
      max_position_embeddings: r.peekNumber("max_position_embeddings"),
    });
  } catch (e) {
    if (e instanceof RopeScalingError) return r.fail(e.message);
    throw e;
  }
  return { ...ropeTheta(o, where, r), ...(scaling.rope_type !== "default" ? { scaling } : {}) };
}

/** The RoPE of the full-attention blocks and, where the file states one, of the sliding ones. */
function readRope(
  r: HfReader,
  defaultTheta: number,
): { full: Required<Pick<RopeParams, "theta">> & RopeParams; sliding?: RopeParams } {
  const v5 = r.get("rope_parameters");
  const v4 = {
    theta: r.get("rope_theta"),
    scaling: ropeParams(r.get("rope_scaling"), "rope_scaling", r),
  };
  const theta4 = v4.theta === undefined ? undefined : r.num("rope_theta");
  const local4 = r.get("rope_local_base_freq");
  const sliding4 = local4 === undefined ? undefined : { theta: r.num("rope_local_base_freq") };
  if (v5 === undefined) {
    return { full: { ...v4.scaling, theta: theta4 ?? defaultTheta }, sliding: sliding4 };
  }
  if (typeof v5 !== "object" || Array.isArray(v5)) r.fail(`rope_parameters must be an object`);
  const o = v5 as Record<string, unknown>;
  // Per layer type (Gemma 3), or one RoPE for every block.
  const perType = "full_attention" in o || "sliding_attention" in o;
  const full = ropeParams(perType ? o.full_attention : o, "rope_parameters", r);
  const sliding = perType && o.sliding_attention !== undefined
    ? ropeParams(o.sliding_attention, "rope_parameters.sliding_attention", r)
    : sliding4;
  if (perType) {
    for (const key of Object.keys(o)) {
      if (key !== "full_attention" && key !== "sliding_attention") {
        r.fail(`rope_parameters key ${key} is not understood`);
      }
    }
  }
  const fullTheta = full.theta ?? theta4 ?? defaultTheta;
  if (theta4 !== undefined && theta4 !== fullTheta) {
    r.fail(`rope_theta ${theta4} disagrees with rope_parameters' ${fullTheta}`);
  }
  return { full: { ...full, theta: fullTheta }, sliding };
}

/** What distinguishes one family's `config.json` from LLaMA's. */
interface HfRules {
  /** `architectures[0]` written. */
  architecture: string;
  /** Defaults of the family's configuration class for absent keys. */
  defaults: { n_positions: number; norm_eps: number; rope_theta: number; tie: boolean; head_dim?: number };
  /** The activation's key and its one supported value. */
  activation: { key: string; value: string };
  /** Reads the family's own keys into `config` (windows, attention scale...). */
  read?(r: HfReader, config: DecoderConfig, rope: { sliding?: RopeParams }): void;
  /** The family's own keys, written. */
  write?(config: DecoderConfig): Record<string, unknown>;
}

/** The keys every decoder family reads. */
function readCommon(
  r: HfReader,
  family: { name: DecoderFamilyName; features: Partial<DecoderConfig>; rules: HfRules },
): { config: DecoderConfig; sliding?: RopeParams } {
  const { defaults, activation } = family.rules;
  r.only(activation.key, activation.value, `${activation.value} only`);
  const layers = r.num("num_hidden_layers");
  const heads = r.num("num_attention_heads");
  const C = r.num("hidden_size");
  const rope = readRope(r, defaults.rope_theta);
  const config: DecoderConfig = {
    family: family.name,
    n_layer: layers,
    n_head: heads,
    n_embd: C,
    n_kv_head: r.num("num_key_value_heads", heads),
    n_hidden: r.num("intermediate_size"),
    vocab_size: r.num("vocab_size"),
    n_positions: r.num("max_position_embeddings", defaults.n_positions),
    norm_eps: r.num("rms_norm_eps", defaults.norm_eps),
    rope_theta: rope.full.theta,
    tie_embeddings: (r.get("tie_word_embeddings") ?? defaults.tie) === true,
    ...family.features,
  };
  const headDim = r.num("head_dim", defaults.head_dim ?? C / heads);
  if (headDim !== C / heads) config.head_dim = headDim;
  if (rope.full.scaling) config.rope_scaling = rope.full.scaling;
  if (rope.full.freqFactors) config.rope_freq_factors = rope.full.freqFactors;
  for (const key of ["bos_token_id", "eos_token_id"] as const) {
    const id = r.get(key);
    if (typeof id === "number") config[key] = id;
  }
  const tokenizer = r.get("tokenizer");
  if (typeof tokenizer === "string") config.tokenizer = tokenizer;
  return { config, sliding: rope.sliding };
}

/** The layer types of a file's `layer_types`, checked; undefined when absent. */
function readLayerTypes(r: HfReader, n: number): LayerType[] | undefined {
  const types = r.get("layer_types");
  if (types === undefined) return undefined;
  if (!Array.isArray(types) || types.length !== n) {
    r.fail(`layer_types must list the ${n} blocks, got ${JSON.stringify(types)}`);
  }
  for (const t of types as unknown[]) {
    if (t !== "full_attention" && t !== "sliding_attention") {
      r.fail(`layer_types entry ${JSON.stringify(t)} is not supported (full_attention or sliding_attention)`);
    }
  }
  return types as LayerType[];
}

/** Sets the windows of `config`: `types` per block, kept only where some block slides. */
function setWindows(config: DecoderConfig, types: LayerType[], window: number | undefined): void {
  if (!types.includes("sliding_attention")) return;
  config.layer_types = types;
  config.sliding_window = window;
}

/** Every block sliding with `sliding_window` when the file sets it (Mistral, Phi-3). */
const uniformWindow: Pick<HfRules, "read" | "write"> = {
  read(r, config) {
    const window = r.get("sliding_window");
    if (window !== undefined) {
      setWindows(config, Array(config.n_layer).fill("sliding_attention"), r.num("sliding_window"));
    }
  },
  write(config) {
    const types = new Set(config.layer_types ?? ["full_attention"]);
    if (types.size > 1) {
      throw new ConfigError(
        `${config.family} has one window for every block; layer_types ${
          JSON.stringify(config.layer_types)
        } mixes two`,
      );
    }
    return { sliding_window: types.has("sliding_attention") ? config.sliding_window : null };
  },
};

/** Qwen's sliding window, refused: no released Qwen2/Qwen3 model turns it on. */
const qwenWindow: Pick<HfRules, "read" | "write"> = {
  read(r, config) {
    r.only("use_sliding_window", false, "sliding windows of Qwen are not implemented");
    r.get("sliding_window"); // used only with use_sliding_window
    r.get("max_window_layers");
    const types = readLayerTypes(r, config.n_layer);
    if (types?.includes("sliding_attention")) {
      r.fail(
        `layer_types ${
          JSON.stringify(types)
        } has sliding_attention blocks, not supported for ${config.family}`,
      );
    }
  },
  write: () => ({ use_sliding_window: false }),
};

const gemmaRules: HfRules = {
  architecture: "Gemma3ForCausalLM",
  defaults: { n_positions: 131072, norm_eps: 1e-6, rope_theta: 1_000_000, tie: true, head_dim: 256 },
  activation: { key: "hidden_activation", value: "gelu_pytorch_tanh" },
  read(r, config, rope) {
    r.only("attention_bias", false, "Gemma 3 with biases is not implemented");
    r.only("attn_logit_softcapping", undefined, "attention soft-capping is not implemented");
    r.only("use_bidirectional_attention", false, "bidirectional attention is not implemented");
    config.query_pre_attn_scalar = r.num("query_pre_attn_scalar", 256);
    const cap = r.get("final_logit_softcapping");
    if (cap !== undefined) config.final_logit_softcapping = r.num("final_logit_softcapping");
    const pattern = r.num("sliding_window_pattern", (r.get("_sliding_window_pattern") as number) ?? 6);
    const types = readLayerTypes(r, config.n_layer) ??
      Array.from(
        { length: config.n_layer },
        (_, i) => (i + 1) % pattern === 0 ? "full_attention" : "sliding_attention",
      );
    setWindows(config, types, r.num("sliding_window", 4096));
    if (config.layer_types) {
      if (rope.sliding?.scaling || rope.sliding?.freqFactors) {
        r.fail("a scaled RoPE of the sliding_attention blocks is not supported");
      }
      config.rope_local_theta = rope.sliding?.theta ?? 10000;
    }
  },
  write: (config) => ({
    hidden_activation: "gelu_pytorch_tanh",
    query_pre_attn_scalar: config.query_pre_attn_scalar,
    sliding_window: config.sliding_window ?? null,
    layer_types: config.layer_types ?? Array(config.n_layer).fill("full_attention"),
    rope_local_base_freq: config.rope_local_theta ?? 10000,
    final_logit_softcapping: config.final_logit_softcapping ?? null,
    attn_logit_softcapping: null,
    attention_bias: false,
  }),
};

// ---------------------------------------------------------------------------------------------
// The families

const LLAMA_RULES: HfRules = {
  architecture: "LlamaForCausalLM",
  defaults: { n_positions: 2048, norm_eps: 1e-6, rope_theta: DEFAULT_ROPE_THETA, tie: false },
  activation: { key: "hidden_act", value: "silu" },
  read(r) {
    r.only("attention_bias", false, "Llama's attention biases include o_proj's, not implemented");
    r.only("mlp_bias", false, "MLP biases are not implemented");
  },
  write: () => ({ attention_bias: false, mlp_bias: false }),
};

/** Each decoder family's differences from LLaMA. */
const SPECS: {
  name: DecoderFamilyName;
  title: string;
  rules: HfRules;
  features?: Partial<DecoderConfig>;
  names?: Partial<DecoderNames["block"]>;
  fused?: { stored: string; roles: BlockRole[] }[];
  gguf?: Omit<GgufForm, "fused" | "normShift" | "interleavedRope"> & Partial<GgufForm>;
}[] = [
  { name: "llama", title: "Llama", rules: LLAMA_RULES, gguf: { arch: "llama", interleavedRope: true } },
  {
    name: "qwen2",
    title: "Qwen2",
    rules: {
      ...LLAMA_RULES,
      architecture: "Qwen2ForCausalLM",
      defaults: { ...LLAMA_RULES.defaults, n_positions: 32768 },
      ...qwenWindow,
    },
    features: { attention_bias: true },
    gguf: { arch: "qwen2" },
  },
  {
    name: "qwen3",
    title: "Qwen3",
    rules: {
      ...LLAMA_RULES,
      architecture: "Qwen3ForCausalLM",
      defaults: { ...LLAMA_RULES.defaults, n_positions: 32768, head_dim: 128 },
      read(r, config, rope) {
        r.only("attention_bias", false, "Qwen3's attention biases include o_proj's, not implemented");
        qwenWindow.read!(r, config, rope);
      },
      write: (config) => ({ attention_bias: false, ...qwenWindow.write!(config) }),
    },
    features: { qk_norm: true },
    gguf: { arch: "qwen3" },
  },
  {
    name: "mistral",
    title: "Mistral",
    rules: {
      ...LLAMA_RULES,
      architecture: "MistralForCausalLM",
      defaults: { ...LLAMA_RULES.defaults, n_positions: 131072 },
      ...uniformWindow,
    },
  },
  {
    name: "phi3",
    title: "Phi-3",
    rules: {
      ...LLAMA_RULES,
      architecture: "Phi3ForCausalLM",
      defaults: { ...LLAMA_RULES.defaults, n_positions: 4096, norm_eps: 1e-5 },
      read(r, config, rope) {
        r.get("original_max_position_embeddings"); // used by longrope only, which is refused
        r.only("partial_rotary_factor", 1, "RoPE on whole heads only");
        uniformWindow.read!(r, config, rope);
      },
      write: uniformWindow.write,
    },
    fused: [
      { stored: "self_attn.qkv_proj.weight", roles: ["q_proj", "k_proj", "v_proj"] },
      { stored: "mlp.gate_up_proj.weight", roles: ["gate_proj", "up_proj"] },
    ],
    gguf: {
      arch: "phi3",
      fused: [{ stored: "attn_qkv.weight", roles: ["q_proj", "k_proj", "v_proj"] }, {
        stored: "ffn_up.weight",
        roles: ["gate_proj", "up_proj"],
      }],
    },
  },
  {
    name: "gemma3_text",
    title: "Gemma 3",
    rules: gemmaRules,
    features: { qk_norm: true, norm_offset: 1, sandwich_norms: true, mlp: "geglu_tanh", embed_scale: true },
    names: {
      attn_post_norm: "post_attention_layernorm.weight",
      mlp_norm: "pre_feedforward_layernorm.weight",
    },
    gguf: { arch: "gemma3", normShift: 1 },
  },
];

/** The configuration `config.json` of `family` describes. */
function fromHfConfig(
  family: { name: DecoderFamilyName; title: string; features: Partial<DecoderConfig>; rules: HfRules },
  json: Record<string, unknown>,
  fail: (problem: string) => never,
): DecoderConfig {
  const r = new HfReader(json, fail);
  const { config, sliding } = readCommon(r, family);
  family.rules.read?.(r, config, { sliding });
  r.finish(family.title);
  return config;
}

/**
 * The `rope_scaling` of `config`: its scaling, or its per-frequency divisors in the `longrope`
 * form that transformers computes as the same frequencies (read back by {@linkcode longropeParams}).
 *
 * @throws {ConfigError} when it has both, which no `config.json` states.
 */
function hfRopeScaling(config: DecoderConfig): Record<string, unknown> | null {
  const factors = config.rope_freq_factors;
  if (!factors) return config.rope_scaling ?? null;
  if (config.rope_scaling) {
    throw new ConfigError(
      `${config.family}: rope_scaling and rope_freq_factors together have no config.json form`,
    );
  }
  return {
    rope_type: "longrope",
    short_factor: factors,
    long_factor: factors,
    attention_factor: 1,
    factor: 1,
    original_max_position_embeddings: config.n_positions,
  };
}

/** `config` as the family's `config.json` (v4 keys, plus our `tokenizer`). */
function toHfConfig(name: DecoderFamilyName, rules: HfRules, config: DecoderConfig): Record<string, unknown> {
  return {
    model_type: name,
    architectures: [rules.architecture],
    hidden_size: config.n_embd,
    intermediate_size: config.n_hidden,
    num_hidden_layers: config.n_layer,
    num_attention_heads: config.n_head,
    num_key_value_heads: config.n_kv_head,
    head_dim: headSize(config),
    max_position_embeddings: config.n_positions,
    vocab_size: config.vocab_size,
    rms_norm_eps: config.norm_eps,
    rope_theta: config.rope_theta,
    rope_scaling: hfRopeScaling(config),
    tie_word_embeddings: config.tie_embeddings,
    [rules.activation.key]: rules.activation.value,
    ...rules.write?.(config),
    initializer_range: 0.02,
    torch_dtype: "float32",
    // Stated even when absent: a family's class defaults them (Phi-3's pad 32000 beyond a small vocabulary).
    bos_token_id: config.bos_token_id ?? null,
    eos_token_id: config.eos_token_id ?? null,
    pad_token_id: null,
    ...(config.tokenizer !== undefined ? { tokenizer: config.tokenizer } : {}),
  };
}

function decoderFamily(spec: (typeof SPECS)[number]): DecoderFamily {
  const names: DecoderNames = {
    block: { ...DECODER_NAMES.block, ...spec.names },
    outer: DECODER_NAMES.outer,
  };
  const features = spec.features ?? {};
  const family = { name: spec.name, title: spec.title, features, rules: spec.rules };
  return {
    name: spec.name,
    title: spec.title,
    names,
    features,
    ...(spec.gguf ? { gguf: { interleavedRope: false, normShift: 0, fused: [], ...spec.gguf } } : {}),
    paramSpecs: (config) => decoderParamSpecs(config, names),
    blockParamName: decoderBlockName,
    create: (gpu, config, params, options) =>
      Decoder.create(gpu, config, { specs: decoderParamSpecs(config, names), params, options }),
    toHfConfig: (config) => toHfConfig(spec.name, spec.rules, config),
    fromHfConfig: (json, fail) => fromHfConfig(family, json, fail),
    hfTensors: (config): HfTensorLayout => ({
      fused: Array.from({ length: config.n_layer }, (_, l) =>
        (spec.fused ?? []).map((f) => ({
          stored: decoderBlockName(l, f.stored),
          parts: f.roles.map((role) => decoderBlockName(l, names.block[role])),
        }))).flat(),
      tableName: (stored) => stored,
      tied: config.tie_embeddings
        ? {
          alias: names.outer.head,
          table: names.outer.embed,
          aliasAlone: true,
          differs: "the configuration ties them (tie_word_embeddings)",
        }
        : undefined,
    }),
  };
}

/** Every decoder family, by name. */
export const DECODER_FAMILIES_BY_NAME: Readonly<Record<DecoderFamilyName, DecoderFamily>> = Object
  .fromEntries(
    SPECS.map((spec) => [spec.name, decoderFamily(spec)]),
  ) as Record<DecoderFamilyName, DecoderFamily>;
