/**
 * `deno task train` with no flags: the Inheritune experiment on the embedded default, the
 * reference model in `models/brown-ref` (trained by this project on the `brown` corpus, see its
 * README) and the `brown` corpus itself, prepared on first use.
 *
 * `deno task train --experiment [--variants inherited,scratch,attn,mlp,even,last,ranked]
 * [--steps N] [--out DIR]` runs the same experiment with other variants (the paper's ablations) at
 * an equal budget.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { getGpu } from "@inheritune/kernels";
import { loadModel, runExperiment, type Variant, type VariantResult } from "@inheritune/core";
import { openDataset, prepare } from "@inheritune/data";
import { analyzeModel } from "@inheritune/eval";
import { intFlag, parseFlags, UsageError } from "./_flags.ts";
import { progressPrinter } from "./_progress.ts";

/** The embedded default's settings: what `deno task train` runs. */
export const DEFAULT_EXPERIMENT = {
  reference: fileURLToPath(new URL("../models/brown-ref", import.meta.url)),
  data: "runs/data/brown-bytes",
  subset: 0.1,
  steps: 300,
  B: 8,
  T: 64,
  lr: 2e-3,
  warmup: 20,
  evalEvery: 25,
  evalTokens: 8192,
  seed: 1337,
} as const;

/** Variants by name: the default pair, the paper's ablations, and other block selections. */
const VARIANTS: Record<string, Variant> = {
  inherited: { name: "inherited", inherit: { select: "first", only: "both" } },
  scratch: { name: "scratch" },
  attn: { name: "attn", inherit: { select: "first", only: "attn" } },
  mlp: { name: "mlp", inherit: { select: "first", only: "mlp" } },
  even: { name: "even", inherit: { select: "even" } },
  last: { name: "last", inherit: { select: "last" } },
  ranked: { name: "ranked", inherit: { select: "ranked" } },
};

const FLAGS = {
  experiment: { type: "boolean" },
  variants: { type: "string" },
  steps: { type: "string" },
  out: { type: "string" },
} as const;

/** Runs the experiment (the default, or as the flags say) and prints where its report is. */
export async function main(args: string[] = []): Promise<void> {
  const f = parseFlags(args, FLAGS);
  const d = DEFAULT_EXPERIMENT;
  const steps = intFlag(f.steps, "steps", { fallback: d.steps, min: 1 });
  const names = typeof f.variants === "string" ? f.variants.split(",") : ["inherited", "scratch"];
  for (const name of names) {
    if (!VARIANTS[name]) {
      throw new UsageError(
        `unknown variant ${JSON.stringify(name)}: use ${Object.keys(VARIANTS).join(", ")}`,
      );
    }
  }
  const reference = await loadModel(d.reference);
  try {
    await Deno.stat(`${d.data}/meta.json`);
  } catch {
    console.log(`preparing the brown corpus (bytes tokenizer) into ${d.data}`);
    await prepare({ inputs: ["brown"], out: d.data, tokenizer: "bytes" });
  }
  const dataset = await openDataset(d.data, { vocabSize: reference.config.vocab_size });
  const val = dataset.split("val");
  const gpu = await getGpu();
  const out = typeof f.out === "string"
    ? f.out
    : `runs/inheritune-${new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19)}`;
  const layers = Math.floor(reference.config.n_layer / 2);
  const variants = [];
  for (const name of names) {
    if (name !== "ranked") {
      variants.push(VARIANTS[name]);
      continue;
    }
    const { ranking } = await analyzeModel(reference, val, { T: d.T });
    console.log(`ranked selection: blocks by block influence, most first: ${ranking.join(",")}`);
    variants.push({ name, inherit: { select: "ranked" as const, blocks: ranking } });
  }
  console.log(`device: ${gpu.description}`);
  console.log(
    `reference ${d.reference}: ${reference.config.n_layer} blocks; ${layers}-block targets (${
      names.join(", ")
    }) ` +
      `train on ${d.subset * 100}% of the training split for ${steps} steps each`,
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
    onProgress: (variant, m) => m ? show(m) : (show = progressPrinter(steps, `${variant}: `)),
  });
  for (const name of ["reference", ...names]) {
    const r = summary[name] as VariantResult;
    console.log(`${name.padEnd(10)} val_loss ${r.val_loss.toFixed(4)}  (${r.n_layer} blocks)`);
  }
  console.log(`wrote ${out}/summary.json, ${out}/report.md and ${out}/curves.svg`);
}
