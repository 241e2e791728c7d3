/**
 * Times whole training steps (forward, backward, AdamW; one submission each, submitted back to
 * back as the trainer does, with one wait at the end) and prints tokens/s, the process's CPU time
 * per step and peak memory. On the software adapter every GPU buffer lives in this process, so its
 * peak resident set (VmHWM) is the step's peak memory, and its CPU time the kernels' work (other
 * processes on the machine disturb it less than the wall time); on a GPU the memory is the bytes of
 * GPU buffers created.
 *
 *   deno run -A bench/core/train_step.ts tiny|124m [--steps N] [--batch B] [--no-warmup] [--json]
 *
 * `--no-warmup` times the first step too (shader compilation included): for configurations whose
 * steps take minutes on a software adapter.
 *
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { createdBytes, getGpu, Recorder, write } from "@inheritune/kernels";
import {
  AdamW,
  countParams,
  createModel,
  type DecoderConfig,
  GPT2_124M,
  initParams,
  type LanguageModel,
  type ModelConfig,
  type ParamMap,
  paramSpecs,
} from "@inheritune/core";
import { Rng } from "@inheritune/data";
import { intFlag, UsageError } from "../../cli/_flags.ts";
import { runCommand } from "../../cli/_run.ts";
import { peakMemory } from "../_memory.ts";

/**
 * OpenLLaMA-3B's blocks (dim 3200, 32 heads of 100, SwiGLU 8640, vocabulary 32000, untied head),
 * 13 of its 26: the ~1.5B-parameter model the Inheritune paper derives from it, trained at context
 * 2048. `seed-small` narrows the widths about 8x, to multiples of 64 floats (dim 384, 4 heads of
 * 96, SwiGLU 1088), the rows a CPU adapter's texture kernels take.
 */
function seedConfig(dims: { C: number; NH: number; H: number; T: number }): DecoderConfig {
  return {
    family: "llama",
    n_layer: 13,
    n_head: dims.NH,
    n_kv_head: dims.NH,
    n_embd: dims.C,
    n_hidden: dims.H,
    vocab_size: 32000,
    n_positions: dims.T,
    norm_eps: 1e-6,
    rope_theta: 10000,
    tie_embeddings: false,
  };
}

/**
 * The benchmark configurations: tiny and GPT-2 124M (issue 8), a small model with a large
 * vocabulary, and the paper's 1.5B model (`seed`) with a narrower version for a CPU adapter
 * (`seed-small`).
 */
export const CONFIGS: Record<string, { config: ModelConfig; B: number }> = {
  tiny: {
    config: {
      n_layer: 4,
      n_head: 4,
      n_embd: 128,
      vocab_size: 256,
      n_positions: 128,
      layer_norm_epsilon: 1e-5,
    },
    B: 8,
  },
  "124m": { config: GPT2_124M, B: 4 },
  // A small model with GPT-2's vocabulary: the classifier's chunked path dominates its step.
  vocab: {
    config: {
      n_layer: 2,
      n_head: 4,
      n_embd: 32,
      vocab_size: 50257,
      n_positions: 32,
      layer_norm_epsilon: 1e-5,
    },
    B: 4,
  },
  // GPT-2's vocabulary at the width and context of a small run from scratch (issue 29).
  vocab64: {
    config: {
      n_layer: 2,
      n_head: 4,
      n_embd: 64,
      vocab_size: 50257,
      n_positions: 64,
      layer_norm_epsilon: 1e-5,
    },
    B: 8,
  },
  // The default experiment's target (\`deno task train\`): 2 of stories260K's blocks, its batch.
  stories: {
    config: {
      family: "llama",
      n_layer: 2,
      n_head: 8,
      n_kv_head: 4,
      n_embd: 64,
      n_hidden: 172,
      vocab_size: 512,
      n_positions: 256,
      norm_eps: 1e-5,
      rope_theta: 10000,
      tie_embeddings: true,
    },
    B: 8,
  },
  seed: { config: seedConfig({ C: 3200, NH: 32, H: 8640, T: 2048 }), B: 4 },
  "seed-small": { config: seedConfig({ C: 384, NH: 4, H: 1088, T: 256 }), B: 2 },
};

/**
 * The entry of {@linkcode CONFIGS} named `name`.
 *
 * @throws {UsageError} for an unknown name.
 */
export function benchConfig(name: string): { config: ModelConfig; B: number } {
  const entry = CONFIGS[name];
  if (!entry) {
    throw new UsageError(
      `unknown configuration ${JSON.stringify(name)}: use ${Object.keys(CONFIGS).join(", ")}`,
    );
  }
  return entry;
}

/**
 * Initial parameters of a benchmark model: `initParams` up to 200M parameters; above, a repeated
 * block of N(0, 0.02) noise (norms 1), since drawing billions of normals on the CPU takes minutes
 * and a step's speed does not depend on the values.
 */
