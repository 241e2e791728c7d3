/**
 * `deno task train` with no flags, or `deno task train --experiment [stories|brown] ...`: the
 * Inheritune experiment on an embedded default. `stories` (the default) inherits from
 * stories260K, a real pretrained LLaMA-family model, on held-out TinyStories text; `brown`
 * inherits from the GPT-2 this project trained on the Brown corpus. The data is prepared with the
 * reference's own tokenizer on first use.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { getGpu } from "@inheritune/kernels";
import {
  checkpointTokenizer,
  DEFAULT_SEED,
  loadModel,
  runExperiment,
  type Variant,
  type VariantResult,
} from "@inheritune/core";
import { type DocumentsOption, prepare, validationSplit } from "@inheritune/data";
import { analyzeModel } from "@inheritune/eval";
import { type CommandSpec, parseCommand, UsageError } from "./_flags.ts";
import { openModelData } from "./_data.ts";
import { progressPrinter } from "./_progress.ts";

const path = (relative: string): string => fileURLToPath(new URL(relative, import.meta.url));

/** One embedded experiment: the reference, its data, and the training budget of each variant. */
export interface ExperimentDefault {
  /** One line for the help. */
  description: string;
  /** The reference model. */
  reference: string;
  /** Text files or a built-in corpus, prepared with the reference's tokenizer. */
  inputs: string[];
  /** How the text is cut into documents. */
  documents: DocumentsOption;
  /** Fraction of documents held out for validation. */
  valFraction: number;
  /** Blocks of the targets. */
  layers: number;
  /** Fraction of the training windows the targets train on. */
  subset: number;
  /** Optimizer steps per variant. */
  steps: number;
  /** Sequences per batch. */
  B: number;
  /** Tokens per sequence. */
  T: number;
  /** Peak learning rate. */
  lr: number;
  /** Warm-up steps. */
  warmup: number;
  /** Validation every this many steps. */
  evalEvery: number;
  /** Validation targets per evaluation. */
  evalTokens: number;
  /** Seed of data, subset and initialisation. */
  seed: number;
  /** What the `reinit` variant initialises afresh: the official code's final norm (and GPT-2's wpe). */
  reinit: string[];
}

/** The embedded experiments; `stories` is what `deno task train` runs. */
export const EXPERIMENTS: Record<"stories" | "brown", ExperimentDefault> = {
  stories: {
    description: "stories260K (pretrained LLaMA, 5 blocks, GQA) → 2 blocks, on held-out TinyStories text",
    reference: path("../models/stories260K/model.gguf"),
    inputs: [path("../corpora/tinystories/valid_head.txt")],
    documents: "paragraphs",
    valFraction: 0.1,
    layers: 2,
    subset: 0.5,
    steps: 300,
    B: 8,
    T: 256,
    lr: 2e-3,
    warmup: 20,
    evalEvery: 25,
    evalTokens: 8192,
    seed: DEFAULT_SEED,
    reinit: ["norm"],
  },
  brown: {
    description: "brown-ref (GPT-2 this project trained, 6 blocks, bytes) → 3 blocks, on the Brown corpus",
    reference: path("../models/brown-ref"),
    inputs: ["brown"],
    documents: "files",
    valFraction: 0.05,
    layers: 3,
    subset: 0.1,
    steps: 300,
    B: 8,
    T: 64,
    lr: 2e-3,
    warmup: 20,
    evalEvery: 25,
    evalTokens: 8192,
    seed: DEFAULT_SEED,
    reinit: ["ln_f", "wpe"],
  },
};

/** Variants by name: the default pair, the paper's ablations, and other block selections. */
const VARIANTS: Record<string, Variant> = {
  inherited: { name: "inherited", inherit: { select: "first", only: "both" } },
  scratch: { name: "scratch" },
  attn: { name: "attn", inherit: { select: "first", only: "attn" } },
  mlp: { name: "mlp", inherit: { select: "first", only: "mlp" } },
  even: { name: "even", inherit: { select: "even" } },
  last: { name: "last", inherit: { select: "last" } },
  ranked: { name: "ranked", inherit: { select: "ranked" } },
  reinit: { name: "reinit", inherit: { select: "first" } },
};

