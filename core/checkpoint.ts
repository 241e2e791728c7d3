/**
 * Model checkpoints: a Hugging Face GPT-2 folder (`config.json` + `model.safetensors`, the tensor
 * names of {@linkcode paramSpecs}, optionally prefixed `transformer.`), written atomically, and
 * read back together with llm.c's `gpt2_124M.bin` files.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { ConfigError, type GPTConfig, validateConfig } from "./config.ts";
import { numel, type ParamMap, paramSpecs } from "./params.ts";
import {
  CheckpointError,
  decodeFloats,
  type FloatDtype,
  readSafetensors,
  type TensorData,
  writeSafetensors,
} from "./safetensors.ts";
import { readAt, writeAll, writeTemp } from "./_file_io.ts";

/** A model's configuration and parameters. */
export interface Checkpoint {
  /** The architecture. */
  config: GPTConfig;
  /** Every tensor of `paramSpecs(config)`, by name. */
  params: ParamMap;
}

/** Options of {@linkcode saveModel}. */
export interface SaveModelOptions {
  /** Element type of the stored weights (default F32, which round-trips exactly). */
  dtype?: FloatDtype;
}

/** The configuration file inside a model folder. */
export const CONFIG_FILE = "config.json";
/** The weights file inside a model folder. */
export const WEIGHTS_FILE = "model.safetensors";

/** llm.c's model-file magic number (`gpt2_124M.bin`). */
export const LLMC_MAGIC = 20240326;

/** Buffers Hugging Face files carry alongside the weights (causal masks), not parameters. */
const BUFFER_SUFFIXES = [".attn.bias", ".attn.masked_bias"];

function checkParams(where: string, { config, params }: Checkpoint): void {
  const specs = paramSpecs(config);
  for (const spec of specs) {
    const data = params.get(spec.name);
    if (!data) throw new CheckpointError(`${where}: parameter ${spec.name} is missing`);
    if (data.length !== numel(spec.shape)) {
      throw new CheckpointError(
        `${where}: parameter ${spec.name} has ${data.length} values, shape [${spec.shape}] needs ${
          numel(spec.shape)
        }`,
      );
    }
  }
  if (params.size !== specs.length) {
    const known = new Set(specs.map((s) => s.name));
    const extra = [...params.keys()].find((k) => !known.has(k));
    throw new CheckpointError(`${where}: parameter ${extra} is not part of the configured model`);
  }
}

/** The `config.json` of `config`: Hugging Face GPT-2 fields plus our `tokenizer`. */
function hfConfig(config: GPTConfig): Record<string, unknown> {
  return {
    model_type: "gpt2",
    architectures: ["GPT2LMHeadModel"],
    n_layer: config.n_layer,
    n_head: config.n_head,
    n_embd: config.n_embd,
    vocab_size: config.vocab_size,
    n_positions: config.n_positions,
    n_ctx: config.n_positions,
    layer_norm_epsilon: config.layer_norm_epsilon,
    activation_function: "gelu_new",
    tie_word_embeddings: true,
    tokenizer: config.tokenizer ?? "gpt2",
  };
}

/**
 * Saves a model as a Hugging Face GPT-2 folder: `dir/config.json` and `dir/model.safetensors`.
 * Both files are written under temporary names and renamed into place only once both are
 * complete, so a failed save leaves an existing checkpoint in `dir` as it was.
 *
 * @throws {CheckpointError} when a parameter is missing, extra or of the wrong size, or `dir`
 * cannot be created.
 * @throws {ConfigError} when the configuration is invalid.
 */
