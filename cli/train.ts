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
  checkpointTokenizer,
  DECODER_FAMILIES_BY_NAME,
  type DecoderFamilyName,
  type FamilyName,
  grow,
  inherit,
  INHERIT_DEFAULTS,
  initParams,
  isDecoder,
  loadModel,
  type ModelConfig,
  train,
  TRAINER_DEFAULTS,
  validateConfig,
} from "@inheritune/core";
import { BatchSampler, type Tokenizer } from "@inheritune/data";
import {
  type CommandSpec,
  inheritFlags,
  intFlag,
  numberFlag,
  parseCommand,
  stringFlag,
  UsageError,
} from "./_flags.ts";
import { bareVocabulary, dataTokenizer, openModelData, validationSplit } from "./_data.ts";
import { progressPrinter } from "./_progress.ts";
import { DEFAULT_HOST, DEFAULT_PORT, serveTraining, withServeDefault } from "./serve.ts";

/** Defaults of `deno task train`: the trainer's, and the command's own. */
export const TRAIN_DEFAULTS = {
  ...TRAINER_DEFAULTS,
  family: "gpt2",
  nLayer: 4,
  nHead: 4,
  nEmbd: 128,
  ropeTheta: 10000,
  steps: 100,
  batch: 8,
  ctx: 128,
  seed: 1337,
} as const;

const D = TRAIN_DEFAULTS;

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
      help: "prepared data folder, folder of llm.c shards, or one shard (required)",
    },
    out: { type: "string", arg: "DIR", help: "run folder: model, metrics.jsonl, training state (required)" },
    reference: {
      type: "string",
      arg: "MODEL",
      help: "inherit from this model (folder, .gguf, .safetensors, .bin)",
    },
    layers: {
      type: "string",
      arg: "N",
      help: "blocks to inherit (with --grow: the first stage, default ⌊k/2⌋)",
    },
    select: {
      type: "string",
      arg: "S",
      help: "which blocks: first, even, last, list, ranked",
      default: INHERIT_DEFAULTS.select,
    },
    blocks: { type: "string", arg: "LIST", help: "block indices for --select list or ranked, e.g. 0,1,7" },
    only: {
      type: "string",
      arg: "PART",
      help: "inherit only attn or mlp sub-blocks, the rest fresh",
      default: INHERIT_DEFAULTS.only,
    },
    reinit: {
      type: "string",
      arg: "NAMES",
      help: "tensors outside the blocks to initialise afresh, e.g. ln_f,wpe or norm",
    },
    family: {
      type: "string",
      arg: "F",
      help: "architecture from scratch: gpt2, llama, qwen2, qwen3, mistral, phi3 or gemma3_text",
      default: D.family,
    },
    "n-layer": { type: "string", arg: "L", help: "blocks, from scratch", default: D.nLayer },
    "n-head": { type: "string", arg: "H", help: "attention heads, from scratch", default: D.nHead },
    "n-embd": { type: "string", arg: "C", help: "channels, from scratch", default: D.nEmbd },
    "n-kv-head": { type: "string", arg: "K", help: "LLaMA key/value heads (default --n-head)" },
    "n-hidden": { type: "string", arg: "H", help: "LLaMA MLP hidden size (default 8·C/3 rounded up to 8)" },
    "vocab-size": {
      type: "string",
      arg: "V",
      help: "vocabulary of bare shards without meta.json (default: from their tokens)",
    },
    steps: { type: "string", arg: "S", help: "optimizer steps", default: D.steps },
    epochs: {
      type: "string",
      arg: "E",
      help: "train this many epochs of the (subset of the) data instead of --steps",
    },
    batch: { type: "string", arg: "B", help: "sequences per micro-batch", default: D.batch },
    ctx: {
      type: "string",
      arg: "T",
      help: "tokens per sequence (at most the model's context)",
      default: D.ctx,
    },
    lr: { type: "string", arg: "X", help: "peak learning rate", default: D.lr },
    warmup: { type: "string", arg: "W", help: "linear warm-up steps", default: D.warmup },
    accumulation: {
      type: "string",
      arg: "A",
      help: "micro-batches per optimizer step",
      default: D.accumulation,
    },
    subset: {
      type: "string",
      arg: "F",
      help: "train on this seeded fraction of the training windows",
      default: 1,
    },
    seed: {
      type: "string",
      arg: "S",
      help: "seed of data order, subset and initialisation",
      default: D.seed,
    },
    "eval-every": {
      type: "string",
      arg: "K",
      help: "validate every K steps (0: at the end only)",
      default: D.evalEvery,
    },
    "eval-tokens": { type: "string", arg: "N", help: "validation targets per evaluation (default: all)" },
    "log-every": { type: "string", arg: "K", help: "log every K steps", default: D.logEvery },
    resume: { type: "boolean", help: "continue the run in --out from its saved state exactly" },
    grow: {
      type: "boolean",
      help: "the paper's loop: add reference blocks until the val loss matches the reference's",
    },
    serve: {
      type: "string",
      arg: "[PORT]",
      help: "serve the live dashboard while training",
      default: DEFAULT_PORT,
    },
    host: { type: "string", arg: "H", help: "address for --serve", default: DEFAULT_HOST },
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

