/**
 * A GGUF file of `general.architecture` llama as a checkpoint: the configuration from the
 * `llama.*` keys, llama.cpp's tensor names mapped to Hugging Face's, query and key rows permuted
 * from llama.cpp's interleaved-pair RoPE layout to the engine's rotate-half layout, and the
 * `tokenizer.ggml.*` vocabulary as the tokenizer file a Hugging Face folder would carry. Tensors
 * are read one at a time, so loading holds one f32 copy of the weights.
 *
 * @module
 */
import type { Checkpoint } from "./family.ts";
import { DEFAULT_ROPE_THETA, type LlamaConfig, numberReader } from "./config.ts";
import { type GgufFile, openGguf } from "./gguf.ts";
import { fromInterleavedRope, LLAMA_EMBED, LLAMA_HEAD, LLAMA_NORM, llamaParamSpecs } from "./llama.ts";
import type { ParamMap, ParamSpec } from "./params.ts";
import { ggufTokenizerFiles } from "./tokenizer.ts";
import { CheckpointError } from "./safetensors.ts";
import { checkedConfig } from "./_file_io.ts";

/** llama.cpp's name of each block tensor (after `blk.{i}.`), by Hugging Face name. */
const BLOCK_NAMES: Record<string, string> = {
  "input_layernorm.weight": "attn_norm.weight",
  "self_attn.q_proj.weight": "attn_q.weight",
  "self_attn.k_proj.weight": "attn_k.weight",
  "self_attn.v_proj.weight": "attn_v.weight",
  "self_attn.o_proj.weight": "attn_output.weight",
  "post_attention_layernorm.weight": "ffn_norm.weight",
  "mlp.gate_proj.weight": "ffn_gate.weight",
  "mlp.up_proj.weight": "ffn_up.weight",
  "mlp.down_proj.weight": "ffn_down.weight",
};

/** llama.cpp's name in a GGUF file of a LLaMA parameter-table tensor. */
export function ggufTensorName(spec: ParamSpec): string {
  if (spec.layer >= 0) return `blk.${spec.layer}.${BLOCK_NAMES[spec.key]}`;
  return {
    [LLAMA_EMBED]: "token_embd.weight",
    [LLAMA_NORM]: "output_norm.weight",
    [LLAMA_HEAD]: "output.weight",
  }[
    spec.name
  ]!;
}

function configOf(gguf: GgufFile, untied: boolean): LlamaConfig {
  const { path, metadata } = gguf;
  const arch = metadata.get("general.architecture");
  if (arch !== "llama") {
    throw new CheckpointError(
      `${path}: general.architecture ${JSON.stringify(arch)} is not supported (llama only)`,
    );
  }
  // Keys below `llama.`, so the problem names the whole key: "metadata llama.block_count is missing".
  const num = numberReader((key) => metadata.get(`llama.${key}`), (problem) => {
    throw new CheckpointError(`${path}: metadata llama.${problem}`);
  });
  const embed = gguf.tensors.get("token_embd.weight");
  if (!embed) throw new CheckpointError(`${path}: tensor token_embd.weight is missing`);
  const heads = num("attention.head_count");
  const config: LlamaConfig = {
    family: "llama",
    n_layer: num("block_count"),
    n_head: heads,
    n_embd: num("embedding_length"),
    n_kv_head: num("attention.head_count_kv", heads),
    n_hidden: num("feed_forward_length"),
    vocab_size: num("vocab_size", embed.shape[0]),
    n_positions: num("context_length"),
    norm_eps: num("attention.layer_norm_rms_epsilon"),
    rope_theta: num("rope.freq_base", DEFAULT_ROPE_THETA),
    tie_embeddings: !untied,
  };
  for (const [key, field] of [["bos", "bos_token_id"], ["eos", "eos_token_id"]] as const) {
    const id = metadata.get(`tokenizer.ggml.${key}_token_id`);
    if (typeof id === "number") config[field] = id;
  }
  const rot = metadata.get("llama.rope.dimension_count");
  if (rot !== undefined && Number(rot) !== config.n_embd / config.n_head) {
    throw new CheckpointError(
      `${path}: llama.rope.dimension_count ${rot} is not the head size ${
        config.n_embd / config.n_head
      } (partial RoPE is not supported)`,
    );
  }
  const elements = [...gguf.tensors.values()].reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
  return checkedConfig(path, config, { maxParams: elements });
}

function equal(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * Loads a GGUF llama model, its tensors of any type `DEQUANTIZE_TYPES` names converted to f32.
 *
 * @throws {CheckpointError} naming the file: not GGUF, another architecture, a missing or
 * misshapen tensor, an unsupported element type, a truncated file.
 */
export async function loadGgufModel(path: string): Promise<Checkpoint> {
  const gguf = await openGguf(path);
  try {
    // A head stored beside the embedding is tied when it is the same matrix (as in llama2.c exports).
    const early = new Map<string, Float32Array>();
    for (const name of ["token_embd.weight", "output.weight"]) {
      const tensor = gguf.tensors.get(name);
      if (tensor) early.set(name, await gguf.read(tensor));
    }
    const embed = early.get("token_embd.weight"), head = early.get("output.weight");
    if (embed && head && equal(embed, head)) early.delete("output.weight");
    const config = configOf(gguf, early.has("output.weight"));
    const hs = config.n_embd / config.n_head;
    const params: ParamMap = new Map();
    for (const spec of llamaParamSpecs(config)) {
      const name = ggufTensorName(spec);
      const tensor = gguf.tensors.get(name);
      if (!tensor) throw new CheckpointError(`${path}: tensor ${name} is missing`);
      if (tensor.shape.join(",") !== spec.shape.join(",")) {
        throw new CheckpointError(
          `${path}: tensor ${name} has shape [${tensor.shape}], the configuration needs [${spec.shape}]`,
        );
      }
      let data = early.get(name) ?? await gguf.read(tensor);
      if (spec.key === "self_attn.q_proj.weight") {
        data = fromInterleavedRope(data, { heads: config.n_head, hs });
      }
      if (spec.key === "self_attn.k_proj.weight") {
        data = fromInterleavedRope(data, { heads: config.n_kv_head, hs });
      }
      params.set(spec.name, data);
    }
    const tokenizerFiles = ggufTokenizerFiles(gguf);
    return { config, params, ...(tokenizerFiles.size > 0 ? { tokenizerFiles } : {}) };
  } finally {
    gguf.close();
  }
}
