/**
 * `deno task eval --model MODEL --data DATA [--ctx T] [--max-tokens N] [--batch B]`: validation
 * loss and perplexity; the last line printed is JSON `{"loss", "perplexity", "tokens"}`.
 *
 * @module
 */
import { getGpu } from "@inheritune/kernels";
import { GPT2, loadModel, validationLoss } from "@inheritune/core";
import { openDataset } from "@inheritune/data";
import { intFlag, parseFlags, stringFlag } from "./_flags.ts";

const FLAGS = {
  model: { type: "string" },
  data: { type: "string" },
  ctx: { type: "string" },
  "max-tokens": { type: "string" },
  batch: { type: "string" },
} as const;

/** Runs the command with its flags. */
export async function main(args: string[]): Promise<void> {
  const f = parseFlags(args, FLAGS);
  const { config, params } = await loadModel(stringFlag(f.model, "model"));
  const dataset = await openDataset(stringFlag(f.data, "data"), { vocabSize: config.vocab_size });
  const split = dataset.splits.includes("val") ? dataset.split("val") : dataset.split("train");
  const T = intFlag(f.ctx, "ctx", { fallback: config.n_positions, min: 1, max: config.n_positions });
  const B = intFlag(f.batch, "batch", { fallback: Math.max(1, Math.floor(8192 / T)), min: 1 });
  const maxTokens = f["max-tokens"] === undefined
    ? undefined
    : intFlag(f["max-tokens"], "max-tokens", { min: T });
  const gpu = await getGpu();
  const model = GPT2.create(gpu, config, params, { B, T });
  const r = await validationLoss(model, split, { maxTokens });
  model.destroy();
  console.log(JSON.stringify({ loss: r.loss, perplexity: r.perplexity, tokens: r.tokens }));
}
