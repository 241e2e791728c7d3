/**
 * Model checkpoints. Written as a Hugging Face folder of the model's family (`config.json` +
 * `model.safetensors`, the tensor names of its parameter table, plus the tokenizer files that
 * travel with the model), atomically. Read from such folders (any family; single or sharded
 * safetensors; fused tensors such as Phi-3's split at load and fused again at save), GGUF files
 * (`gguf_model.ts`), and llm.c / llama2.c `.bin` files (`llm_binaries.ts`).
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import { writeAll } from "@inheritune/data";
import { type ModelConfig, validateConfig } from "./config.ts";
import type { Checkpoint } from "./family.ts";
import { FAMILIES, family, familyByName, paramSpecs } from "./model.ts";
import { type ParamMap, paramMapProblem } from "./params.ts";
import {
  CheckpointError,
  type FloatDtype,
  readSafetensors,
  type StoredTensor,
  type TensorData,
  writeSafetensors,
} from "./safetensors.ts";
import { checkedConfig, type PendingFile, readAt, writeTemp } from "./_file_io.ts";
import { loadGgufModel } from "./gguf_model.ts";
import { hfTokenizerFiles } from "./hf_tokenizer.ts";
import { LLMC_MAGIC, loadLlama2c, loadLlmc } from "./llm_binaries.ts";

/** Options of {@linkcode saveModel}. */
export interface SaveModelOptions {
  /** Element type of the stored weights (default F32, which round-trips exactly). */
  dtype?: FloatDtype;
}

/** The configuration file inside a model folder. */
export const CONFIG_FILE = "config.json";
/** The weights file inside a model folder. */
export const WEIGHTS_FILE = "model.safetensors";
/** The index of a sharded model folder. */
export const WEIGHTS_INDEX_FILE = "model.safetensors.index.json";
/**
 * Tokenizer files a model folder may carry, read and written with the weights (those of
 * `hf_tokenizer.ts` written where missing).
 */
export const TOKENIZER_FILES = [
  "tokenizer.json",
  "tokenizer.model",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "generation_config.json",
] as const;

/**
 * Keys transformers 5 types as floats and refuses integers for (its configs are strict
 * dataclasses): written with a decimal point, `5.0`, as Python writes a float.
 */
const FLOAT_KEYS = new Set([
  "rms_norm_eps",
  "layer_norm_epsilon",
  "rope_theta",
  "rope_local_base_freq",
  "factor",
  "low_freq_factor",
  "high_freq_factor",
  "final_logit_softcapping",
  "initializer_range",
]);

/** `config` as the text of a `config.json`, floats written as Python writes them. */
function configJson(config: Record<string, unknown>): string {
  const MARK = "\u0000float:";
  const text = JSON.stringify(
    config,
    (key, v) => FLOAT_KEYS.has(key) && Number.isInteger(v) ? `${MARK}${v}` : v,
    2,
  );
  return text.replace(/"\\u0000float:(-?\d+)"/g, "$1.0") + "\n";
}

/** Tensors Hugging Face files carry alongside the weights (causal masks, RoPE caches), not parameters. */
const BUFFER_SUFFIXES = [".attn.bias", ".attn.masked_bias", ".rotary_emb.inv_freq"];

