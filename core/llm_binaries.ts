/**
 * The flat `.bin` model files of llm.c (GPT-2) and llama2.c (LLaMA), read into checkpoints.
 *
 * - llm.c: 256 int32 header (magic 20240326, version 3 f32 or 5 bf16, maxT, V, L, NH, C, Vp),
 *   then every parameter in llm.c's order, linear weights `(out, in)`, the token table padded to
 *   Vp rows.
 * - llama2.c (`export.py`), linear weights `(out, in)` with Q/K rows in Meta's interleaved-pair
 *   RoPE layout (permuted to the engine's at load): the legacy export (7 int32: dim, hidden_dim,
 *   n_layers, n_heads, n_kv_heads, vocab_size — negative when the classifier is not shared —
 *   seq_len; then f32 tensors), version 1 (a 256-byte header starting with magic "ak42", f32) and
 *   version 2 (the same header plus the group size, weights quantised to Q8_0 groups).
 *
 * @module
 */
import { type DecoderConfig, DEFAULT_ROPE_THETA, type GPT2Config, type ModelConfig } from "./config.ts";
import type { Checkpoint } from "./family.ts";
import { DECODER_NAMES, fromInterleavedRope } from "./decoder.ts";
import { paramSpecs } from "./model.ts";
import { type ParamMap, transpose } from "./params.ts";
import { CheckpointError, decodeFloats, type FloatDtype } from "./safetensors.ts";
import { checkedConfig, readAt } from "./_file_io.ts";

/** llm.c's model-file magic number (`gpt2_124M.bin`). */
export const LLMC_MAGIC = 20240326;
/** llama2.c's magic number of versioned exports: "ak42" as a little-endian uint32. */
export const LLAMA2C_MAGIC = 0x616b3432;

const HEADER_BYTES = 256 * 4;
const LLAMA2C_HEADER_BYTES = 256;

/** Orders `params` as the table of `config`. */
function ordered(config: ModelConfig, params: ParamMap): ParamMap {
  return new Map(paramSpecs(config).map((s) => [s.name, params.get(s.name)!]));
}

// ---------------------------------------------------------------------------------------------
// llm.c

/** One llm.c tensor, all layers together: `(L, rows, cols)` in the file. */
interface LlmcTensor {
  /** Our name after `h.{i}.` (or the full name for a non-block tensor). */
  name: string;
  /** Rows and columns of one layer's slice as stored. */
  rows: number;
  cols: number;
  /** Whether the slice is an (out, in) weight to transpose to our (in, out). */
  transpose: boolean;
  /** Whether this tensor has one slice per layer. */
  perLayer: boolean;
}

function llmcLayout(C: number, maxT: number, Vp: number): LlmcTensor[] {
  const block = (name: string, rows: number, cols: number, transpose = false): LlmcTensor => ({
    name,
    rows,
    cols,
    transpose,
    perLayer: true,
  });
  return [
    { name: "wte.weight", rows: Vp, cols: C, transpose: false, perLayer: false },
    { name: "wpe.weight", rows: maxT, cols: C, transpose: false, perLayer: false },
    block("ln_1.weight", 1, C),
    block("ln_1.bias", 1, C),
    block("attn.c_attn.weight", 3 * C, C, true),
    block("attn.c_attn.bias", 1, 3 * C),
    block("attn.c_proj.weight", C, C, true),
    block("attn.c_proj.bias", 1, C),
    block("ln_2.weight", 1, C),
    block("ln_2.bias", 1, C),
    block("mlp.c_fc.weight", 4 * C, C, true),
    block("mlp.c_fc.bias", 1, 4 * C),
    block("mlp.c_proj.weight", C, 4 * C, true),
    block("mlp.c_proj.bias", 1, C),
    { name: "ln_f.weight", rows: 1, cols: C, transpose: false, perLayer: false },
    { name: "ln_f.bias", rows: 1, cols: C, transpose: false, perLayer: false },
  ];
}

/**
 * Loads an llm.c GPT-2 model file (version 3, f32, or 5, bf16).
 *
 * @throws {CheckpointError} naming the file: too short, a wrong magic or version, a truncated file.
 */
