/**
 * `deno task analyze --model MODEL --data DATA [--windows N] [--ctx T] [--lazy-threshold X] [--json]`:
 * per-block diagnostics of a model on a few windows of the validation split (the training split
 * when there is none): attention entropy, first-token mass and rank-one closeness per head, Block
 * Influence and angular distance per block, a suggested number of blocks to inherit and the
 * ranking that `deno task inherit --select ranked --blocks` takes. With `--json`, the last line
 * printed is the analysis as JSON.
 *
 * @module
 */
import { loadModel } from "@inheritune/core";
import { openDataset } from "@inheritune/data";
import { analyzeModel, DEFAULT_LAZY_THRESHOLD, formatAnalysis } from "@inheritune/eval";
import { intFlag, numberFlag, parseFlags, stringFlag } from "./_flags.ts";

const FLAGS = {
  model: { type: "string" },
  data: { type: "string" },
  windows: { type: "string" },
  ctx: { type: "string" },
  "lazy-threshold": { type: "string" },
  json: { type: "boolean" },
} as const;

/** Runs the command with its flags. */
export async function main(args: string[]): Promise<void> {
  const f = parseFlags(args, FLAGS);
  const modelPath = stringFlag(f.model, "model");
  const dataPath = stringFlag(f.data, "data");
  const windows = intFlag(f.windows, "windows", { fallback: 4, min: 1 });
  const lazyThreshold = numberFlag(f["lazy-threshold"], "lazy-threshold", {
    fallback: DEFAULT_LAZY_THRESHOLD,
    min: 0,
    max: 1,
  });
  const model = await loadModel(modelPath);
  const { n_positions } = model.config;
  const T = intFlag(f.ctx, "ctx", { fallback: Math.min(256, n_positions), min: 2, max: n_positions });
  using dataset = await openDataset(dataPath, { vocabSize: model.config.vocab_size });
  const split = dataset.splits.includes("val") ? "val" : "train";
  const analysis = await analyzeModel(model, dataset.split(split), { windows, T, lazyThreshold });
  console.log(`${modelPath} on the ${split} split of ${dataPath}`);
  console.log(formatAnalysis(analysis));
  if (f.json) console.log(JSON.stringify(analysis));
}
