/**
 * The Inheritune experiment (the paper's comparison, at a small scale): derive a target from a
 * reference model's blocks, train it on a subset of the training split, train the same
 * architecture from scratch with the same data, steps and seed, and compare every model on the
 * held-out split, with a greedy sample of each from the same prompt. Writes `summary.json`,
 * `report.md` and `curves.svg`.
 *
 * @module
 */
import { BatchSampler, type Tokenizer, type TokenSource, writeAll } from "@inheritune/data";
import { join } from "node:path";
import type { Gpu } from "@inheritune/kernels";
import type { Checkpoint } from "./family.ts";
import { DEFAULT_SEED } from "./config.ts";
import { validationLoss } from "./evaluate.ts";
import { inherit, type InheritOptions } from "./inherit.ts";
import { initParams } from "./init.ts";
import { countParams, createModel } from "./model.ts";
import { type Curve, lossCurvesSvg, markdownTable } from "./report.ts";
import { type StepMetrics, train, TRAINER_DEFAULTS } from "./trainer.ts";
import { generate, promptTokens } from "./generate.ts";
import { writeAtomic } from "./_file_io.ts";

/** One model to train: inherited with `inherit`, or from scratch when it is absent. */
export interface Variant {
  /** Name in the summary, e.g. "inherited" or "scratch". */
  name: string;
  /** How to derive it from the reference (`layers` defaults to the experiment's). */
  inherit?: InheritOptions;
}

/** The default comparison: the paper's first-n inheritance against training from scratch. */
export const DEFAULT_VARIANTS: Variant[] = [
  { name: "inherited", inherit: { select: "first", only: "both" } },
  { name: "scratch" },
];

/** Options of {@linkcode runExperiment}. */
export interface ExperimentOptions {
  /** The device. */
  gpu: Gpu;
  /** The reference model. */
  reference: Checkpoint;
  /** Training split. */
  train: TokenSource;
  /** Held-out split. */
  val: TokenSource;
  /** Run folder. */
  out: string;
  /** Blocks of the target (default: half the reference's). */
  layers?: number;
  /** Fraction of the training windows used (0.1). */
  subset?: number;
  /** Optimizer steps per variant. */
  steps: number;
  /** Sequences per batch. */
  B: number;
  /** Context length (default: the reference's n_positions). */
  T?: number;
  /** Peak learning rate (default the trainer's). */
  lr?: number;
  /** Warm-up steps. */
  warmup?: number;
  /** Seed of the data subset, shuffle and fresh initialisation. */
  seed?: number;
  /** Validation every this many steps (for the curves). */
  evalEvery: number;
  /** Validation targets per evaluation (all when omitted). */
  evalTokens?: number;
  /** Models to train (default {@linkcode DEFAULT_VARIANTS}). */
  variants?: Variant[];
  /** The models' tokenizer, for the samples; none are drawn without it. */
  tokenizer?: Tokenizer;
  /** Prompt of the greedy samples ("Once upon a time"). */
  samplePrompt?: string;
  /** Tokens per sample (40). */
  sampleTokens?: number;
  /** Progress: called before each variant and for each logged step. */
  onProgress?: (variant: string, m?: StepMetrics) => void;
}

/** Result of one model in the summary. */
export interface VariantResult {
  /** Final validation loss on the held-out split. */
  val_loss: number;
  /** exp(val_loss). */
  perplexity: number;
  /** Blocks. */
  n_layer: number;
  /** Parameters. */
  params: number;
  /** Reference blocks inherited (absent for scratch and the reference). */
  blocks?: number[];
  /** Where its weights came from, in words. */
  source: string;
  /** Validation curve (step, loss), from step 0: the loss before training. */
  curve?: [number, number][];
  /** Wall-clock seconds of training. */
  train_seconds?: number;
  /** Tokens trained on (steps · B · T; 0 for the reference). */
  tokens_trained: number;
  /** Greedy continuation of the sample prompt, prompt included. */
  sample?: string;
}

/** `summary.json`: the reference and each variant, plus the settings. */
export interface ExperimentSummary {
  /** The reference model. */
  reference: VariantResult;
  /** Settings that reproduce the run. */
  settings: Record<string, unknown>;
  /** Each trained variant by name. */
  [variant: string]: VariantResult | Record<string, unknown>;
}