export async function loadLlmc(path: string): Promise<Checkpoint> {
  using file = await Deno.open(path, { read: true });
  const size = (await file.stat()).size;
  const headerBytes = new Uint8Array(HEADER_BYTES);
  if (!await readAt(file, 0, headerBytes)) {
    throw new CheckpointError(`${path}: ${size} bytes, too short for an llm.c header (or not a model file)`);
  }
  const h = new Int32Array(headerBytes.buffer);
  if (h[0] !== LLMC_MAGIC) {
    throw new CheckpointError(`${path}: magic ${h[0]} is not llm.c's model magic ${LLMC_MAGIC}`);
  }
  if (h[1] !== 3 && h[1] !== 5) {
    throw new CheckpointError(`${path}: llm.c model version ${h[1]} is not 3 (f32) or 5 (bf16)`);
  }
  const [maxT, V, L, NH, C, Vp] = [h[2], h[3], h[4], h[5], h[6], h[7]];
  const config: GPT2Config = checkedConfig(path, {
    n_layer: L,
    n_head: NH,
    n_embd: C,
    vocab_size: V,
    n_positions: maxT,
    layer_norm_epsilon: 1e-5,
    tokenizer: "gpt2",
  });
  if (!(Vp >= V)) {
    throw new CheckpointError(`${path}: padded vocabulary ${Vp} is smaller than vocabulary ${V}`);
  }
  const dtype: FloatDtype = h[1] === 3 ? "F32" : "BF16";
  const elementBytes = dtype === "F32" ? 4 : 2;
  const layout = llmcLayout(C, maxT, Vp);
  const count = layout.reduce((s, t) => s + t.rows * t.cols * (t.perLayer ? L : 1), 0);
  const expected = HEADER_BYTES + count * elementBytes;
  if (size !== expected) {
    throw new CheckpointError(
      `${path}: ${size} bytes, the header's model needs ${expected}: truncated or not this model`,
    );
  }
  const params: ParamMap = new Map();
  let offset = HEADER_BYTES;
  for (const t of layout) {
    for (let l = 0; l < (t.perLayer ? L : 1); l++) {
      const bytes = new Uint8Array(t.rows * t.cols * elementBytes);
      if (!await readAt(file, offset, bytes)) {
        throw new CheckpointError(`${path}: file ended inside ${t.name}`);
      }
      offset += bytes.length;
      let data = decodeFloats(dtype, bytes);
      if (t.transpose) data = transpose(data, t.rows, t.cols);
      // Rows beyond the vocabulary are llm.c's padding, never used.
      else if (t.name === "wte.weight") data = data.slice(0, V * C);
      params.set(t.perLayer ? `h.${l}.${t.name}` : t.name, data);
    }
  }
  return { config, params: ordered(config, params) };
}

// ---------------------------------------------------------------------------------------------
// llama2.c

/** One llama2.c tensor group as stored: all layers' slices one after another when `perLayer`. */
interface Llama2cTensor {
  /** Our name, or the name after `model.layers.{i}.`; "" for llama2.c's RoPE tables, skipped. */
  name: string;
  /** Elements of one slice. */
  size: number;
  /** One slice per layer. */
  perLayer: boolean;
  /** Stored in Q8_0 groups in version 2. */
  quantized: boolean;
}

interface Llama2cHeader {
  version: 0 | 1 | 2;
  dim: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  vocab: number;
  seqLen: number;
  shared: boolean;
  groupSize: number;
  dataStart: number;
}

function llama2cLayout(h: Llama2cHeader): Llama2cTensor[] {
  const hs = h.dim / h.heads, kv = h.kvHeads * hs;
  const t = (name: string, size: number, perLayer = true, quantized = true): Llama2cTensor => ({
    name,
    size,
    perLayer,
    quantized,
  });
  const norms = [
    t("input_layernorm.weight", h.dim, true, false),
    t("post_attention_layernorm.weight", h.dim, true, false),
  ];
  const embed = t(DECODER_NAMES.outer.embed, h.vocab * h.dim, false);
  const matrices = [
    t("self_attn.q_proj.weight", h.dim * h.dim),
    t("self_attn.k_proj.weight", kv * h.dim),
    t("self_attn.v_proj.weight", kv * h.dim),
    t("self_attn.o_proj.weight", h.dim * h.dim),
    t("mlp.gate_proj.weight", h.hidden * h.dim),
    t("mlp.down_proj.weight", h.dim * h.hidden),
    t("mlp.up_proj.weight", h.hidden * h.dim),
  ];
  const head = h.shared ? [] : [t(DECODER_NAMES.outer.head, h.vocab * h.dim, false)];
  const final = t(DECODER_NAMES.outer.final_norm, h.dim, false, false);
  if (h.version === 0) {
    const rope = t("", (h.seqLen * hs) / 2, false, false);
    return [
      embed,
      norms[0],
      ...matrices.slice(0, 4),
      norms[1],
      ...matrices.slice(4),
      final,
      rope,
      rope,
      ...head,
    ];
  }
  return [...norms, final, embed, ...matrices, ...head];
}

function llama2cBytes(h: Llama2cHeader): number {
  return llama2cLayout(h).reduce((n, t) => {
    const elements = t.size * (t.perLayer ? h.layers : 1);
    return n + (h.version === 2 && t.quantized ? elements + (elements / h.groupSize) * 4 : elements * 4);
  }, h.dataStart);
}

