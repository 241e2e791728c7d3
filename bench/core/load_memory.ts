/**
 * Host memory of loading a reference: writes a random model of a decoder family (`--family`, LLaMA
 * by default) of about `--params` parameters as a Hugging Face folder in the family's layout (one
 * safetensors file, and sharded; Phi-3's projections fused as its files store them), then, each in
 * a fresh process, loads it with `loadModel` and reports the peak resident memory (VmHWM) against a
 * process that only imports the loader, next to the weights' size: a loader that holds one copy of
 * the weights peaks near baseline + 1.0x.
 *
 *   deno run -A bench/core/load_memory.ts [--family llama|qwen2|qwen3|mistral|phi3|gemma3_text]
 *     [--params 100000000] [--keep DIR]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import {
  countParams,
  DECODER_FAMILIES_BY_NAME,
  type DecoderConfig,
  type DecoderFamilyName,
  familyByName,
  loadModel,
  numel,
  paramSpecs,
  type TensorData,
  writeSafetensors,
} from "@inheritune/core";
import { intFlag, UsageError } from "../../cli/_flags.ts";
import { runCommand } from "../../cli/_run.ts";
import { peakMemory } from "../_memory.ts";

/**
 * A model of `family` of at least `params` parameters and a 32000-token vocabulary, with every
 * feature of the family on: blocks of C=768 (Llama-2-like proportions; Qwen2 with its biases, Phi-3
 * fused in its files), Gemma 3 with Gemma 3 270M's heads (4 of size 256, one key/value head),
 * sliding and global blocks and a tied head.
 */
export function decoderOfSize(family: DecoderFamilyName, params: number): DecoderConfig {
  const gemma = family === "gemma3_text";
  for (let L = 1;; L++) {
    const config: DecoderConfig = {
      family,
      n_layer: L,
      n_head: gemma ? 4 : 12,
      n_kv_head: gemma ? 1 : 12,
      n_embd: 768,
      n_hidden: 2048,
      vocab_size: 32000,
      n_positions: 2048,
      norm_eps: 1e-5,
      rope_theta: 10000,
      tie_embeddings: gemma,
      ...DECODER_FAMILIES_BY_NAME[family].features,
      ...(gemma
        ? {
          head_dim: 256,
          query_pre_attn_scalar: 256,
          layer_types: Array.from({ length: L }, (_, l) =>
            (l + 1) % 6 === 0 ? "full_attention" : "sliding_attention"),
          sliding_window: 512,
          rope_local_theta: 10000,
        }
        : {}),
    };
    if (countParams(config) >= params) return config;
  }
}

/**
 * Writes `config` in its family's layout (fused tensors stored fused) with values that are cheap to
 * make (one random block of floats repeated).
 */
async function writeModel(dir: string, config: DecoderConfig, shards: number): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const family = familyByName(config.family)!;
  const noise = Float32Array.from({ length: 1 << 16 }, (_, i) => Math.sin(i * 12.9898) * 0.02);
  const filled = (shape: number[]): TensorData => {
    const n = numel(shape);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i += noise.length) data.set(noise.subarray(0, Math.min(noise.length, n - i)), i);
    return { shape, data };
  };
  const specs = new Map(paramSpecs(config).map((s) => [s.name, s]));
  const { fused } = family.hfTensors(config);
  const fusedOf = new Map(fused.flatMap((f) => f.parts.map((part) => [part, f])));
  const tensors: [string, TensorData][] = [];
  for (const spec of specs.values()) {
    const f = fusedOf.get(spec.name);
    if (!f) tensors.push([spec.name, filled(spec.shape)]);
    else if (f.parts[0] === spec.name) {
      const rows = f.parts.reduce((n, part) => n + specs.get(part)!.shape[0], 0);
      tensors.push([f.stored, filled([rows, ...spec.shape.slice(1)])]);
    }
  }
  const per = Math.ceil(tensors.length / shards);
  const weightMap: Record<string, string> = {};
  for (let k = 0; k < shards; k++) {
    const file = shards === 1 ? "model.safetensors" : `model-${k + 1}-of-${shards}.safetensors`;
    const part = tensors.slice(k * per, (k + 1) * per);
    for (const [name] of part) weightMap[name] = file;
    await writeSafetensors(join(dir, file), new Map(part));
  }
  if (shards > 1) {
    await Deno.writeTextFile(
      join(dir, "model.safetensors.index.json"),
      JSON.stringify({ weight_map: weightMap }),
    );
  }
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(family.toHfConfig(config)));
}

/** Runs this script as `--child MODE PATH` in a fresh process and returns its peak memory. */
async function child(mode: "baseline" | "load", path: string): Promise<number> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, "--child", mode, path],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`child ${mode} failed`);
  return JSON.parse(new TextDecoder().decode(out.stdout)).peak;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: {
      family: { type: "string", default: "llama" },
      params: { type: "string" },
      keep: { type: "string" },
      child: { type: "string" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.child) {
    if (values.child === "load") await loadModel(positionals[0]);
    console.log(JSON.stringify({ peak: peakMemory() }));
    return;
  }
  const name = values.family as DecoderFamilyName;
  if (!Object.hasOwn(DECODER_FAMILIES_BY_NAME, name)) {
    throw new UsageError(
      `--family ${name} is not a decoder family (${Object.keys(DECODER_FAMILIES_BY_NAME).join(", ")})`,
    );
  }
  const config = decoderOfSize(
    name,
    intFlag(values.params, "params", { fallback: 100_000_000, min: 1_000_000 }),
  );
  const weights = countParams(config) * 4;
  const dir = values.keep ?? await Deno.makeTempDir({ prefix: "load_memory_" });
  const mb = (b: number): string => (b / 2 ** 20).toFixed(0);
  try {
    console.log(
      `${familyByName(name)!.title} L=${config.n_layer} C=${config.n_embd} NH=${config.n_head} ` +
        `NKV=${config.n_kv_head} hs=${
          config.head_dim ?? config.n_embd / config.n_head
        } H=${config.n_hidden} ` +
        `V=${config.vocab_size}: ` +
        `${countParams(config).toLocaleString("en-US")} parameters, ${mb(weights)} MiB of f32 weights`,
    );
    console.log("| folder | peak RSS (MiB) | baseline (MiB) | above baseline | ÷ weights |");
    console.log("| --- | --- | --- | --- | --- |");
    for (const shards of [1, 4]) {
      const folder = join(dir, `shards-${shards}`);
      await writeModel(folder, config, shards);
      const base = await child("baseline", folder);
      const peak = await child("load", folder);
      console.log(
        `| ${shards === 1 ? "model.safetensors" : `${shards} shards + index`} | ${mb(peak)} | ${
          mb(base)
        } | ` +
          `${mb(peak - base)} | ${((peak - base) / weights).toFixed(2)}x |`,
      );
    }
  } finally {
    if (!values.keep) await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) Deno.exit(await runCommand("load_memory", main));
