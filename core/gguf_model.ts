/**
 * A GGUF file of llama.cpp's architecture `gpt2` (the names of `GPT2_GGUF_NAMES`, Conv1D weights
 * transposed back, a tied head) or of a decoder family's (`llama`, `qwen2`, `qwen3`, `phi3`,
 * `gemma3`: the `gguf` forms of `families.ts`) as a checkpoint: the configuration from the
 * `<arch>.*` keys (the prefix is `general.architecture`), llama.cpp's tensor names mapped to the
 * family's, fused tensors split, query and key rows permuted from llama.cpp's interleaved-pair RoPE
 * layout where the architecture uses it (`llama`), the norm shift of Gemma's converter undone, Llama
 * 3's RoPE scaling read from the per-frequency divisors of `rope_freqs.weight` (`rope_freq_factors`),
 * and the `tokenizer.ggml.*` vocabulary as the tokenizer file a Hugging Face folder would carry.
 * Tensors are read one at a time, so loading holds one f32 copy of the weights.
 *
 * @module
 */
import type { Checkpoint } from "./family.ts";
import { type DecoderConfig, DEFAULT_ROPE_THETA, type GPT2Config, headSize, numberReader } from "./config.ts";
import { type GgufFile, openGguf } from "./gguf.ts";
import { type DecoderParamSpec, fromInterleavedRope, isNormRole } from "./decoder.ts";
import { DECODER_FAMILIES_BY_NAME, type DecoderFamily, GGUF_NAMES } from "./families.ts";
import { GPT2_GGUF_NAMES, gpt2ParamSpecs } from "./gpt2.ts";
import { type ParamMap, type ParamSpec, transpose } from "./params.ts";
import { ggufTokenizerFiles } from "./tokenizer.ts";
import { CheckpointError } from "./safetensors.ts";
import { checkedConfig } from "./_file_io.ts";

/** llama.cpp's name in a GGUF file of a decoder parameter-table tensor (unfused). */
export function ggufTensorName(spec: DecoderParamSpec): string {
  return spec.layer >= 0 ? `blk.${spec.layer}.${GGUF_NAMES[spec.role]}` : GGUF_NAMES[spec.role];
}

/** llama.cpp's name of a GPT-2 table tensor, and whether it is stored transposed. */
export function gpt2GgufTensor(spec: ParamSpec): { name: string; transposed: boolean } {
  const { name, transposed } = GPT2_GGUF_NAMES[spec.key];
  return { name: spec.layer >= 0 ? `blk.${spec.layer}.${name}` : name, transposed: transposed === true };
}

/** The families whose GGUF files are read, by llama.cpp architecture. */
const BY_ARCH = new Map(
  Object.values(DECODER_FAMILIES_BY_NAME).filter((f) => f.gguf).map((f) => [f.gguf!.arch, f]),
);

/** llama.cpp's per-frequency RoPE divisors of a llama (Llama 3's scaling). */
const ROPE_FREQS = "rope_freqs.weight";
/** Phi-3's long-context RoPE factors (`longrope`), not supported. */
const LONGROPE_TENSORS = ["rope_factors_long.weight", "rope_factors_short.weight"];