/** The command line of `deno task train --experiment`. */
export const COMMAND = {
  name: "train --experiment",
  summary:
    "the Inheritune experiment: inherited targets against scratch at an equal budget, evaluated on held-out text",
  usage:
    "[NAME] [--variants inherited,scratch,attn,mlp,even,last,ranked,reinit] [--layers N] [--steps S] [--out DIR]",
  flags: {
    experiment: {
      type: "string",
      arg: "[NAME]",
      help: Object.keys(EXPERIMENTS).join(" or "),
      default: "stories",
      bare: "stories",
      choices: Object.keys(EXPERIMENTS),
    },
    variants: {
      type: "list",
      arg: "LIST",
      help: `models to train: ${Object.keys(VARIANTS).join(", ")}`,
      default: ["inherited", "scratch"],
      choices: Object.keys(VARIANTS),
    },
    layers: { type: "int", arg: "N", help: "blocks of the targets (default the experiment's)", min: 1 },
    reinit: {
      type: "list",
      arg: "NAMES",
      help: "what the reinit variant initialises afresh (default the experiment's)",
    },
    steps: {
      type: "int",
      arg: "S",
      help: "optimizer steps per variant (default the experiment's)",
      min: 1,
    },
    out: { type: "string", arg: "DIR", help: "run folder (default runs/inheritune-<time>)" },
  },
  notes: Object.entries(EXPERIMENTS).map(([name, e]) =>
    `${name.padEnd(8)} ${e.description}: ${e.steps} steps of ${e.B}x${e.T} on ${
      e.subset * 100
    }% of the training split`
  ),
  examples: [
    "deno task train",
    "deno task train --experiment --variants inherited,scratch,attn,mlp,even,last,ranked,reinit",
    "deno task train --experiment brown",
  ],
} as const satisfies CommandSpec;

/** Runs the experiment (the default, or as the flags say) and prints where its report is. */
export async function main(args: string[] = []): Promise<void> {
  const f = parseCommand(COMMAND, args);
  if (!f) return;
  const name = f.experiment as keyof typeof EXPERIMENTS;
  const d = EXPERIMENTS[name];
  const steps = f.steps ?? d.steps;
  const names = f.variants;
  const reference = await loadModel(d.reference);
  const layers = f.layers ?? d.layers;
  if (layers > reference.config.n_layer) {
    throw new UsageError(
      `--layers must be ≤ ${reference.config.n_layer} (the reference's blocks), got ${layers}`,
    );
  }
  const reinit = f.reinit ?? d.reinit;
  const tokenizer = await checkpointTokenizer(reference, d.reference);
  // One prepared folder per experiment and tokenizer definition, so a stale one is never reused.
  const data = `runs/data/${name}-${tokenizer.hash.slice(0, 12)}`;
  if (!await Deno.stat(`${data}/meta.json`).then(() => true, () => false)) {
    console.log(
      `preparing ${d.inputs.join(", ")} with the reference's ${tokenizer.name} tokenizer into ${data}`,
    );
    await prepare({
      inputs: d.inputs,
      out: data,
      tokenizer,
      documents: d.documents,
      valFraction: d.valFraction,
    });
  }
  using dataset = await openModelData(data, { vocabSize: reference.config.vocab_size, tokenizer });
  const split = validationSplit(dataset, d.T);
  if (!split) {
    throw new UsageError(`${data}: the validation split is shorter than one window of ${d.T + 1} tokens`);
  }
  const val = dataset.split(split);
  const gpu = await getGpu();
  const out = f.out ??
    `runs/inheritune-${new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19)}`;
  const variants: Variant[] = [];
  for (const v of names) {
    if (v === "ranked") {
      const { ranking } = await analyzeModel(reference, val, { T: d.T });
      console.log(`ranked selection: blocks by block influence, most first: ${ranking.join(",")}`);
      variants.push({ name: v, inherit: { select: "ranked", blocks: ranking } });
    } else if (v === "reinit") {
      variants.push({ name: v, inherit: { ...VARIANTS[v].inherit, reinit } });
    } else {
      variants.push(VARIANTS[v]);
    }
  }
  console.log(`device: ${gpu.description}`);
  console.log(
    `${name}: reference ${d.reference} (${reference.config.n_layer} blocks); ${layers}-block targets ` +
      `(${names.join(", ")}) train on ${d.subset * 100}% of the training split for ${steps} steps each`,
  );
  let show = progressPrinter(steps);
  const summary = await runExperiment({
    gpu,
    reference,
    train: dataset.split("train"),
    val,
    out,
    layers,
    subset: d.subset,
    steps,
    B: d.B,
    T: d.T,
    lr: d.lr,
    warmup: d.warmup,
    seed: d.seed,
    evalEvery: d.evalEvery,
    evalTokens: d.evalTokens,
    variants,
    tokenizer,
    onProgress: (variant, m) => m ? show(m) : (show = progressPrinter(steps, `${variant}: `)),
  });
  for (const v of ["reference", ...names]) {
    const r = summary[v] as VariantResult;
    console.log(
      `${v.padEnd(10)} val_loss ${r.val_loss.toFixed(4)}  (${r.n_layer} blocks)  ${JSON.stringify(r.sample)}`,
    );
  }
  console.log(`wrote ${out}/summary.json, ${out}/report.md and ${out}/curves.svg`);
}
