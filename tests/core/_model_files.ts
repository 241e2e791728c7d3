/**
 * Writers of the model files the loaders read, for tests: tiny LLaMA checkpoints as GGUF files and
 * llama2.c exports, with query and key rows in the interleaved-pair RoPE layout those formats use.
 */
import {
  type Checkpoint,
  type DecoderConfig,
  type DecoderParamSpec,
  encodeFloats,
  encodeGgufHeader,
  ggmlTypeNamed,
  type GgufEntry,
  ggufTensorName,
  LLAMA2C_MAGIC,
  paramSpecs,
  quantize,
  toInterleavedRope,
} from "@inheritune/core";
import { rand } from "../_util.ts";

/** A tiny LLaMA checkpoint, every tensor distinct, so a swapped or transposed tensor shows. */
export function tinyLlama(overrides: Partial<DecoderConfig> = {}): Checkpoint & { config: DecoderConfig } {
  const config: DecoderConfig = {
    family: "llama",
    n_layer: 2,
    n_head: 4,
    n_embd: 16,
    n_kv_head: 2,
    n_hidden: 24,
    vocab_size: 13,
    n_positions: 32,
    norm_eps: 1e-5,
    rope_theta: 10000,
    tie_embeddings: true,
    ...overrides,
  };
  const params = new Map(
    paramSpecs(config).map((s, i) => [s.name, rand(s.shape.reduce((a, b) => a * b, 1), 300 + i)]),
  );
  return { config, params };
}

/** A tensor of a GGUF file: its shape (outermost first), ggml type and raw bytes. */
export interface GgufTensorData {
  shape: number[];
  type: number;
  bytes: Uint8Array;
}

/**
 * The bytes of a GGUF v3 file with `metadata` and `tensors`, data aligned to 32 bytes: core's
 * header encoder, then the data, taken as given so that a test can describe a malformed file.
 */
export function ggufBytes(
  metadata: Record<string, GgufEntry>,
  tensors: Record<string, GgufTensorData>,
): Uint8Array {
  const padded = (n: number) => Math.ceil(n / 32) * 32;
  const infos = Object.entries(tensors).map(([name, t]) => ({ ...t, name, bytes: t.bytes.length }));
  const head = encodeGgufHeader(new Map(Object.entries(metadata)), infos);
  const out = new Uint8Array(head.length + infos.reduce((n, t) => n + padded(t.bytes), 0));
  out.set(head);
  let at = head.length;
  for (const t of Object.values(tensors)) {
    out.set(t.bytes, at);
    at += padded(t.bytes.length);
  }
  return out;
}

/**
 * A llama GGUF file of `model` with llama.cpp's names: matrices F32, or F16 (`type` 1) or BF16
 * (30), or the ggml type `mix` names for a tensor (quantized as llama.cpp does); `replace` stores
 * one tensor as the given raw bytes of another ggml type instead; `metadata` adds keys (a
 * tokenizer's); `extra` adds F32 tensors.
 */
export function llamaGguf(
  { config, params }: Checkpoint & { config: DecoderConfig },
  options: {
    type?: 0 | 1 | 30;
    mix?: (name: string) => string | undefined;
    metadata?: Record<string, GgufEntry>;
    architecture?: string;
    replace?: { name: string; type: number; bytes: Uint8Array };
    extra?: Record<string, Float32Array>;
  } = {},
): Uint8Array {
  const type = options.type ?? 0;
  const dtype = ({ 0: "F32", 1: "F16", 30: "BF16" } as const)[type];
  const hs = config.n_embd / config.n_head;
  const tensors: Record<string, GgufTensorData> = {};
  const add = (name: string, shape: number[], data: Float32Array) => {
    const mixed = options.mix?.(name);
    tensors[name] = mixed
      ? { shape, type: ggmlTypeNamed(mixed)!.id, bytes: quantize(mixed, data, { rowLength: shape.at(-1) }) }
      : {
        shape,
        type: shape.length > 1 ? type : 0,
        bytes: encodeFloats(shape.length > 1 ? dtype : "F32", data).slice(),
      };
  };
  for (const spec of paramSpecs(config)) {
    let data = params.get(spec.name)!;
    if (spec.key === "self_attn.q_proj.weight") data = toInterleavedRope(data, { heads: config.n_head, hs });
    if (spec.key === "self_attn.k_proj.weight") {
      data = toInterleavedRope(data, { heads: config.n_kv_head, hs });
    }
    add(ggufTensorName(spec as DecoderParamSpec), spec.shape, data);
  }
  for (const [name, data] of Object.entries(options.extra ?? {})) add(name, [data.length], data);
  const r = options.replace;
  if (r) tensors[r.name] = { ...tensors[r.name], type: r.type, bytes: r.bytes };
  return ggufBytes({
    "general.architecture": [8, options.architecture ?? "llama"],
    "llama.context_length": [4, config.n_positions],
    "llama.embedding_length": [4, config.n_embd],
    "llama.feed_forward_length": [4, config.n_hidden],
    "llama.block_count": [4, config.n_layer],
    "llama.attention.head_count": [4, config.n_head],
    "llama.attention.head_count_kv": [4, config.n_kv_head],
    "llama.attention.layer_norm_rms_epsilon": [6, config.norm_eps],
    "llama.rope.freq_base": [6, config.rope_theta],
    ...options.metadata,
  }, tensors);
}