/**
 * Saves a model as a Hugging Face folder of its family: `dir/config.json`,
 * `dir/model.safetensors` and its tokenizer files, completed with those `transformers` needs
 * (`hfTokenizerFiles`). Every file is written under a temporary name
 * and renamed into place only once all are complete, so a failed save leaves an existing
 * checkpoint in `dir` as it was.
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
  const problem = paramMapProblem(paramSpecs(checkpoint.config), checkpoint.params);
  if (problem) throw new CheckpointError(`${dir}: ${problem}`);
  try {
    await Deno.mkdir(dir, { recursive: true });
  } catch (e) {
    throw new CheckpointError(`${dir}: cannot create the model folder (${(e as Error).message})`);
  }
  const tensors = new Map<string, TensorData>();
  const { fused } = family(checkpoint.config).hfTensors(checkpoint.config);
  const inFused = new Map(fused.flatMap((f) => f.parts.map((part) => [part, f])));
  for (const spec of paramSpecs(checkpoint.config)) {
    const f = inFused.get(spec.name);
    if (!f) tensors.set(spec.name, { shape: spec.shape, data: checkpoint.params.get(spec.name)! });
    else if (f.parts[0] === spec.name) tensors.set(f.stored, fuse(checkpoint, f.parts));
  }
  const config = family(checkpoint.config).toHfConfig(checkpoint.config);
  const files = new Map<string, Uint8Array>([
    [CONFIG_FILE, new TextEncoder().encode(configJson(config))],
    ...hfTokenizerFiles(checkpoint.tokenizerFiles, { maxLength: checkpoint.config.n_positions, where: dir }),
  ]);
  const pending: PendingFile[] = [];
  try {
    for (const [name, bytes] of files) {
      pending.push(await writeTemp(join(dir, name), (f) => writeAll(f, bytes)));
    }
    await writeSafetensors(join(dir, WEIGHTS_FILE), tensors, {
      dtype: options.dtype,
      metadata: { format: "pt" },
    });
  } catch (e) {
    for (const p of pending) await p.discard();
    throw e;
  }
  for (const p of pending) await p.commit();
}

/**
 * Loads a model from a Hugging Face folder (any family of `model.ts`; `model.safetensors` or
 * shards listed in `model.safetensors.index.json`), a `.safetensors` file with `config.json` beside
 * it, a GGUF file (the architectures of `families.ts`), an llm.c model file (version 3, f32, or
 * 5, bf16) or a llama2.c export (legacy, version 1 f32 or version 2 Q8_0).
 *
 * @throws {CheckpointError} naming the file and tensor: missing or unreadable files, invalid JSON
 * or configuration, a missing, unknown or misshapen tensor, a truncated file, a wrong magic number
 * or version, an unsupported architecture or element type.
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
  const magic = new Uint8Array(4);
  {
    using file = await Deno.open(path, { read: true });
    if (!await readAt(file, 0, magic)) return await loadLlmc(path); // reports the short file
  }
  const word = new DataView(magic.buffer).getUint32(0, true);
  if (new TextDecoder().decode(magic) === "GGUF") return await loadGgufModel(path);
  if (word === LLMC_MAGIC) return await loadLlmc(path);
  return await loadLlama2c(path);
}

// ---------------------------------------------------------------------------------------------
// Hugging Face folders

async function readJson(path: string, what: string): Promise<Record<string, unknown>> {
  let raw: unknown;
  try {
    raw = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new CheckpointError(`${path}: cannot read the ${what} (${(e as Error).message.split("\n")[0]})`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new CheckpointError(`${path}: the ${what} is not a JSON object`);
  }
  return raw as Record<string, unknown>;
}

async function readConfig(path: string, maxParams?: number): Promise<ModelConfig> {
  const json = await readJson(path, "configuration");
  const fail = (problem: string): never => {
    throw new CheckpointError(`${path}: ${problem}`);
  };
  const type = json.model_type ?? "gpt2";
  const family = typeof type === "string" ? familyByName(type) : undefined;
  if (!family) {
    fail(`model_type ${JSON.stringify(type)} is not supported (${Object.keys(FAMILIES).join(", ")})`);
  }
  return checkedConfig(path, family!.fromHfConfig(json, fail), { maxParams });
}

/** The tensors `parts` of a checkpoint stacked along their first dimension, as one stored tensor. */
function fuse(checkpoint: Checkpoint, parts: string[]): TensorData {
  const specs = new Map(paramSpecs(checkpoint.config).map((s) => [s.name, s]));
  const datas = parts.map((p) => checkpoint.params.get(p)!);
  const data = new Float32Array(datas.reduce((n, d) => n + d.length, 0));
  let at = 0;
  for (const d of datas) {
    data.set(d, at);
    at += d.length;
  }
  const shapes = parts.map((p) => specs.get(p)!.shape);
  return { shape: [shapes.reduce((n, s) => n + s[0], 0), ...shapes[0].slice(1)], data };
}

