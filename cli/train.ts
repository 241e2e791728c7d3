/**
 * `deno task train`: train a GPT-2 from scratch, or from the first N blocks of a reference model,
 * on a prepared data folder or a single token shard.
 *
 * @module
 */
import { getGpu } from "@inheritune/kernels";
import {
  grow,
  inherit,
  initParams,
  loadModel,
  type ModelConfig,
  train,
  validateConfig,
} from "@inheritune/core";
import { BatchSampler, openDataset } from "@inheritune/data";
import { inheritFlags, intFlag, numberFlag, parseFlags, stringFlag, UsageError } from "./_flags.ts";
import { progressPrinter } from "./_progress.ts";
import { SERVE_FLAGS, serveTraining, withServeDefault } from "./serve.ts";

const FLAGS = {
  data: { type: "string" },
  out: { type: "string" },
  reference: { type: "string" },
  layers: { type: "string" },
  select: { type: "string" },
  blocks: { type: "string" },
  only: { type: "string" },
  "n-layer": { type: "string" },
  "n-head": { type: "string" },
  "n-embd": { type: "string" },
  steps: { type: "string" },
  batch: { type: "string" },
  ctx: { type: "string" },
  lr: { type: "string" },
  warmup: { type: "string" },
  "eval-every": { type: "string" },
  "eval-tokens": { type: "string" },
  "log-every": { type: "string" },
  accumulation: { type: "string" },
  subset: { type: "string" },
  epochs: { type: "string" },
  seed: { type: "string" },
  resume: { type: "boolean" },
  grow: { type: "boolean" },
  ...SERVE_FLAGS,
} as const;

/** Runs the command with its flags; with none, the Inheritune experiment on the embedded default. */
export async function main(args: string[]): Promise<void> {
  if (args.length === 0 || args.includes("--experiment")) {
    return await (await import("./experiment.ts")).main(args);
  }
  const f = parseFlags(withServeDefault(args), FLAGS);
  const dataPath = stringFlag(f.data, "data");
  const out = stringFlag(f.out, "out");
  const seed = intFlag(f.seed, "seed", { fallback: 1337, min: 0 });
  const B = intFlag(f.batch, "batch", { fallback: 8, min: 1 });
  const dataset = await openDataset(dataPath);
  // bare llm.c shards carry no meta.json: they are GPT-2 tokens
  const vocabSize = dataset.meta?.vocabSize ?? 50257;

  let config: ModelConfig;
  let params;
  if (f.resume === true) {
    ({ config, params } = await loadModel(out));
  } else if (f.reference !== undefined) {
    const reference = await loadModel(stringFlag(f.reference, "reference"));
    ({ config, params } = inherit(reference, inheritFlags(f, seed)));
  } else {
    for (const flag of ["layers", "select", "blocks", "only"] as const) {
      if (f[flag] !== undefined) throw new UsageError(`--${flag} needs --reference`);
    }
    config = validateConfig({
      n_layer: intFlag(f["n-layer"], "n-layer", { fallback: 4, min: 1 }),
      n_head: intFlag(f["n-head"], "n-head", { fallback: 4, min: 1 }),
      n_embd: intFlag(f["n-embd"], "n-embd", { fallback: 128, min: 1 }),
      vocab_size: vocabSize,
      n_positions: intFlag(f.ctx, "ctx", { fallback: 128, min: 1 }),
      layer_norm_epsilon: 1e-5,
      tokenizer: dataset.meta?.tokenizer ?? "gpt2",
    });
    params = initParams(config, seed);
  }
  if (vocabSize > config.vocab_size) {
    throw new UsageError(`data vocabulary ${vocabSize} exceeds the model's ${config.vocab_size}`);
  }
  const T = intFlag(f.ctx, "ctx", {
    fallback: Math.min(config.n_positions, 128),
    min: 1,
    max: config.n_positions,
  });
  const accumulation = intFlag(f.accumulation, "accumulation", { fallback: 1, min: 1 });
  const fraction = numberFlag(f.subset, "subset", { fallback: 1, min: 1e-9, max: 1 });
  const sampler = new BatchSampler(dataset.split("train"), {
    B,
    T,
    shuffle: true,
    seed,
    subset: fraction < 1 ? { fraction, seed } : undefined,
  });
  const steps = f.epochs !== undefined
    ? Math.ceil((numberFlag(f.epochs, "epochs", { min: 0 }) * sampler.windowsPerEpoch) / (B * accumulation))
    : intFlag(f.steps, "steps", { fallback: 100, min: 1 });
  const gpu = await getGpu();
  const val = dataset.splits.includes("val") ? dataset.split("val") : undefined;
  console.log(`device: ${gpu.description}`);
  if (f.grow === true) {
    if (f.reference === undefined || !val) {
      throw new UsageError("--grow needs --reference and data with a val split");
    }
    const { stages } = await grow({
      gpu,
      reference: await loadModel(stringFlag(f.reference, "reference")),
      batches: sampler,
      val,
      out,
      start: config.n_layer,
      steps,
      B,
      T,
      lr: numberFlag(f.lr, "lr", { fallback: 6e-4, min: 0 }),
      warmup: intFlag(f.warmup, "warmup", { fallback: 0, min: 0 }),
      evalTokens: f["eval-tokens"] === undefined
        ? undefined
        : intFlag(f["eval-tokens"], "eval-tokens", { min: 1 }),
      onMetrics: (n, m) => console.log(`[${n} blocks] step ${m.step} loss ${m.loss.toFixed(4)}`),
    });
    for (const s of stages) {
      console.log(
        `stage ${s.layers} blocks: val_loss ${s.val_loss.toFixed(4)} vs reference ${
          s.reference_val_loss.toFixed(4)
        }${s.matched ? " (matched)" : ""}`,
      );
    }
    return;
  }
  const show = progressPrinter(steps);
  const live = await serveTraining(f, {
    out,
    config,
    device: gpu.description,
    steps,
    resume: f.resume === true,
  });
  const result = await live.track(train({
    gpu,
    config,
    params,
    batches: sampler,
    val,
    out,
    steps,
    B,
    T,
    accumulation,
    lr: numberFlag(f.lr, "lr", { fallback: 6e-4, min: 0 }),
    warmup: intFlag(f.warmup, "warmup", { fallback: 0, min: 0 }),
    logEvery: intFlag(f["log-every"], "log-every", { fallback: 10, min: 1 }),
    evalEvery: intFlag(f["eval-every"], "eval-every", { fallback: 0, min: 0 }),
    evalTokens: f["eval-tokens"] === undefined
      ? undefined
      : intFlag(f["eval-tokens"], "eval-tokens", { min: 1 }),
    resume: f.resume === true,
    onMetrics: (m) => {
      show(m);
      live.onMetrics(m);
    },
    signal: live.signal,
    meta: { args },
  }));
  console.log(
    `done: step ${result.step}, loss ${result.loss.toFixed(4)}` +
      (result.valLoss !== undefined ? `, val_loss ${result.valLoss.toFixed(4)}` : "") + `; wrote ${out}`,
  );
}