export async function saveModel(
  dir: string,
  checkpoint: Checkpoint,
  options: SaveModelOptions = {},
): Promise<void> {
  validateConfig(checkpoint.config);
  checkParams(dir, checkpoint);
  try {
    await Deno.mkdir(dir, { recursive: true });
  } catch (e) {
    throw new CheckpointError(`${dir}: cannot create the model folder (${(e as Error).message})`);
  }
  const tensors = new Map<string, TensorData>();
  for (const spec of paramSpecs(checkpoint.config)) {
    tensors.set(spec.name, { shape: spec.shape, data: checkpoint.params.get(spec.name)! });
  }
  const json = new TextEncoder().encode(JSON.stringify(hfConfig(checkpoint.config), null, 2) + "\n");
  const config = await writeTemp(join(dir, CONFIG_FILE), (file) => writeAll(file, json));
  try {
    await writeSafetensors(join(dir, WEIGHTS_FILE), tensors, {
      dtype: options.dtype,
      metadata: { format: "pt" },
    });
  } catch (e) {
    await config.discard();
    throw e;
  }
  await config.commit();
}

/**
 * Loads a model from a Hugging Face GPT-2 folder (or its `model.safetensors`, with `config.json`
 * beside it), or from an llm.c model file (version 3, f32, or 5, bf16).
 *
 * @throws {CheckpointError} naming the file and tensor: missing or unreadable files, invalid JSON
 * or configuration, a missing, unknown or misshapen tensor, a truncated file, a wrong magic number
 * or version.
 */
export async function loadModel(path: string): Promise<Checkpoint> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    throw new CheckpointError(`${path}: cannot read (${(e as Error).message})`);
  }
  if (info.isDirectory) return await loadHfFolder(path);
  if (path.endsWith(".safetensors")) return await loadHfFolder(dirname(path), path);
  return await loadLlmc(path);
}

// ---------------------------------------------------------------------------------------------
// Hugging Face folders