/** Runs the experiment and writes its report into `options.out`; returns the summary. */
export async function runExperiment(options: ExperimentOptions): Promise<ExperimentSummary> {
  const { gpu, reference, B } = options;
  const T = options.T ?? reference.config.n_positions;
  const layers = options.layers ?? Math.max(1, Math.floor(reference.config.n_layer / 2));
  const seed = options.seed ?? DEFAULT_SEED;
  const fraction = options.subset ?? 0.1;
  const variants = options.variants ?? DEFAULT_VARIANTS;
  await Deno.mkdir(options.out, { recursive: true });
  const evaluate = async (config: Checkpoint["config"], params: Checkpoint["params"]) => {
    const model = createModel(gpu, config, params, { B, T });
    const r = await validationLoss(model, options.val, { maxTokens: options.evalTokens });
    model.destroy();
    return r;
  };
  const prompt = options.tokenizer &&
    promptTokens(options.tokenizer, options.samplePrompt ?? "Once upon a time");
  const sample = async (model: Checkpoint): Promise<string | undefined> => {
    if (!prompt || !options.tokenizer) return undefined;
    const ids = await generate(gpu, model, {
      prompt,
      maxNewTokens: options.sampleTokens ?? 40,
      eos: options.tokenizer.eosToken,
    });
    return options.tokenizer.decode([...prompt, ...ids]);
  };
  const refEval = await evaluate(reference.config, reference.params);
  const summary: ExperimentSummary = {
    reference: {
      val_loss: refEval.loss,
      perplexity: refEval.perplexity,
      n_layer: reference.config.n_layer,
      params: countParams(reference.config),
      tokens_trained: 0,
      source: "pretrained",
      sample: await sample(reference),
    },
    settings: {
      layers,
      subset: fraction,
      steps: options.steps,
      B,
      T,
      lr: options.lr ?? TRAINER_DEFAULTS.lr,
      warmup: options.warmup ?? TRAINER_DEFAULTS.warmup,
      seed,
      eval_every: options.evalEvery,
      eval_tokens: refEval.tokens,
      train_windows: 0,
    },
  };
  const curves: Curve[] = [];
  for (const variant of variants) {
    options.onProgress?.(variant.name);
    const target = variant.inherit
      ? inherit(reference, { layers, seed, ...variant.inherit })
      : { config: { ...reference.config, n_layer: layers }, params: undefined, blocks: undefined };
    const config = target.config;
    const params = target.params ?? initParams(config, seed);
    const sampler = new BatchSampler(options.train, {
      B,
      T,
      shuffle: true,
      seed,
      subset: { fraction, seed },
    });
    summary.settings.train_windows = sampler.windowsPerEpoch;
    // Where each target starts is the method's point (an inherited target starts far below one
    // from scratch); the evaluation runs on a model of its own, so training is unchanged by it.
    const initial = await evaluate(config, params);
    const started = performance.now();
    const result = await train({
      gpu,
      config,
      params,
      tokenizerFiles: reference.tokenizerFiles,
      batches: sampler,
      val: options.val,
      out: join(options.out, variant.name),
      steps: options.steps,
      B,
      T,
      lr: options.lr,
      warmup: options.warmup,
      logEvery: options.evalEvery,
      evalEvery: options.evalEvery,
      evalTokens: options.evalTokens,
      onMetrics: (m) => options.onProgress?.(variant.name, m),
      meta: { variant },
    });
    const points: [number, number][] = [[0, initial.loss]];
    for (const m of result.history) if (m.val_loss !== undefined) points.push([m.step, m.val_loss]);
    const trainSeconds = (performance.now() - started) / 1000;
    const final = await evaluate(config, result.params);
    summary[variant.name] = {
      val_loss: final.loss,
      perplexity: final.perplexity,
      n_layer: config.n_layer,
      params: countParams(config),
      blocks: target.blocks,
      source: describe(variant, target.blocks),
      curve: points,
      train_seconds: trainSeconds,
      tokens_trained: result.step * B * T,
      sample: await sample({ config, params: result.params }),
    };
    curves.push({ name: variant.name, points });
  }
  const svg = lossCurvesSvg(curves, { reference: refEval.loss, title: "validation loss (held-out split)" });
  await writeText(join(options.out, "curves.svg"), svg);
  await writeText(join(options.out, "summary.json"), JSON.stringify(summary, null, 2) + "\n");
  await writeText(join(options.out, "report.md"), experimentReport(summary));
  return summary;
}

/** Where a variant's weights come from: "blocks 0,1", "blocks 0,1 (attn only), norm re-initialised", "fresh init". */
function describe(variant: Variant, blocks?: number[]): string {
  if (!variant.inherit || !blocks) return "fresh init";
  const only = variant.inherit.only && variant.inherit.only !== "both"
    ? ` (${variant.inherit.only} only)`
    : "";
  const reinit = variant.inherit.reinit?.length
    ? `; ${variant.inherit.reinit.join(", ")} re-initialised`
    : "";
  return `reference blocks ${blocks.join(",")}${only}${reinit}`;
}

async function writeText(path: string, text: string): Promise<void> {
  await writeAtomic(path, (f) => writeAll(f, new TextEncoder().encode(text)));
}

/** The Markdown report of a summary: settings, the results table, the samples, the curves. */
export function experimentReport(summary: ExperimentSummary): string {
  const s = summary.settings;
  const models = Object.entries(summary).filter(([name]) => name !== "settings") as [string, VariantResult][];
  const rows = models.map(([name, v]) => [
    name,
    v.n_layer,
    v.params.toLocaleString("en-US"),
    v.source,
    v.tokens_trained.toLocaleString("en-US"),
    v.val_loss.toFixed(4),
    v.perplexity.toFixed(3),
  ]);
  const samples = models.filter(([, v]) => v.sample !== undefined).flatMap(([name, v]) => [
    `**${name}**: ${JSON.stringify(v.sample)}`,
    "",
  ]);
  return [
    "# Inheritune experiment",
    "",
    `Each model below the reference trained ${s.steps} steps of ${s.B}x${s.T} tokens on a ${
      Number(s.subset) * 100
    }% subset (${s.train_windows} windows) of the training split, seed ${s.seed}, lr ${s.lr}; validation loss on ` +
    `${s.eval_tokens} held-out tokens.`,
    "",
    markdownTable(
      ["model", "blocks", "params", "initialised from", "tokens trained", "val loss", "perplexity"],
      rows,
    ),
    ...(samples.length > 0 ? ["## Greedy samples", "", ...samples] : []),
    "![validation loss curves](curves.svg)",
    "",
  ].join("\n");
}
