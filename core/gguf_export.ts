/**
 * A model of any family as a GGUF file that llama.cpp (and Ollama, LM Studio) runs: the
 * architecture llama.cpp has for it (`gpt2`, `llama`, `qwen2`, `qwen3`, `phi3`, `gemma3`; Mistral
 * as `llama`, as llama.cpp's converter writes it), its tensor names and `<arch>.*` keys as
 * `convert_hf_to_gguf.py` writes them, the conversions that converter makes (query and key rows
 * in the interleaved-pair RoPE order of `llama`, Gemma's norm weights stored as `1 + w`, Phi-3's
 * fused `attn_qkv` and `ffn_up`, GPT-2's Conv1D weights transposed, Llama 3's RoPE scaling as the
 * per-frequency divisors `rope_freqs.weight`), and the tokenizer as `tokenizer.ggml.*` metadata.
 * `gguf_model.ts` reads every such file back.
 *
 * Matrices are written in the chosen type; vectors (norms, biases, `rope_freqs`) stay F32, as both
 * of llama.cpp's tools keep them. Quantized types follow `llama-quantize --pure`: every matrix in
 * the type (the token embedding and head included) but GPT-2's `position_embd`, which llama.cpp
 * does not quantize (F32 here); a matrix whose rows are not whole blocks of the type falls back as
 * llama.cpp's quantizer falls back (Q4_K → Q5_0, Q6_K → Q8_0), then to F16, as its converter does
 * for Q8_0 (for Q8_0 and Q4_0 llama-quantize would refuse the file).
 *
 * @module
 */
import { basename } from "node:path";
import {
  type DecoderConfig,
  type DecoderFamilyName,
  type GPT2Config,
  headSize,
  isDecoder,
} from "./config.ts";
import type { DecoderParamSpec } from "./decoder.ts";
import { isNormRole, toInterleavedRope } from "./decoder.ts";
import { DECODER_FAMILIES_BY_NAME, type GgufForm } from "./families.ts";
import type { Checkpoint } from "./family.ts";
import { ggmlTypeNamed, quantize } from "./ggml_quants.ts";
import { GGUF_TYPE, type GgufEntry, type GgufTensorSource, writeGguf } from "./gguf.ts";
import { ggufTensorName, gpt2GgufTensor } from "./gguf_model.ts";
import { gpt2ParamSpecs } from "./gpt2.ts";
import { numel, transpose } from "./params.ts";
import { CheckpointError } from "./safetensors.ts";
import { ggufTokenizerMetadata } from "./tokenizer.ts";

/** The element types {@linkcode exportGguf} writes the matrices in, as the command line names them. */
export const GGUF_EXPORT_TYPES = ["f32", "f16", "q8_0", "q4_0", "q4_k", "q6_k"] as const;

/** One of {@linkcode GGUF_EXPORT_TYPES}. */
export type GgufExportType = (typeof GGUF_EXPORT_TYPES)[number];

/** Options of {@linkcode exportGguf}. */
export interface GgufExportOptions {
  /** Element type of the matrices (default f16, as llama.cpp's converter writes an f32 model). */
  type?: GgufExportType;
  /** `general.name` (default the output file's name without `.gguf`). */
  name?: string;
}

/** What {@linkcode exportGguf} wrote. */
export interface GgufExport {
  /** `general.architecture`. */
  arch: string;
  /** Every tensor, in file order: its GGUF name, shape (outermost first) and ggml type name. */
  tensors: { name: string; shape: number[]; type: string }[];
  /** Metadata keys written. */
  keys: number;
  /** What the file states differently from the model, one line each (none: an empty list). */
  notes: string[];
}

/** llama.cpp's `general.file_type` (`enum llama_ftype`) of each export type. */
const FILE_TYPES: Record<GgufExportType, number> = {
  f32: 0,
  f16: 1,
  q4_0: 2,
  q8_0: 7,
  q4_k: 14, // MOSTLY_Q4_K_S: llama-quantize --pure Q4_K_S writes every matrix as Q4_K
  q6_k: 18,
};

