/**
 * `deno task train`: train a model (GPT-2 or a LLaMA-like family) from scratch, or from blocks of a reference
 * model, on a prepared data folder or bare llm.c shards; with no flags (or `--experiment`), the
 * Inheritune experiment on the embedded default (`experiment.ts`).
 *
 * @module
 */
import { getGpu } from "@inheritune/kernels";
import {
  type Checkpoint,
  DECODER_FAMILIES_BY_NAME,
  type DecoderFamilyName,
  DEFAULT_ROPE_THETA,
  DEFAULT_SEED,
  FAMILIES,
  type FamilyName,
  grow,
  inherit,
  INHERIT_DEFAULTS,
  initParams,
  loadModel,
  type ModelConfig,
  ownTokenizer,
  train,
  TRAINER_DEFAULTS,
  validateConfig,
} from "@inheritune/core";
import { BatchSampler, validationSplit, verifyShards } from "@inheritune/data";
import { type CommandSpec, type FlagValues, inheritFlags, parseCommand, UsageError } from "./_flags.ts";
import { bareVocabulary, dataTokenizer, openModelData } from "./_data.ts";
import { progressPrinter } from "./_progress.ts";
import { SERVE_FLAGS, serveTraining } from "./serve.ts";

/** Tokens per sequence without `--ctx`, or the model's context when that is smaller. */
const DEFAULT_CTX = 128;

/** The command line of `deno task train`. */
export const COMMAND = {
  name: "train",
  summary:
    "train a model from scratch or from a reference's blocks; with no flags, the Inheritune experiment on the embedded default",
  usage:
    "--data DATA --out DIR [--reference MODEL --layers N [--select S] [--only attn|mlp] [--reinit NAMES]] [--family gpt2|llama --n-layer L ...] [--steps S | --epochs E] [--batch B] [--ctx T] [--lr X] ...",
  flags: {
    data: {
      type: "string",
      arg: "DATA",
      help: "prepared data folder, folder of llm.c shards, or one shard",
      required: true,
    },
    out: {
      type: "string",
      arg: "DIR",
      help: "run folder: model, metrics.jsonl, training state",
      required: true,
    },
    reference: {
      type: "string",
      arg: "MODEL",
      help: "inherit from this model (folder, .gguf, .safetensors, .bin)",
    },
    layers: {
      type: "int",
      arg: "N",
      help: "blocks to inherit (with --grow: the first stage, default ⌊k/2⌋)",
      needs: "reference",
    },
    select: {
      type: "string",
      arg: "S",
      help:
        `which blocks: first, even, last, list, ranked (default ${INHERIT_DEFAULTS.select}; list for --blocks without --layers)`,
      needs: "reference",
    },
    blocks: {
      type: "list",
      arg: "LIST",
      help: "block indices for --select list or ranked, e.g. 0,1,7",
      needs: "reference",
    },
    only: {
      type: "string",
      arg: "PART",
      help: "inherit only attn or mlp sub-blocks, the rest fresh",
      default: INHERIT_DEFAULTS.only,
      needs: "reference",
    },
    reinit: {
      type: "list",
      arg: "NAMES",
      help: "tensors outside the blocks to initialise afresh, e.g. ln_f,wpe or norm",
      needs: "reference",
    },
    family: {
      type: "string",
      arg: "F",
      help: "architecture from scratch: gpt2, llama, qwen2, qwen3, mistral, phi3 or gemma3_text",
      default: "gpt2",
      choices: Object.keys(FAMILIES),
    },
    "n-layer": { type: "int", arg: "L", help: "blocks, from scratch", default: 4, min: 1 },
    "n-head": { type: "int", arg: "H", help: "attention heads, from scratch", default: 4, min: 1 },
    "n-embd": { type: "int", arg: "C", help: "channels, from scratch", default: 128, min: 1 },
    "n-kv-head": { type: "int", arg: "K", help: "LLaMA key/value heads (default --n-head)", min: 1 },
    "n-hidden": {
      type: "int",
      arg: "H",
      help: "LLaMA MLP hidden size (default 8·C/3 rounded up to 8)",
      min: 1,
    },
    "vocab-size": {
      type: "int",
      arg: "V",
      help: "vocabulary of bare shards without meta.json (default: from their tokens)",
      min: 1,
    },
    steps: { type: "int", arg: "S", help: "optimizer steps", default: 100, min: 1 },
    epochs: {
      type: "number",
      arg: "E",
      help: "train this many epochs of the (subset of the) data instead of --steps",
      min: 0,
    },
    batch: { type: "int", arg: "B", help: "sequences per micro-batch", default: 8, min: 1 },
    ctx: {
      type: "int",
      arg: "T",
      help:
        `tokens per sequence, at most the model's context (default ${DEFAULT_CTX}, or that context if smaller)`,
      min: 1,
    },
    lr: { type: "number", arg: "X", help: "peak learning rate", default: TRAINER_DEFAULTS.lr, min: 0 },
    warmup: {
      type: "int",
      arg: "W",
      help: "linear warm-up steps",
      default: TRAINER_DEFAULTS.warmup,
      min: 0,
    },
    accumulation: {
      type: "int",
      arg: "A",
      help: "micro-batches per optimizer step",
      default: TRAINER_DEFAULTS.accumulation,
      min: 1,
    },
    subset: {
      type: "number",
      arg: "F",
      help: "train on this seeded fraction of the training windows",
      default: 1,
      min: 1e-9,
      max: 1,
    },
    seed: {
      type: "int",
      arg: "S",
      help: "seed of data order, subset and initialisation",
      default: DEFAULT_SEED,
      min: 0,
    },
    "eval-every": {
      type: "int",
      arg: "K",
      help: "validate every K steps (0: at the end only)",
      default: TRAINER_DEFAULTS.evalEvery,
      min: 0,
    },
    "eval-tokens": {
      type: "int",
      arg: "N",
      help: "validation targets per evaluation (default: all)",
      min: 1,
    },
    "log-every": {
      type: "int",
      arg: "K",
      help: "log every K steps",
      default: TRAINER_DEFAULTS.logEvery,
      min: 1,
    },
    resume: { type: "boolean", help: "continue the run in --out from its saved state exactly" },
    grow: {
      type: "boolean",
      help: "the paper's loop: add reference blocks until the val loss matches the reference's",
    },
    ...SERVE_FLAGS,
    experiment: { type: "boolean", help: "run the Inheritune experiment instead (see --experiment --help)" },
  },
  notes: [
    "With no flags at all, `deno task train` runs the Inheritune experiment on the embedded default",
    "(stories260K on TinyStories); `deno task train --experiment --help` lists its flags.",
    "Data and model must share a tokenizer: a prepared folder's meta.json names it; bare shards are",
    "taken as the model's tokens (a fresh model: bytes or GPT-2 by their largest token, or --vocab-size).",
  ],
  examples: [
    "deno task train --data runs/data/tinystories --reference models/stories260K/model.gguf --layers 2 --out runs/inherited --steps 300",
    "deno task train --data runs/data/brown --out runs/scratch --n-layer 4 --n-head 4 --n-embd 128 --steps 1000",
    "deno task train --data runs/data/tinystories --reference models/stories260K/model.gguf --grow --steps 200 --out runs/grow",
  ],
} as const satisfies CommandSpec;