function benchParams(config: ModelConfig): ParamMap {
  if (countParams(config) <= 200e6) return initParams(config, 1);
  const noise = new Rng(1).normal(new Float32Array(1 << 20), 0.02);
  return new Map(
    paramSpecs(config).map((s) => {
      const data = new Float32Array(s.shape.reduce((a, b) => a * b, 1));
      if (s.init === "ones") return [s.name, data.fill(1)];
      for (let i = 0; i < data.length; i += noise.length) {
        data.set(noise.subarray(0, Math.min(noise.length, data.length - i)), i);
      }
      return [s.name, data];
    }),
  );
}

/** Result of {@linkcode benchTrainStep}. */
export interface StepBench {
  /** Configuration name. */
  name: string;
  /** Batch shape. */
  B: number;
  /** Context. */
  T: number;
  /** Mean seconds per step (after one warm-up step, unless `warmup` was false). */
  seconds: number;
  /** Tokens per second. */
  tokens_per_s: number;
  /** CPU seconds of this process per step (all its threads). */
  cpu_seconds: number;
  /** Peak resident memory of the process, bytes. */
  peak_bytes: number;
  /** Bytes of GPU buffers and textures created (the model, its gradients, activations, optimizer). */
  gpu_bytes: number;
  /** Adapter. */
  device: string;
}

/** A training step recorded by {@linkcode recordTrainStep}. */
export interface RecordedStep {
  /** The model, with a fixed batch written. */
  model: LanguageModel;
  /** Its optimizer. */
  opt: AdamW;
  /** Batch size. */
  B: number;
  /** Context. */
  T: number;
}

/**
 * Creates the model and optimizer of configuration `name` on the recorder's GPU, writes a fixed
 * batch, and records one whole training step (zero grads, forward, backward, AdamW) into `rec`.
 */
export function recordTrainStep(rec: Recorder, options: { name: string; B?: number }): RecordedStep {
  const entry = benchConfig(options.name);
  const { config } = entry;
  const B = options.B ?? entry.B, T = config.n_positions;
  const { gpu } = rec;
  const model = createModel(gpu, config, benchParams(config), { B, T, training: true });
  const opt = new AdamW(model);
  const tokens = Uint32Array.from({ length: B * T }, (_, i) => (i * 7919) % config.vocab_size);
  write(gpu, model.tokens, tokens);
  write(gpu, model.targets, tokens.map((t) => (t + 1) % config.vocab_size));
  model.recordZeroGrads(rec);
  model.recordForward(rec);
  model.recordBackward(rec, 1 / (B * T));
  opt.record(rec);
  return { model, opt, B, T };
}

/** Runs `steps` timed training steps of configuration `name`, after one warm-up step by default. */
export async function benchTrainStep(
  name: string,
  options: { steps?: number; B?: number; warmup?: boolean } = {},
): Promise<StepBench> {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  const { model, opt, B, T } = recordTrainStep(rec, { name, B: options.B });
  const step = (): void => {
    opt.prepare(1e-4);
    rec.submit();
  };
  if (options.warmup ?? true) {
    step();
    await gpu.device.queue.onSubmittedWorkDone();
  }
  const steps = options.steps ?? 3;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) step();
  await gpu.device.queue.onSubmittedWorkDone();
  const seconds = (performance.now() - t0) / 1000 / steps;
  const cpu = process.cpuUsage(c0);
  const gpuBytes = createdBytes(gpu);
  model.destroy();
  return {
    name,
    B,
    T,
    seconds,
    tokens_per_s: (B * T) / seconds,
    cpu_seconds: (cpu.user + cpu.system) / 1e6 / steps,
    peak_bytes: peakMemory(),
    gpu_bytes: gpuBytes,
    device: gpu.description,
  };
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: {
      steps: { type: "string" },
      batch: { type: "string" },
      "no-warmup": { type: "boolean" },
      json: { type: "boolean" },
    },
    allowPositionals: true,
  });
  const r = await benchTrainStep(positionals[0] ?? "tiny", {
    steps: values.steps === undefined ? undefined : intFlag(values.steps, "steps", { min: 1 }),
    B: values.batch === undefined ? undefined : intFlag(values.batch, "batch", { min: 1 }),
    warmup: !values["no-warmup"],
  });
  if (values.json) console.log(JSON.stringify(r));
  else {
    console.log(
      `${r.name} B=${r.B} T=${r.T} on ${r.device}: ${r.seconds.toFixed(3)} s/step, ` +
        `${r.tokens_per_s.toFixed(0)} tokens/s, CPU ${r.cpu_seconds.toFixed(3)} s/step, ` +
        `peak memory ${(r.peak_bytes / 2 ** 20).toFixed(0)} MiB`,
    );
  }
}

if (import.meta.main) Deno.exit(await runCommand("train_step", main));