async function readConfig(path: string): Promise<GPTConfig> {
  let raw: unknown;
  try {
    raw = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new CheckpointError(`${path}: cannot read the configuration (${(e as Error).message})`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new CheckpointError(`${path}: the configuration is not a JSON object`);
  }
  const c = raw as Record<string, unknown>;
  const fail = (problem: string): never => {
    throw new CheckpointError(`${path}: ${problem}`);
  };
  if (c.model_type !== undefined && c.model_type !== "gpt2") fail(`model_type ${c.model_type} is not gpt2`);
  if (c.activation_function !== undefined && c.activation_function !== "gelu_new") {
    fail(`activation_function ${c.activation_function} is not gelu_new (tanh GELU)`);
  }
  const size = (key: string, fallback?: unknown): number => {
    const v = c[key] ?? fallback;
    if (v === undefined) fail(`${key} is missing`);
    if (typeof v !== "number") fail(`${key} must be a number, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const config: GPTConfig = {
    n_layer: size("n_layer"),
    n_head: size("n_head"),
    n_embd: size("n_embd"),
    vocab_size: size("vocab_size"),
    n_positions: size("n_positions", c.n_ctx),
    layer_norm_epsilon: size("layer_norm_epsilon", 1e-5),
    tokenizer: (c.tokenizer ?? "gpt2") as string,
  };
  if (typeof config.tokenizer !== "string") fail(`tokenizer must be a string`);
  if (c.n_inner !== undefined && c.n_inner !== null && c.n_inner !== 4 * config.n_embd) {
    fail(`n_inner ${c.n_inner} is not 4·n_embd = ${4 * config.n_embd}`);
  }
  try {
    return validateConfig(config);
  } catch (e) {
    if (e instanceof ConfigError) fail(e.message);
    throw e;
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function isBuffer(name: string): boolean {
  return BUFFER_SUFFIXES.some((s) => name.endsWith(s));
}

async function loadHfFolder(dir: string, weights = join(dir, WEIGHTS_FILE)): Promise<Checkpoint> {
  const config = await readConfig(join(dir, CONFIG_FILE));
  const { tensors } = await readSafetensors(weights, { filter: (name) => !isBuffer(name) });
  const specs = paramSpecs(config);
  const byName = new Map(specs.map((s) => [s.name, s]));
  const params: ParamMap = new Map();
  let lmHead: TensorData | undefined;
  for (const [stored, tensor] of tensors) {
    const name = stored.startsWith("transformer.") ? stored.slice("transformer.".length) : stored;
    if (name === "lm_head.weight") {
      lmHead = tensor;
      continue;
    }
    const spec = byName.get(name);
    if (!spec) {
      throw new CheckpointError(
        `${weights}: tensor ${stored} is not part of a GPT-2 model of this configuration`,
      );
    }
    if (params.has(name)) throw new CheckpointError(`${weights}: tensor ${name} is stored twice`);
    if (!sameShape(tensor.shape, spec.shape)) {
      throw new CheckpointError(
        `${weights}: tensor ${stored} has shape [${tensor.shape}], the configuration needs [${spec.shape}]`,
      );
    }
    params.set(name, tensor.data);
  }
  for (const spec of specs) {
    if (!params.has(spec.name)) throw new CheckpointError(`${weights}: tensor ${spec.name} is missing`);
  }
  if (lmHead) {
    const wte = params.get("wte.weight")!;
    if (
      !sameShape(lmHead.shape, byName.get("wte.weight")!.shape) || lmHead.data.some((v, i) => v !== wte[i])
    ) {
      throw new CheckpointError(
        `${weights}: lm_head.weight differs from wte.weight; only a tied LM head is supported`,
      );
    }
  }
  return { config, params };
}

// ---------------------------------------------------------------------------------------------
// llm.c model files: 256 int32 header, then every parameter in llm.c's order, linear weights
// stored (out, in) and the token table padded to a multiple of 128 rows.

const LLMC_HEADER_BYTES = 256 * 4;

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

/** `(rows, cols)` → `(cols, rows)`. */
function transpose(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(src.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = src[r * cols + c];
  }
  return out;
}

async function loadLlmc(path: string): Promise<Checkpoint> {
  const file = await Deno.open(path, { read: true });
  try {
    const size = (await file.stat()).size;
    const headerBytes = new Uint8Array(LLMC_HEADER_BYTES);
    if (!await readAt(file, 0, headerBytes)) {
      throw new CheckpointError(
        `${path}: ${size} bytes, too short for an llm.c header (or not a model file)`,
      );
    }
    const h = new Int32Array(headerBytes.buffer);
    if (h[0] !== LLMC_MAGIC) {
      throw new CheckpointError(`${path}: magic ${h[0]} is not llm.c's model magic ${LLMC_MAGIC}`);
    }
    if (h[1] !== 3 && h[1] !== 5) {
      throw new CheckpointError(`${path}: llm.c model version ${h[1]} is not 3 (f32) or 5 (bf16)`);
    }
    const [maxT, V, L, NH, C, Vp] = [h[2], h[3], h[4], h[5], h[6], h[7]];
    const config: GPTConfig = {
      n_layer: L,
      n_head: NH,
      n_embd: C,
      vocab_size: V,
      n_positions: maxT,
      layer_norm_epsilon: 1e-5,
      tokenizer: "gpt2",
    };
    try {
      validateConfig(config);
    } catch (e) {
      if (e instanceof ConfigError) throw new CheckpointError(`${path}: ${e.message}`);
      throw e;
    }
    if (!(Vp >= V)) {
      throw new CheckpointError(`${path}: padded vocabulary ${Vp} is smaller than vocabulary ${V}`);
    }
    const dtype: FloatDtype = h[1] === 3 ? "F32" : "BF16";
    const elementBytes = dtype === "F32" ? 4 : 2;
    const layout = llmcLayout(C, maxT, Vp);
    const count = layout.reduce((s, t) => s + t.rows * t.cols * (t.perLayer ? L : 1), 0);
    const expected = LLMC_HEADER_BYTES + count * elementBytes;
    if (size !== expected) {
      throw new CheckpointError(
        `${path}: ${size} bytes, the header's model needs ${expected}: truncated or not this model`,
      );
    }
    const params: ParamMap = new Map();
    let offset = LLMC_HEADER_BYTES;
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
    const ordered: ParamMap = new Map(paramSpecs(config).map((s) => [s.name, params.get(s.name)!]));
    return { config, params: ordered };
  } finally {
    file.close();
  }
}