/** The flags of `deno task train`, parsed. */
type TrainFlags = FlagValues<typeof COMMAND>;

/** Whether `args` run the Inheritune experiment (no flags at all, or `--experiment`). */
export function runsExperiment(args: string[]): boolean {
  return args.length === 0 || args.some((a) => a === "--experiment" || a.startsWith("--experiment="));
}

/** A fresh model's configuration from the flags and the data's vocabulary. */
function scratchConfig(
  f: TrainFlags,
  vocab: { vocabSize: number; tokenizer?: string },
  ctx: number,
): ModelConfig {
  const family = f.family as FamilyName;
  const base = {
    n_layer: f["n-layer"],
    n_head: f["n-head"],
    n_embd: f["n-embd"],
    vocab_size: vocab.vocabSize,
    n_positions: ctx,
    ...(vocab.tokenizer ? { tokenizer: vocab.tokenizer } : {}),
  };
  if (family === "gpt2") {
    for (const flag of ["n-kv-head", "n-hidden"] as const) {
      if (f[flag] !== undefined) {
        throw new UsageError(
          `--${flag} is a decoder setting: add --family llama (or another decoder family)`,
        );
      }
    }
    return validateConfig({ ...base, layer_norm_epsilon: 1e-5 });
  }
  const decoder = DECODER_FAMILIES_BY_NAME[family as DecoderFamilyName];
  return validateConfig({
    ...base,
    family: decoder.name,
    n_kv_head: f["n-kv-head"] ?? base.n_head,
    n_hidden: f["n-hidden"] ?? Math.ceil((8 * base.n_embd) / 3 / 8) * 8,
    norm_eps: 1e-5,
    rope_theta: DEFAULT_ROPE_THETA,
    tie_embeddings: true,
    ...decoder.features,
  });
}