/** The safetensors files of a folder and the tensors each holds (all of it: undefined). */
async function weightFiles(dir: string): Promise<{ path: string; names?: Set<string> }[]> {
  const single = join(dir, WEIGHTS_FILE);
  const indexPath = join(dir, WEIGHTS_INDEX_FILE);
  const exists = async (p: string): Promise<boolean> => await Deno.stat(p).then(() => true, () => false);
  if (await exists(single) || !await exists(indexPath)) return [{ path: single }];
  const index = await readJson(indexPath, "shard index");
  const map = index.weight_map;
  if (typeof map !== "object" || map === null || Array.isArray(map)) {
    throw new CheckpointError(`${indexPath}: weight_map is missing or not an object`);
  }
  const byFile = new Map<string, Set<string>>();
  for (const [name, file] of Object.entries(map)) {
    if (typeof file !== "string" || file.includes("/") || file.includes("\\")) {
      throw new CheckpointError(
        `${indexPath}: tensor ${name} names shard ${JSON.stringify(file)}, not a file name`,
      );
    }
    if (!byFile.has(file)) byFile.set(file, new Set());
    byFile.get(file)!.add(name);
  }
  const files = [...byFile].map(([file, names]) => ({ path: join(dir, file), names }));
  for (const f of files) {
    if (!await exists(f.path)) {
      throw new CheckpointError(`${indexPath}: shard ${basename(f.path)} is missing`);
    }
  }
  return files;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function isBuffer(name: string): boolean {
  return BUFFER_SUFFIXES.some((s) => name.endsWith(s));
}

/**
 * The rows of `tensor`, a fused stored tensor, as the table tensors `parts` (views, no copy).
 *
 * @throws {CheckpointError} when its shape is not theirs stacked.
 */
function unfuse(
  file: string,
  stored: { name: string; tensor: StoredTensor },
  parts: { name: string; shape: number[] }[],
): [string, Float32Array][] {
  const rows = parts.reduce((n, p) => n + p.shape[0], 0);
  const { shape, data } = stored.tensor;
  if (!sameShape(shape, [rows, ...parts[0].shape.slice(1)])) {
    throw new CheckpointError(
      `${file}: tensor ${stored.name} has shape [${shape}], the configuration needs [${rows},${
        parts[0].shape.slice(1)
      }]`,
    );
  }
  let at = 0;
  return parts.map((p) => {
    const n = p.shape.reduce((a, b) => a * b, 1);
    at += n;
    return [p.name, data.subarray(at - n, at)];
  });
}

/** The most F16 parameters the weight files can hold; undefined when one is missing (reported when read). */
async function maxParamsOf(files: { path: string }[]): Promise<number | undefined> {
  let bytes = 0;
  for (const { path } of files) {
    const info = await Deno.stat(path).catch(() => undefined);
    if (!info) return undefined;
    bytes += info.size;
  }
  return bytes / 2;
}

async function loadHfFolder(dir: string, weights?: string): Promise<Checkpoint> {
  const files = weights ? [{ path: weights }] : await weightFiles(dir);
  const config = await readConfig(join(dir, CONFIG_FILE), await maxParamsOf(files));
  const specs = paramSpecs(config);
  const byName = new Map(specs.map((s) => [s.name, s]));
  const layout = family(config).hfTensors(config);
  const fused = new Map(layout.fused.map((f) => [f.stored, f.parts.map((p) => byName.get(p)!)]));
  const tied = layout.tied;
  const params: ParamMap = new Map();
  let alias: { data: StoredTensor; file: string } | undefined;
  for (const file of files) {
    const { tensors } = await readSafetensors(file.path, {
      filter: (name) => !isBuffer(name) && (file.names === undefined || file.names.has(name)),
    });
    for (const [stored, tensor] of tensors) {
      const name = layout.tableName(stored);
      if (name === tied?.alias) {
        alias = { data: tensor, file: file.path };
        continue;
      }
      const parts = fused.get(name);
      const spec = byName.get(name);
      if (!spec && !parts) {
        throw new CheckpointError(
          `${file.path}: tensor ${stored} is not part of a ${
            family(config).title
          } model of this configuration`,
        );
      }
      if (params.has(name) || (parts && params.has(parts[0].name))) {
        throw new CheckpointError(`${file.path}: tensor ${name} is stored twice`);
      }
      if (parts) {
        for (const [part, data] of unfuse(file.path, { name: stored, tensor }, parts)) params.set(part, data);
        continue;
      }
      if (!sameShape(tensor.shape, spec!.shape)) {
        throw new CheckpointError(
          `${file.path}: tensor ${stored} has shape [${tensor.shape}], the configuration needs [${
            spec!.shape
          }]`,
        );
      }
      params.set(name, tensor.data);
    }
  }
  // A tied decoder may store the shared matrix under the head's name only.
  if (tied && alias && !params.has(tied.table) && tied.aliasAlone) {
    if (sameShape(alias.data.shape, byName.get(tied.table)!.shape)) params.set(tied.table, alias.data.data);
  }
  const where = files.length === 1 ? files[0].path : join(dir, WEIGHTS_INDEX_FILE);
  for (const spec of specs) {
    if (!params.has(spec.name)) throw new CheckpointError(`${where}: tensor ${spec.name} is missing`);
  }
  const table = tied && params.get(tied.table);
  if (tied && alias && table !== alias.data.data) {
    const head = alias.data.data;
    if (!table || head.length !== table.length || head.some((v, i) => v !== table[i])) {
      throw new CheckpointError(`${alias.file}: ${tied.alias} differs from ${tied.table}; ${tied.differs}`);
    }
  }
  const ordered: ParamMap = new Map(specs.map((s) => [s.name, params.get(s.name)!]));
  const tokenizerFiles = new Map<string, Uint8Array>();
  for (const name of TOKENIZER_FILES) {
    try {
      tokenizerFiles.set(name, await Deno.readFile(join(dir, name)));
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  return { config, params: ordered, ...(tokenizerFiles.size > 0 ? { tokenizerFiles } : {}) };
}