async function readLlama2cHeader(path: string, file: Deno.FsFile, size: number): Promise<Llama2cHeader> {
  const bytes = new Uint8Array(Math.min(size, LLAMA2C_HEADER_BYTES));
  await readAt(file, 0, bytes);
  const view = new DataView(bytes.buffer);
  const int = (i: number): number => (i + 4 <= bytes.length ? view.getInt32(i, true) : 0);
  const magic = view.getUint32(0, true);
  // The 7 int32 of llama2.c's model shape at byte `at`.
  const dims = (at: number) => {
    const [dim, hidden, layers, heads, kvHeads, vocab, seqLen] = [0, 1, 2, 3, 4, 5, 6].map((i) =>
      int(at + 4 * i)
    );
    return { dim, hidden, layers, heads, kvHeads, vocab, seqLen };
  };
  if (magic === LLAMA2C_MAGIC) {
    const version = int(4);
    if (version !== 1 && version !== 2) {
      throw new CheckpointError(`${path}: llama2.c export version ${version} is not 1 (f32) or 2 (Q8_0)`);
    }
    return {
      version,
      ...dims(8),
      shared: bytes[36] !== 0,
      groupSize: version === 2 ? int(37) : 0,
      dataStart: LLAMA2C_HEADER_BYTES,
    };
  }
  const d = dims(0);
  const legacy: Llama2cHeader = {
    version: 0,
    ...d,
    vocab: Math.abs(d.vocab),
    shared: d.vocab > 0,
    groupSize: 0,
    dataStart: 28,
  };
  const plausible = Object.values({ ...d, vocab: legacy.vocab }).every((v) => v > 0) &&
    d.dim % d.heads === 0 && d.heads % d.kvHeads === 0 && llama2cBytes(legacy) === size;
  if (!plausible) {
    throw new CheckpointError(
      `${path}: magic ${magic} is not llm.c's model magic ${LLMC_MAGIC} nor llama2.c's "ak42", and its ` +
        `${size} bytes are not a legacy llama2.c export (header ${Object.values(d).join(",")})`,
    );
  }
  return legacy;
}

/**
 * Loads a llama2.c export: legacy, version 1 (f32) or version 2 (Q8_0, dequantised).
 *
 * @throws {CheckpointError} naming the file: an unknown magic or version, an implausible header,
 * a size that disagrees with the header.
 */
export async function loadLlama2c(path: string): Promise<Checkpoint> {
  using file = await Deno.open(path, { read: true });
  const size = (await file.stat()).size;
  const h = await readLlama2cHeader(path, file, size);
  const config: DecoderConfig = checkedConfig(path, {
    family: "llama",
    n_layer: h.layers,
    n_head: h.heads,
    n_embd: h.dim,
    n_kv_head: h.kvHeads,
    n_hidden: h.hidden,
    vocab_size: h.vocab,
    n_positions: h.seqLen,
    norm_eps: 1e-5,
    rope_theta: DEFAULT_ROPE_THETA,
    tie_embeddings: h.shared,
  });
  if (h.version === 2 && !(h.groupSize > 0)) {
    throw new CheckpointError(`${path}: llama2.c Q8_0 group size ${h.groupSize} is not positive`);
  }
  const expected = llama2cBytes(h);
  if (size !== expected) {
    throw new CheckpointError(
      `${path}: ${size} bytes, the header's model needs ${expected}: truncated or not this model`,
    );
  }
  const layout = llama2cLayout(h);
  const read = async (offset: number, bytes: number, what: string): Promise<Uint8Array> => {
    const out = new Uint8Array(bytes);
    if (!await readAt(file, offset, out)) throw new CheckpointError(`${path}: file ended inside ${what}`);
    return out;
  };
  // Every slice's file offset: f32 tensors in order; in version 2 the int8 values of the quantised
  // tensors follow the f32 ones, then all their scales.
  const slices: { name: string; data?: Float32Array; q?: Int8Array }[] = [];
  let offset = h.dataStart;
  for (const quantizedPass of h.version === 2 ? [false, true] : [false]) {
    for (const t of layout) {
      if (h.version === 2 && t.quantized !== quantizedPass) continue;
      for (let l = 0; l < (t.perLayer ? h.layers : 1); l++) {
        const name = t.perLayer ? `model.layers.${l}.${t.name}` : t.name;
        if (h.version === 2 && t.quantized) {
          const q = await read(offset, t.size, name);
          slices.push({ name, q: new Int8Array(q.buffer) });
          offset += t.size;
        } else {
          const data = decodeFloats("F32", await read(offset, t.size * 4, name));
          if (t.name !== "") slices.push({ name, data });
          offset += t.size * 4;
        }
      }
    }
  }
  for (const s of slices) {
    if (!s.q) continue;
    const scales = decodeFloats(
      "F32",
      await read(offset, (s.q.length / h.groupSize) * 4, `${s.name} scales`),
    );
    offset += scales.byteLength;
    s.data = new Float32Array(s.q.length);
    for (let i = 0; i < s.q.length; i++) s.data[i] = s.q[i] * scales[Math.floor(i / h.groupSize)];
  }
  const hs = h.dim / h.heads;
  const params: ParamMap = new Map();
  for (const { name, data } of slices) {
    if (name.endsWith("q_proj.weight")) params.set(name, fromInterleavedRope(data!, { heads: h.heads, hs }));
    else if (name.endsWith("k_proj.weight")) {
      params.set(name, fromInterleavedRope(data!, { heads: h.kvHeads, hs }));
    } else params.set(name, data!);
  }
  return { config, params: ordered(config, params) };
}
