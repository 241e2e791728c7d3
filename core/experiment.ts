/**
 * The Inheritune experiment (the paper's GPT-2 comparison, at a small scale): derive a target
 * from a reference model's blocks, train it on a subset of the training split, train the same
 * architecture from scratch with the same data, steps and seed, and compare every model on the
 * held-out split. Writes `summary.json`, `report.md` and `curves.svg`.
 *
 * @module
 */
import { BatchSampler, type TokenSource } from "@inheritune/data";
import { join } from "node:path";
import type { Gpu } from "@inheritune/kernels";
import type { Checkpoint } from "./checkpoint.ts";
import { validationLoss } from "./evaluate.ts";
import { inherit, type InheritOptions } from "./inherit.ts";
import { initParams } from "./init.ts";
import { countParams, createModel } from "./model.ts";
import { type Curve, lossCurvesSvg, markdownTable } from "./report.ts";
import { type StepMetrics, train, TRAINER_DEFAULTS } from "./trainer.ts";
import { writeAll, writeAtomic } from "./_file_io.ts";

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
  /** Validation curve (step, loss). */
  curve?: [number, number][];
  /** Wall-clock seconds of training. */
  train_seconds?: number;
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
  const seed = options.seed ?? 1337;
  const fraction = options.subset ?? 0.1;
  const variants = options.variants ?? DEFAULT_VARIANTS;
  await Deno.mkdir(options.out, { recursive: true });
  const evaluate = async (config: Checkpoint["config"], params: Checkpoint["params"]) => {
    const model = createModel(gpu, config, params, { B, T });
    const r = await validationLoss(model, options.val, { maxTokens: options.evalTokens });
    model.destroy();
    return r;
  };
  const refEval = await evaluate(reference.config, reference.params);
  const summary: ExperimentSummary = {
    reference: {
      val_loss: refEval.loss,
      perplexity: refEval.perplexity,
      n_layer: reference.config.n_layer,
      params: countParams(reference.config),
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
    const started = performance.now();
    const result = await train({
      gpu,
      config,
      params,
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
    const points = result.history.filter((m) => m.val_loss !== undefined).map((m) => [m.step, m.val_loss!]);
    const final = await evaluate(config, result.params);
    summary[variant.name] = {
      val_loss: final.loss,
      perplexity: final.perplexity,
      n_layer: config.n_layer,
      params: countParams(config),
      blocks: target.blocks,
      curve: points as [number, number][],
      train_seconds: (performance.now() - started) / 1000,
    };
    curves.push({ name: variant.name, points: points as [number, number][] });
  }
  const svg = lossCurvesSvg(curves, { reference: refEval.loss, title: "validation loss (held-out split)" });
  await writeText(join(options.out, "curves.svg"), svg);
  await writeText(join(options.out, "summary.json"), JSON.stringify(summary, null, 2) + "\n");
  await writeText(join(options.out, "report.md"), experimentReport(summary));
  return summary;
}

async function writeText(path: string, text: string): Promise<void> {
  await writeAtomic(path, (f) => writeAll(f, new TextEncoder().encode(text)));
}

/** The Markdown report of a summary: settings, the results table, the curves. */
export function experimentReport(summary: ExperimentSummary): string {
  const s = summary.settings;
  const rows = Object.entries(summary)
    .filter(([name]) => name !== "settings")
    .map(([name, r]) => {
      const v = r as VariantResult;
      const source = name === "reference" ? "-" : v.blocks ? `blocks ${v.blocks.join(",")}` : "fresh init";
      return [
        name,
        v.n_layer,
        v.params.toLocaleString("en-US"),
        source,
        v.val_loss.toFixed(4),
        v.perplexity.toFixed(3),
      ];
    });
  return [
    "# Inheritune experiment",
    "",
    `Each model below the reference trained ${s.steps} steps of ${s.B}x${s.T} tokens on a ${
      Number(s.subset) * 100
    }% subset (${s.train_windows} windows) of the training split, seed ${s.seed}, lr ${s.lr}; validation loss on ` +
    `${s.eval_tokens} held-out tokens.`,
    "",
    markdownTable(["model", "blocks", "params", "initialised from", "val loss", "perplexity"], rows),
    "![validation loss curves](curves.svg)",
    "",
  ].join("\n");
}