/** What llama.cpp's quantizer falls back to for rows that are not whole blocks (`tensor_type_fallback`). */
const FALLBACK: Record<string, string> = { Q4_K: "Q5_0", Q6_K: "Q8_0" };

/** The families llama.cpp's converter writes as another's architecture. */
const WRITTEN_AS: Readonly<Partial<Record<DecoderFamilyName, DecoderFamilyName>>> = { mistral: "llama" };

/** A tensor to write, in f32, before its type is chosen. */
interface Planned {
  name: string;
  shape: number[];
  data: () => Float32Array;
}

/** The ggml type of tensor `t` in export type `type` (see the module's notes), and why when it falls back. */
function storedType(t: Planned, type: GgufExportType): { type: string; fallback?: string } {
  if (t.shape.length < 2 || type === "f32") return { type: "F32" };
  if (type === "f16") return { type: "F16" };
  if (t.name === "position_embd.weight") return { type: "F32" };
  const row = t.shape.at(-1)!;
  const wanted = type.toUpperCase();
  for (let name: string | undefined = wanted; name; name = FALLBACK[name]) {
    if (row % ggmlTypeNamed(name)!.blockSize === 0) {
      return name === wanted ? { type: name } : { type: name, fallback: `rows of ${row}` };
    }
  }
  return { type: "F16", fallback: `rows of ${row}` };
}

const u32 = (v: number): GgufEntry => [GGUF_TYPE.UINT32, v];
const f32 = (v: number): GgufEntry => [GGUF_TYPE.FLOAT32, v];
const str = (v: string): GgufEntry => [GGUF_TYPE.STRING, v];

/**
 * Llama 3's RoPE scaling as llama.cpp's per-frequency divisors, as its converter derives them
 * (`LlamaModel.generate_extra_tensors`): 1 for short wavelengths, `factor` for long ones, the
 * reciprocal of the interpolated weight between.
 */