function configOf(gguf: GgufFile, family: DecoderFamily, untied: boolean): DecoderConfig {
  const { path, metadata } = gguf;
  const arch = family.gguf!.arch;
  // Keys below `<arch>.`, so the problem names the whole key: "metadata qwen3.block_count is missing".
  const fail = (problem: string): never => {
    throw new CheckpointError(`${path}: metadata ${arch}.${problem}`);
  };
  const get = (key: string): unknown => metadata.get(`${arch}.${key}`);
  const num = numberReader(get, fail);
  const embed = gguf.tensors.get(GGUF_NAMES.embed);
  if (!embed) throw new CheckpointError(`${path}: tensor ${GGUF_NAMES.embed} is missing`);
  const heads = num("attention.head_count");
  const C = num("embedding_length");
  const config: DecoderConfig = {
    family: family.name,
    n_layer: num("block_count"),
    n_head: heads,
    n_embd: C,
    n_kv_head: num("attention.head_count_kv", heads),
    n_hidden: num("feed_forward_length"),
    vocab_size: num("vocab_size", embed.shape[0]),
    n_positions: num("context_length"),
    norm_eps: num("attention.layer_norm_rms_epsilon"),
    rope_theta: num("rope.freq_base", family.name === "gemma3_text" ? 1_000_000 : DEFAULT_ROPE_THETA),
    tie_embeddings: !untied,
    ...family.features,
  };
  const hs = num("attention.key_length", C / heads);
  if (hs !== C / heads) config.head_dim = hs;
  if (num("attention.value_length", hs) !== hs) {
    fail(`attention.value_length differs from the key length ${hs}`);
  }
  const rot = get("rope.dimension_count");
  if (rot !== undefined && Number(rot) !== hs) {
    fail(`rope.dimension_count ${rot} is not the head size ${hs} (partial RoPE is not supported)`);
  }
  const scaling = get("rope.scaling.type");
  if (scaling === "linear") config.rope_scaling = { rope_type: "linear", factor: num("rope.scaling.factor") };
  else if (scaling !== undefined && scaling !== "none") {
    fail(`rope.scaling.type ${JSON.stringify(scaling)} is not supported (none or linear)`);
  }
  const window = get("attention.sliding_window");
  if (family.name === "gemma3_text") {
    // llama.cpp's Gemma 3: blocks slide where `sliding_window_pattern` (a flag per block, or older
    // files: every n-th block global, by default 6) says, local blocks at θ = 10000.
    const pattern = get("attention.sliding_window_pattern");
    const flags = Array.isArray(pattern)
      ? pattern.map((p) => p === true)
      : Array.from({ length: config.n_layer }, (_, i) =>
        (i + 1) % num("attention.sliding_window_pattern", 6) !== 0);
    if (flags.length !== config.n_layer) {
      fail(`attention.sliding_window_pattern has ${flags.length} entries, not ${config.n_layer}`);
    }
    config.layer_types = flags.map((f) => f ? "sliding_attention" : "full_attention");
    config.sliding_window = num("attention.sliding_window");
    config.rope_local_theta = num("rope.freq_base_swa", 10000);
    // The attention scale is query_pre_attn_scalar^-1/2 (hs^-1/2 where the file states none).
    const scale = num("attention.scale", 1 / Math.sqrt(hs));
    const scalar = 1 / (scale * scale);
    config.query_pre_attn_scalar = Math.abs(scalar - Math.round(scalar)) < 1e-3 * scalar
      ? Math.round(scalar)
      : scalar;
    if (get("final_logit_softcapping") !== undefined) {
      config.final_logit_softcapping = num("final_logit_softcapping");
    }
  } else if (window !== undefined && family.name === "phi3") {
    config.layer_types = Array(config.n_layer).fill("sliding_attention");
    config.sliding_window = num("attention.sliding_window");
  }
  for (const [key, field] of [["bos", "bos_token_id"], ["eos", "eos_token_id"]] as const) {
    const id = metadata.get(`tokenizer.ggml.${key}_token_id`);
    if (typeof id === "number") config[field] = id;
  }
  const elements = [...gguf.tensors.values()].reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
  return checkedConfig(path, config, { maxParams: elements });
}

