/**
 * `deno task train` with no flags: the Inheritune experiment on the embedded default, the
 * reference model in `models/brown-ref` (trained by this project on the `brown` corpus, see its
 * README) and the `brown` corpus itself, prepared on first use.
 *
 * @module
 */
import { getGpu } from "@inheritune/kernels";
import { loadModel, runExperiment, type VariantResult } from "@inheritune/core";
import { openDataset, prepare } from "@inheritune/data";
import { fileURLToPath } from "node:url";
import { progressPrinter } from "./_progress.ts";

/** The embedded default's settings: what `deno task train` runs. */
export const DEFAULT_EXPERIMENT = {
  reference: fileURLToPath(new URL("../models/brown-ref", import.meta.url)),
  data: "runs/data/brown-bytes",
  subset: 0.1,
  steps: 200,
  B: 8,
  T: 64,
  lr: 2e-3,
  warmup: 20,
  evalEvery: 25,
  evalTokens: 8192,
  seed: 1337,
} as const;

/** Runs the default experiment and prints where its report is. */
export async function main(): Promise<void> {
  const d = DEFAULT_EXPERIMENT;
  const reference = await loadModel(d.reference);
  try {
    await Deno.stat(`${d.data}/meta.json`);
  } catch {
    console.log(`preparing the brown corpus (bytes tokenizer) into ${d.data}`);
    await prepare({ inputs: ["brown"], out: d.data, tokenizer: "bytes" });
  }
  const dataset = await openDataset(d.data, { vocabSize: reference.config.vocab_size });
  const gpu = await getGpu();
  const out = `runs/inheritune-${new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19)}`;
  const layers = Math.floor(reference.config.n_layer / 2);
  console.log(`device: ${gpu.description}`);
  console.log(
    `reference ${d.reference}: ${reference.config.n_layer} blocks; inheriting the first ${layers}, ` +
      `training on ${d.subset * 100}% of the training split for ${d.steps} steps, then the same from scratch`,
  );
  let show = progressPrinter(d.steps);
  const summary = await runExperiment({
    gpu,
    reference,
    train: dataset.split("train"),
    val: dataset.split("val"),
    out,
    layers,
    subset: d.subset,
    steps: d.steps,
    B: d.B,
    T: d.T,
    lr: d.lr,
    warmup: d.warmup,
    seed: d.seed,
    evalEvery: d.evalEvery,
    evalTokens: d.evalTokens,
    onProgress: (variant, m) => m ? show(m) : (show = progressPrinter(d.steps, `${variant}: `)),
  });
  for (const name of ["reference", "inherited", "scratch"]) {
    const r = summary[name] as VariantResult;
    console.log(`${name.padEnd(10)} val_loss ${r.val_loss.toFixed(4)}  (${r.n_layer} blocks)`);
  }
  console.log(`wrote ${out}/summary.json, ${out}/report.md and ${out}/curves.svg`);
}