function llama3Divisors(config: DecoderConfig): number[] {
  const s = config.rope_scaling;
  if (s?.rope_type !== "llama3") return [];
  const hs = headSize(config);
  const old = s.original_max_position_embeddings;
  return Array.from({ length: hs / 2 }, (_, d) => {
    const wavelen = 2 * Math.PI * config.rope_theta ** ((2 * d) / hs);
    if (wavelen < old / s.high_freq_factor) return 1;
    if (wavelen > old / s.low_freq_factor) return s.factor;
    const smooth = (old / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    return 1 / ((1 - smooth) / s.factor + smooth);
  });
}

/** The `<arch>.*` keys and tensors of a decoder in llama.cpp's architecture `arch` of form `form`. */
function decoderPlan(
  checkpoint: Checkpoint & { config: DecoderConfig },
  arch: string,
  form: GgufForm,
  fail: (problem: string) => never,
): { keys: [string, GgufEntry][]; tensors: Planned[]; notes: string[] } {
  const { config, params } = checkpoint;
  const hs = headSize(config);
  const notes: string[] = [];
  const keys: [string, GgufEntry][] = [
    ["block_count", u32(config.n_layer)],
    ["context_length", u32(config.n_positions)],
    ["embedding_length", u32(config.n_embd)],
    ["feed_forward_length", u32(config.n_hidden)],
    ["attention.head_count", u32(config.n_head)],
    ["attention.head_count_kv", u32(config.n_kv_head)],
    ["attention.layer_norm_rms_epsilon", f32(config.norm_eps)],
    ["rope.freq_base", f32(config.rope_theta)],
  ];
  if (config.head_dim !== undefined || arch === "gemma3") {
    keys.push(["attention.key_length", u32(hs)], ["attention.value_length", u32(hs)]);
  }
  if (arch === "llama") keys.push(["vocab_size", u32(config.vocab_size)], ["rope.dimension_count", u32(hs)]);
  const scaling = config.rope_scaling;
  if (scaling?.rope_type === "linear") {
    keys.push(["rope.scaling.type", str("linear")], ["rope.scaling.factor", f32(scaling.factor)]);
  }
  const divisors = config.rope_freq_factors ?? llama3Divisors(config);
  if (divisors.length > 0 && arch !== "llama") {
    fail(
      `${config.family}'s RoPE scaling as per-frequency divisors (rope_freqs, Llama 3's) has no form in llama.cpp's ${arch}`,
    );
  }
  const sliding = config.layer_types?.map((t) => t === "sliding_attention") ?? [];
  if (arch === "phi3") {
    keys.push(
      ["rope.scaling.original_context_length", u32(config.n_positions)],
      ["rope.dimension_count", u32(hs)],
    );
    if (sliding.some((s) => s)) {
      if (!sliding.every((s) => s)) fail(`phi3 slides in every block or none, not ${config.layer_types}`);
      keys.push(["attention.sliding_window", u32(config.sliding_window!)]);
    }
  } else if (arch === "gemma3") {
    const pattern = sliding.length > 0 ? sliding : Array(config.n_layer).fill(false);
    keys.push(
      ["rope.freq_base_swa", f32(config.rope_local_theta ?? config.rope_theta)],
      ["attention.sliding_window", u32(config.sliding_window ?? config.n_positions)],
      ["attention.sliding_window_pattern", [GGUF_TYPE.ARRAY, pattern, GGUF_TYPE.BOOL]],
      ["attention.scale", f32((config.query_pre_attn_scalar ?? hs) ** -0.5)],
    );
    if (config.final_logit_softcapping !== undefined) {
      keys.push(["final_logit_softcapping", f32(config.final_logit_softcapping)]);
    }
  } else if (sliding.some((s) => s)) {
    notes.push(
      `llama.cpp's ${arch} has no sliding window: the file attends to the whole context ` +
        `(the same model up to ${config.sliding_window} tokens)`,
    );
  }

  const tensors: Planned[] = [];
  if (divisors.length > 0) {
    tensors.push({ name: "rope_freqs.weight", shape: [hs / 2], data: () => Float32Array.from(divisors) });
  }
  const specs = DECODER_FAMILIES_BY_NAME[config.family].paramSpecs(config) as DecoderParamSpec[];
  const fusedOf = new Map(form.fused.flatMap((f) => f.roles.map((role) => [role as string, f])));
  for (const spec of specs) {
    const f = spec.layer >= 0 ? fusedOf.get(spec.role) : undefined;
    if (f) {
      if (f.roles[0] !== spec.role) continue;
      const parts = f.roles.map((role) => specs.find((s) => s.layer === spec.layer && s.role === role)!);
      tensors.push({
        name: `blk.${spec.layer}.${f.stored}`,
        shape: [parts.reduce((n, p) => n + p.shape[0], 0), ...spec.shape.slice(1)],
        data: () => {
          const out = new Float32Array(parts.reduce((n, p) => n + numel(p.shape), 0));
          let at = 0;
          for (const p of parts) {
            out.set(params.get(p.name)!, at);
            at += numel(p.shape);
          }
          return out;
        },
      });
      continue;
    }
    const heads = !form.interleavedRope
      ? 0
      : spec.role === "q_proj"
      ? config.n_head
      : spec.role === "k_proj"
      ? config.n_kv_head
      : 0;
    const shift = isNormRole(spec.role) ? form.normShift : 0;
    tensors.push({
      name: ggufTensorName(spec),
      shape: spec.shape,
      data: () => {
        const w = params.get(spec.name)!;
        if (heads > 0) return toInterleavedRope(w, { heads, hs });
        return shift !== 0 ? w.map((v) => v + shift) : w;
      },
    });
  }
  return { keys, tensors, notes };
}

/** The `gpt2.*` keys and tensors of a GPT-2, as llama.cpp's converter writes them. */
function gpt2Plan(
  checkpoint: Checkpoint & { config: GPT2Config },
): { keys: [string, GgufEntry][]; tensors: Planned[] } {
  const { config, params } = checkpoint;
  const C = config.n_embd;
  const keys: [string, GgufEntry][] = [
    ["block_count", u32(config.n_layer)],
    ["context_length", u32(config.n_positions)],
    ["embedding_length", u32(C)],
    ["feed_forward_length", u32(4 * C)],
    ["attention.head_count", u32(config.n_head)],
    ["attention.layer_norm_epsilon", f32(config.layer_norm_epsilon)],
  ];
  const tensors = gpt2ParamSpecs(config).map((spec): Planned => {
    const { name, transposed } = gpt2GgufTensor(spec);
    const [rows, cols] = spec.shape;
    return {
      name,
      shape: transposed ? [cols, rows] : spec.shape,
      data: () => transposed ? transpose(params.get(spec.name)!, rows, cols) : params.get(spec.name)!,
    };
  });
  return { keys, tensors };
}

/**
 * Writes `checkpoint` to `path` as a GGUF file llama.cpp reads (see the module's notes), one
 * tensor at a time, under a temporary name renamed over `path` once complete: a failure leaves an
 * existing file as it was.
 *
 * @throws {CheckpointError} naming `path` when the model has no GGUF form: a RoPE scaling or
 * window llama.cpp's architecture for the family cannot state, a tokenizer that cannot be written.
 */
export async function exportGguf(
  checkpoint: Checkpoint,
  path: string,
  options: GgufExportOptions = {},
): Promise<GgufExport> {
  const type = options.type ?? "f16";
  const fail = (problem: string): never => {
    throw new CheckpointError(`${path}: ${problem}`);
  };
  const { config } = checkpoint;
  let arch: string, plan: { keys: [string, GgufEntry][]; tensors: Planned[]; notes?: string[] };
  if (isDecoder(config)) {
    const family = DECODER_FAMILIES_BY_NAME[WRITTEN_AS[config.family] ?? config.family];
    if (!family.gguf) fail(`llama.cpp has no architecture for ${config.family}`);
    arch = family.gguf!.arch;
    plan = decoderPlan({ ...checkpoint, config }, arch, family.gguf!, fail);
  } else {
    arch = "gpt2";
    plan = gpt2Plan({ ...checkpoint, config });
  }
  const tokenizer = await ggufTokenizerMetadata(checkpoint, path);
  const notes = [...plan.notes ?? [], ...tokenizer.notes];
  const noVocab = tokenizer.metadata.get("tokenizer.ggml.model")?.[1] === "no_vocab";
  const metadata = new Map<string, GgufEntry>([
    ["general.architecture", str(arch)],
    ["general.name", str(options.name ?? basename(path).replace(/\.gguf$/i, ""))],
    ...plan.keys.map(([key, entry]): [string, GgufEntry] => [`${arch}.${key}`, entry]),
    // llama.cpp sizes a vocabulary-less model by `<arch>.vocab_size`, which its converter writes for llama.
    ...(noVocab && arch !== "llama" ? [[`${arch}.vocab_size`, u32(config.vocab_size)] as const] : []),
    ["general.file_type", u32(FILE_TYPES[type])],
    ["general.quantization_version", u32(2)],
    ...tokenizer.metadata,
  ]);
  const written: GgufExport["tensors"] = [];
  const fallbacks = new Map<string, string[]>();
  const sources = plan.tensors.map((t): GgufTensorSource => {
    const stored = storedType(t, type);
    const ggml = ggmlTypeNamed(stored.type)!;
    written.push({ name: t.name, shape: t.shape, type: stored.type });
    if (stored.fallback) {
      const why = `${stored.fallback} are not whole ${type.toUpperCase()} blocks: ${stored.type}`;
      fallbacks.set(why, [...fallbacks.get(why) ?? [], t.name]);
    }
    return {
      name: t.name,
      shape: t.shape,
      type: ggml.id,
      data: () => quantize(stored.type, t.data(), { rowLength: t.shape.at(-1) }),
    };
  });
  for (const [why, names] of fallbacks) notes.push(`${names.length} tensors (${names[0]}, ...): ${why}`);
  await writeGguf(path, metadata, sources);
  return { arch, tensors: written, keys: metadata.size, notes };
}