/** A fresh model's configuration from the flags and the data's vocabulary. */
function scratchConfig(
  f: Record<string, unknown>,
  vocab: { vocabSize: number; tokenizer?: string },
  ctx: number,
): ModelConfig {
  for (const flag of ["layers", "select", "blocks", "only", "reinit"]) {
    if (f[flag] !== undefined) throw new UsageError(`--${flag} needs --reference`);
  }
  const family = (f.family ?? D.family) as FamilyName;
  const base = {
    n_layer: intFlag(f["n-layer"], "n-layer", { fallback: D.nLayer, min: 1 }),
    n_head: intFlag(f["n-head"], "n-head", { fallback: D.nHead, min: 1 }),
    n_embd: intFlag(f["n-embd"], "n-embd", { fallback: D.nEmbd, min: 1 }),
    vocab_size: vocab.vocabSize,
    n_positions: ctx,
    ...(vocab.tokenizer ? { tokenizer: vocab.tokenizer } : {}),
  };
  if (family === "gpt2") {
    for (const flag of ["n-kv-head", "n-hidden"]) {
      if (f[flag] !== undefined) {
        throw new UsageError(
          `--${flag} is a decoder setting: add --family llama (or another decoder family)`,
        );
      }
    }
    return validateConfig({ ...base, layer_norm_epsilon: 1e-5 });
  }
  const decoder = Object.hasOwn(DECODER_FAMILIES_BY_NAME, family)
    ? DECODER_FAMILIES_BY_NAME[family as DecoderFamilyName]
    : undefined;
  if (!decoder) {
    throw new UsageError(
      `--family must be gpt2 or one of ${Object.keys(DECODER_FAMILIES_BY_NAME).join(", ")}, got ${
        JSON.stringify(family)
      }`,
    );
  }
  return validateConfig({
    ...base,
    family: decoder.name,
    n_kv_head: intFlag(f["n-kv-head"], "n-kv-head", { fallback: base.n_head, min: 1 }),
    n_hidden: intFlag(f["n-hidden"], "n-hidden", {
      fallback: Math.ceil((8 * base.n_embd) / 3 / 8) * 8,
      min: 1,
    }),
    norm_eps: 1e-5,
    rope_theta: D.ropeTheta,
    tie_embeddings: true,
    ...decoder.features,
  });
}

/** The model's tokenizer, or undefined when it carries none (then the data's is adopted). */
async function modelTokenizer(model: Checkpoint, path: string): Promise<Tokenizer | undefined> {
  if (!model.tokenizerFiles && model.config.tokenizer === undefined && isDecoder(model.config)) {
    return undefined;
  }
  return await checkpointTokenizer(model, path);
}

/** Runs the command with its flags; with none, the Inheritune experiment on the embedded default. */
export async function main(args: string[]): Promise<void> {
  if (args.length === 0 || args.includes("--experiment")) {
    return await (await import("./experiment.ts")).main(args);
  }
  const f = parseCommand(COMMAND, withServeDefault(args));
  if (!f) return;
  const dataPath = stringFlag(f.data, "data");
  const out = stringFlag(f.out, "out");
  const seed = intFlag(f.seed, "seed", { fallback: D.seed, min: 0 });
  const B = intFlag(f.batch, "batch", { fallback: D.batch, min: 1 });

  // The model to start from: the run's own (resume), inherited, or fresh.
  let model: Checkpoint | undefined;
  let reference: Checkpoint | undefined;
  if (f.resume === true) model = await loadModel(out);
  else if (f.reference !== undefined) reference = await loadModel(stringFlag(f.reference, "reference"));
  if (reference) {
    const options = inheritFlags(f, seed);
    if (f.grow === true) options.layers ??= Math.max(1, Math.floor(reference.config.n_layer / 2));
    model = inherit(reference, options);
  }
  const source = model
    ? await modelTokenizer(model, f.resume === true ? out : String(f.reference))
    : undefined;
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
      vocab = { vocabSize: intFlag(f["vocab-size"], "vocab-size", { min: 1 }) };
    } else {
      vocab = bareVocabulary(probe);
      console.log(
        `${dataPath}: no meta.json; taking the tokens as ${
          vocab.tokenizer ?? "ids"
        } (vocabulary ${vocab.vocabSize})`,
      );
    }
    probe.close();
    config = scratchConfig(f, vocab, intFlag(f.ctx, "ctx", { fallback: D.ctx, min: 1 }));
    params = initParams(config, seed);
    dataset = await openModelData(dataPath, { vocabSize: config.vocab_size });
  }
  using _data = dataset;
  const T = intFlag(f.ctx, "ctx", {
    fallback: Math.min(config.n_positions, D.ctx),
    min: 1,
    max: config.n_positions,
  });
  const accumulation = intFlag(f.accumulation, "accumulation", { fallback: D.accumulation, min: 1 });
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
    : intFlag(f.steps, "steps", { fallback: D.steps, min: 1 });
  const val = validationSplit(dataset, T);
  if (!val) {
    console.log(`${dataPath}: no validation split of ${T + 1} tokens or more; training without validation`);
  }
  const lr = numberFlag(f.lr, "lr", { fallback: D.lr, min: 0 });
  const warmup = intFlag(f.warmup, "warmup", { fallback: D.warmup, min: 0 });
  const evalTokens = f["eval-tokens"] === undefined
    ? undefined
    : intFlag(f["eval-tokens"], "eval-tokens", { min: 1 });
  const gpu = await getGpu();
  console.log(`device: ${gpu.description}`);
  if (f.grow === true) {
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
    resume: f.resume === true,
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
    logEvery: intFlag(f["log-every"], "log-every", { fallback: D.logEvery, min: 1 }),
    evalEvery: intFlag(f["eval-every"], "eval-every", { fallback: D.evalEvery, min: 0 }),
    evalTokens,
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