/** A llama2.c export of `model`: legacy (version 0), version 1 (f32) or version 2 (Q8_0 in groups of `groupSize`). */
export function llama2cFile(
  { config, params }: Checkpoint & { config: DecoderConfig },
  options: { version: 0 | 1 | 2; groupSize?: number },
): Uint8Array {
  const { n_layer: L, n_embd: dim, n_head: heads, n_kv_head: kvHeads, n_hidden: hidden, vocab_size: V } =
    config;
  const hs = dim / heads;
  const layer = (key: string) =>
    Array.from({ length: L }, (_, l) => {
      const w = params.get(`model.layers.${l}.${key}`)!;
      if (key === "self_attn.q_proj.weight") return toInterleavedRope(w, { heads, hs });
      if (key === "self_attn.k_proj.weight") return toInterleavedRope(w, { heads: kvHeads, hs });
      return w;
    });
  const shared = config.tie_embeddings;
  const embed = params.get("model.embed_tokens.weight")!, norm = params.get("model.norm.weight")!;
  const head = shared ? [] : [params.get("lm_head.weight")!];
  const matrices = [
    ...layer("self_attn.q_proj.weight"),
    ...layer("self_attn.k_proj.weight"),
    ...layer("self_attn.v_proj.weight"),
    ...layer("self_attn.o_proj.weight"),
    ...layer("mlp.gate_proj.weight"),
    ...layer("mlp.down_proj.weight"),
    ...layer("mlp.up_proj.weight"),
  ];
  const dims = [dim, hidden, L, heads, kvHeads, V, config.n_positions];
  const chunks: Uint8Array[] = [];
  const f32 = (...arrays: Float32Array[]) =>
    arrays.forEach((a) => chunks.push(new Uint8Array(a.slice().buffer)));
  if (options.version === 0) {
    chunks.push(new Uint8Array(Int32Array.from([...dims.slice(0, 5), shared ? V : -V, dims[6]]).buffer));
    const rope = new Float32Array((config.n_positions * hs) / 2);
    f32(
      embed,
      ...layer("input_layernorm.weight"),
      ...matrices.slice(0, 4 * L),
      ...layer("post_attention_layernorm.weight"),
    );
    f32(...matrices.slice(4 * L), norm, rope, rope, ...head);
  } else {
    const header = new Uint8Array(256);
    const view = new DataView(header.buffer);
    view.setUint32(0, LLAMA2C_MAGIC, true);
    view.setInt32(4, options.version, true);
    dims.forEach((d, i) => view.setInt32(8 + 4 * i, d, true));
    header[36] = shared ? 1 : 0;
    if (options.version === 2) view.setInt32(37, options.groupSize!, true);
    chunks.push(header);
    f32(...layer("input_layernorm.weight"), ...layer("post_attention_layernorm.weight"), norm);
    const weights = [embed, ...matrices, ...head];
    if (options.version === 1) f32(...weights);
    else {
      const gs = options.groupSize!;
      const scales: Float32Array[] = [];
      for (const w of weights) {
        const q = new Int8Array(w.length);
        const s = new Float32Array(w.length / gs);
        for (let g = 0; g < s.length; g++) {
          s[g] = Math.max(...Array.from(w.subarray(g * gs, (g + 1) * gs), Math.abs)) / 127;
          for (let i = g * gs; i < (g + 1) * gs; i++) q[i] = Math.round(w[i] / s[g]);
        }
        chunks.push(new Uint8Array(q.buffer));
        scales.push(s);
      }
      f32(...scales);
    }
  }
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