function equal(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** A GGUF file of architecture `gpt2`: the keys llama.cpp's converter writes, tensors of `GPT2_GGUF_NAMES`. */
async function loadGpt2Gguf(gguf: GgufFile): Promise<Checkpoint> {
  const { path, metadata, tensors } = gguf;
  const fail = (problem: string): never => {
    throw new CheckpointError(`${path}: metadata gpt2.${problem}`);
  };
  const num = numberReader((key) => metadata.get(`gpt2.${key}`), fail);
  const embed = tensors.get(GPT2_GGUF_NAMES["wte.weight"].name);
  if (!embed) throw new CheckpointError(`${path}: tensor ${GPT2_GGUF_NAMES["wte.weight"].name} is missing`);
  const C = num("embedding_length"), heads = num("attention.head_count");
  if (num("feed_forward_length", 4 * C) !== 4 * C) fail(`feed_forward_length is not 4·embedding_length`);
  if (num("attention.head_count_kv", heads) !== heads) {
    fail(`attention.head_count_kv differs from head_count`);
  }
  const elements = [...tensors.values()].reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
  const config: GPT2Config = checkedConfig(path, {
    n_layer: num("block_count"),
    n_head: heads,
    n_embd: C,
    vocab_size: num("vocab_size", embed.shape[0]),
    n_positions: num("context_length"),
    layer_norm_epsilon: num("attention.layer_norm_epsilon"),
  }, { maxParams: elements });
  const params: ParamMap = new Map();
  for (const spec of gpt2ParamSpecs(config)) {
    const { name, transposed } = gpt2GgufTensor(spec);
    const tensor = tensors.get(name);
    if (!tensor) throw new CheckpointError(`${path}: tensor ${name} is missing`);
    const want = transposed ? spec.shape.toReversed() : spec.shape;
    if (tensor.shape.join(",") !== want.join(",")) {
      throw new CheckpointError(
        `${path}: tensor ${name} has shape [${tensor.shape}], the configuration needs [${want}]`,
      );
    }
    const data = await gguf.read(tensor);
    params.set(spec.name, transposed ? transpose(data, want[0], want[1]) : data);
  }
  const head = tensors.get(GGUF_NAMES.head);
  if (head && !equal(await gguf.read(head), params.get("wte.weight")!)) {
    throw new CheckpointError(
      `${path}: tensor ${GGUF_NAMES.head} differs from ${embed.name}; only a tied LM head is supported`,
    );
  }
  const tokenizerFiles = ggufTokenizerFiles(gguf);
  return { config, params, ...(tokenizerFiles.size > 0 ? { tokenizerFiles } : {}) };
}

/**
 * Loads a GGUF model of GPT-2 or a decoder family, its tensors of any type `DEQUANTIZE_TYPES`
 * names converted to f32.
 *
 * @throws {CheckpointError} naming the file: not GGUF, another architecture, a missing or
 * misshapen tensor, an unsupported element type or RoPE, a truncated file.
 */
export async function loadGgufModel(path: string): Promise<Checkpoint> {
  const gguf = await openGguf(path);
  try {
    const arch = gguf.metadata.get("general.architecture");
    if (arch === "gpt2") return await loadGpt2Gguf(gguf);
    const family = typeof arch === "string" ? BY_ARCH.get(arch) : undefined;
    if (!family) {
      throw new CheckpointError(
        `${path}: general.architecture ${JSON.stringify(arch)} is not supported (gpt2, ${
          [...BY_ARCH.keys()].join(", ")
        })`,
      );
    }
    const form = family.gguf!;
    // llama.cpp divides each RoPE frequency of a llama by rope_freqs (Llama 3's scaling); Phi-3's
    // long-context pair of factor lists is another scaling, and other architectures read none.
    const freqs = arch === "llama" ? gguf.tensors.get(ROPE_FREQS) : undefined;
    for (const name of arch === "llama" ? LONGROPE_TENSORS : [ROPE_FREQS, ...LONGROPE_TENSORS]) {
      if (gguf.tensors.has(name)) {
        throw new CheckpointError(`${path}: tensor ${name} (per-frequency RoPE factors) is not supported`);
      }
    }
    // A head stored beside the embedding is tied when it is the same matrix (as in llama2.c exports).
    const early = new Map<string, Float32Array>();
    for (const name of [GGUF_NAMES.embed, GGUF_NAMES.head]) {
      const tensor = gguf.tensors.get(name);
      if (tensor) early.set(name, await gguf.read(tensor));
    }
    const embed = early.get(GGUF_NAMES.embed), head = early.get(GGUF_NAMES.head);
    if (embed && head && equal(embed, head)) early.delete(GGUF_NAMES.head);
    const config = configOf(gguf, family, early.has(GGUF_NAMES.head));
    const hs = headSize(config);
    if (freqs) {
      if (freqs.shape.join(",") !== String(hs / 2)) {
        throw new CheckpointError(
          `${path}: tensor ${ROPE_FREQS} has shape [${freqs.shape}], the head size ${hs} needs [${hs / 2}]`,
        );
      }
      config.rope_freq_factors = [...await gguf.read(freqs)];
      checkedConfig(path, config);
    }
    const specs = family.paramSpecs(config) as DecoderParamSpec[];
    // Fused tensors: the stored name of each role that lives in one, and where its rows start.
    const fusedOf = new Map(form.fused.flatMap((f) => f.roles.map((role) => [role, f])));
    const params: ParamMap = new Map();
    let lastFused: { name: string; data: Float32Array } | undefined; // read once for all its parts
    for (const spec of specs) {
      const f = spec.layer >= 0 ? fusedOf.get(spec.role as never) : undefined;
      const name = f ? `blk.${spec.layer}.${f.stored}` : ggufTensorName(spec);
      const tensor = gguf.tensors.get(name);
      if (!tensor) throw new CheckpointError(`${path}: tensor ${name} is missing`);
      const parts = f
        ? f.roles.map((role) => specs.find((s) => s.layer === spec.layer && s.role === role)!)
        : [spec];
      const rows = parts.reduce((n, p) => n + p.shape[0], 0);
      const want = [rows, ...spec.shape.slice(1)];
      if (tensor.shape.join(",") !== want.join(",")) {
        throw new CheckpointError(
          `${path}: tensor ${name} has shape [${tensor.shape}], the configuration needs [${want}]`,
        );
      }
      let data = early.get(name) ?? (lastFused?.name === name ? lastFused.data : await gguf.read(tensor));
      if (f) {
        lastFused = { name, data };
        const first = parts.slice(0, parts.indexOf(spec)).reduce((n, p) => n + p.shape[0], 0);
        const cols = spec.shape.slice(1).reduce((a, b) => a * b, 1);
        data = data.slice(first * cols, (first + spec.shape[0]) * cols);
      }
      if (form.interleavedRope && spec.role === "q_proj") {
        data = fromInterleavedRope(data, { heads: config.n_head, hs });
      }
      if (form.interleavedRope && spec.role === "k_proj") {
        data = fromInterleavedRope(data, { heads: config.n_kv_head, hs });
      }
      if (form.normShift !== 0 && isNormRole(spec.role)) data = data.map((v) => v - form.normShift);
      params.set(spec.name, data);
    }
    const tokenizerFiles = ggufTokenizerFiles(gguf);
    return { config, params, ...(tokenizerFiles.size > 0 ? { tokenizerFiles } : {}) };
  } finally {
    gguf.close();
  }
}
