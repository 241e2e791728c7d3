/**
 * Inheritune's loop for choosing n: start from the reference's first few blocks, train for a
 * budget, compare the validation loss with the reference's on the same split, and while it falls
 * short append the reference's next block(s) to the trained model and continue, until it matches
 * or the target is as deep as the reference.
 *
 * @module
 */
import { join } from "node:path";
import type { Gpu } from "@inheritune/kernels";
import { writeAll } from "@inheritune/data";
import { saveModel } from "./checkpoint.ts";
import { appendLayers } from "./config.ts";
import type { Checkpoint } from "./family.ts";
import { type TokenReader, validationLoss } from "./evaluate.ts";
import { inherit } from "./inherit.ts";
import { createModel, family, paramSpecs } from "./model.ts";
import { type BatchSource, type StepMetrics, train } from "./trainer.ts";
import { writeAtomic } from "./_file_io.ts";

/** Options of {@linkcode grow}. */
export interface GrowOptions {
  /** The device. */
  gpu: Gpu;
  /** The reference model. */
  reference: Checkpoint;
  /** Training batches, consumed across stages. */
  batches: BatchSource;
  /** Held-out split on which the target must match the reference. */
  val: TokenReader;
  /** Run folder: one sub-folder per stage, the final model, `grow.json`. */
  out: string;
  /** Blocks of the first stage (default ⌊k/2⌋ of the reference's k, as the paper's Algorithm 1). */
  start?: number;
  /** Blocks appended per stage (1). */
  increment?: number;
  /** Optimizer steps per stage. */
  steps: number;
  /** Sequences per batch. */
  B: number;
  /** Context length. */
  T: number;
  /** Peak learning rate. */
  lr?: number;
  /** Warm-up steps of each stage. */
  warmup?: number;
  /** Validation targets per evaluation (all when omitted). */
  evalTokens?: number;
  /** Relative slack: a stage matches when val ≤ reference·(1 + tolerance) (0). */
  tolerance?: number;
  /** Logged steps, per stage. */
  onMetrics?: (layers: number, m: StepMetrics) => void;
}

/** One stage of the loop. */
export interface GrowStage {
  /** Blocks trained in this stage. */
  layers: number;
  /** Validation loss after the stage. */
  val_loss: number;
  /** The reference's validation loss on the same tokens. */
  reference_val_loss: number;
  /** Whether the stage matched the reference. */
  matched: boolean;
}

/** Runs the loop; writes `out/grow.json` and the last stage's model into `out`. */
export async function grow(options: GrowOptions): Promise<{ stages: GrowStage[]; model: Checkpoint }> {
  const { gpu, reference, B, T } = options;
  const depth = reference.config.n_layer;
  const increment = options.increment ?? 1;
  const refModel = createModel(gpu, reference.config, reference.params, { B, T });
  const refLoss = (await validationLoss(refModel, options.val, { maxTokens: options.evalTokens })).loss;
  refModel.destroy();
  let model: Checkpoint = inherit(reference, { layers: options.start ?? Math.max(1, Math.floor(depth / 2)) });
  const stages: GrowStage[] = [];
  while (true) {
    const n = model.config.n_layer;
    const result = await train({
      gpu,
      config: model.config,
      params: model.params,
      tokenizerFiles: model.tokenizerFiles,
      batches: options.batches,
      val: options.val,
      out: join(options.out, `stage-${n}`),
      steps: options.steps,
      B,
      T,
      lr: options.lr,
      warmup: options.warmup,
      evalTokens: options.evalTokens,
      onMetrics: (m) => options.onMetrics?.(n, m),
    });
    model = { ...model, params: result.params };
    const valLoss = result.valLoss!;
    const matched = valLoss <= refLoss * (1 + (options.tolerance ?? 0));
    stages.push({ layers: n, val_loss: valLoss, reference_val_loss: refLoss, matched });
    if (matched || n >= depth) break;
    model = appendBlocks(model, reference, Math.min(depth, n + increment));
  }
  await saveModel(options.out, model);
  const json = JSON.stringify({ reference_val_loss: refLoss, stages }, null, 2) + "\n";
  await writeAtomic(join(options.out, "grow.json"), (f) => writeAll(f, new TextEncoder().encode(json)));
  return { stages, model };
}

/** `model` (the first n blocks of a stack) extended with reference blocks n..layers-1. */
export function appendBlocks(model: Checkpoint, reference: Checkpoint, layers: number): Checkpoint {
  const params = new Map(model.params);
  const added = Array.from({ length: layers - model.config.n_layer }, (_, i) => model.config.n_layer + i);
  const config = appendLayers(model.config, reference.config, added);
  for (const spec of paramSpecs(config)) {
    if (spec.layer < model.config.n_layer) continue;
    params.set(spec.name, reference.params.get(family(config).blockParamName(spec.layer, spec.key))!.slice());
  }
  return { ...model, config, params };
}