/** Runs the command with its flags; with none, the Inheritune experiment on the embedded default. */
export async function main(args: string[]): Promise<void> {
  if (runsExperiment(args)) return await (await import("./experiment.ts")).main(args);
  const f = parseCommand(COMMAND, args);
  if (!f) return;
  const { data: dataPath, out, seed, batch: B } = f;

  // The model to start from: the run's own (resume), inherited, or fresh.
  let model: Checkpoint | undefined;
  let reference: Checkpoint | undefined;
  if (f.resume) model = await loadModel(out);
  else if (f.reference !== undefined) reference = await loadModel(f.reference);
  if (reference) {
    const options = inheritFlags(f, seed);
    if (f.grow) options.layers ??= Math.max(1, Math.floor(reference.config.n_layer / 2));
    model = inherit(reference, options);
  }
  const source = model ? await ownTokenizer(model, f.resume ? out : f.reference!) : undefined;
  let dataset;
  let config: ModelConfig;
  let params;
  let tokenizerFiles = model?.tokenizerFiles;
  if (model) {
    ({ config, params } = model);
    dataset = await openModelData(dataPath, { vocabSize: config.vocab_size, tokenizer: source });
    if (!source && dataset.meta) {
      // A model without a tokenizer of its own (a llama2.c export) takes the data's.
      const definition = (await dataTokenizer(dataset))?.definition?.();
      if (definition) tokenizerFiles = new Map([[definition.file, definition.bytes]]);
      console.log(`the model carries no tokenizer: adopting the data's (${dataset.meta.tokenizer})`);
    }
  } else {
    const probe = await openModelData(dataPath, { vocabSize: Number.MAX_SAFE_INTEGER });
    const data = await dataTokenizer(probe);
    let vocab: { vocabSize: number; tokenizer?: string };
    if (data) {
      const builtin = data.definition === undefined;
      vocab = { vocabSize: data.vocabSize, tokenizer: builtin ? data.name : undefined };
      const definition = data.definition?.();
      if (definition) tokenizerFiles = new Map([[definition.file, definition.bytes]]);
    } else if (f["vocab-size"] !== undefined) {
      vocab = { vocabSize: f["vocab-size"] };
    } else {
      vocab = bareVocabulary(probe);
      console.log(
        `${dataPath}: no meta.json; taking the tokens as ${
          vocab.tokenizer ?? "ids"
        } (vocabulary ${vocab.vocabSize})`,
      );
    }
    probe.close();
    config = scratchConfig(f, vocab, f.ctx ?? DEFAULT_CTX);
    params = initParams(config, seed);
    dataset = await openModelData(dataPath, { vocabSize: config.vocab_size });
  }
  using _data = dataset;
  await verifyShards(dataset);
  const T = f.ctx ?? Math.min(config.n_positions, DEFAULT_CTX);
  if (T > config.n_positions) {
    throw new UsageError(`--ctx ${T} exceeds the model's context (n_positions ${config.n_positions})`);
  }
  const { accumulation, subset: fraction } = f;
  const sampler = new BatchSampler(dataset.split("train"), {
    B,
    T,
    shuffle: true,
    seed,
    subset: fraction < 1 ? { fraction, seed } : undefined,
  });
  const steps = f.epochs !== undefined
    ? Math.ceil((f.epochs * sampler.windowsPerEpoch) / (B * accumulation))
    : f.steps;
  const split = validationSplit(dataset, T);
  const val = split && dataset.split(split);
  if (!val) {
    console.log(`${dataPath}: no validation split of ${T + 1} tokens or more; training without validation`);
  }
  const { lr, warmup, "eval-tokens": evalTokens } = f;
  const gpu = await getGpu();
  console.log(`device: ${gpu.description}`);
  if (f.grow) {
    if (!reference || !val) throw new UsageError("--grow needs --reference and data with a validation split");
    const { stages } = await grow({
      gpu,
      reference: { ...reference, tokenizerFiles },
      batches: sampler,
      val,
      out,
      start: config.n_layer,
      steps,
      B,
      T,
      lr,
      warmup,
      evalTokens,
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
    resume: f.resume,
  });
  const result = await live.track(train({
    gpu,
    config,
    params,
    tokenizerFiles,
    batches: sampler,
    val,
    out,
    steps,
    B,
    T,
    accumulation,
    lr,
    warmup,
    logEvery: f["log-every"],
    evalEvery: f["eval-every"],
    evalTokens,
    resume: f.resume,
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
