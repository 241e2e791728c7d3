/**
 * `deno task analyze`: per-block diagnostics of a model on a few windows of the validation split
 * (the training split when there is none): attention entropy, first-token mass, rank-one closeness
 * and approximate rank per head, Block Influence and angular distance per block, a suggested
 * number of blocks to inherit and the ranking that `--select ranked --blocks` takes.
 *
 * @module
 */
import { checkpointTokenizer, loadModel } from "@inheritune/core";
import { analyzeModel, DEFAULT_LAZY_THRESHOLD, formatAnalysis } from "@inheritune/eval";
import { type CommandSpec, intFlag, MODEL_FLAG, numberFlag, parseCommand, stringFlag } from "./_flags.ts";
import { openModelData } from "./_data.ts";

/** Defaults of `deno task analyze`. */
export const ANALYZE_DEFAULTS = { windows: 4, ctx: 256, lazyThreshold: DEFAULT_LAZY_THRESHOLD } as const;

/** The command line of `deno task analyze`. */
export const COMMAND = {
  name: "analyze",
  summary:
    "per block and head: attention entropy, first-token mass, rank-one closeness, approximate rank, block influence; a suggested n and a ranking",
  usage: "--model MODEL --data DATA [--windows N] [--ctx T] [--lazy-threshold X] [--json]",
  flags: {
    model: MODEL_FLAG,
    data: {
      type: "string",
      arg: "DATA",
      help: "prepared data or llm.c shards in the model's tokens (required)",
    },
    windows: {
      type: "string",
      arg: "N",
      help: "token windows to analyse, spread over the split",
      default: ANALYZE_DEFAULTS.windows,
    },
    ctx: {
      type: "string",
      arg: "T",
      help: "tokens per window, at most the model's context",
      default: ANALYZE_DEFAULTS.ctx,
    },
    "lazy-threshold": {
      type: "string",
      arg: "X",
      help: "mean rank-one closeness from which a block counts as lazy",
      default: ANALYZE_DEFAULTS.lazyThreshold,
    },
    json: { type: "boolean", help: "end with the analysis as one line of JSON" },
  },
  examples: [
    "deno task analyze --model models/stories260K/model.gguf --data runs/data/tinystories --ctx 128",
  ],
} as const satisfies CommandSpec;

/** Runs the command with its flags. */
export async function main(args: string[]): Promise<void> {
  const f = parseCommand(COMMAND, args);
  if (!f) return;
  const modelPath = stringFlag(f.model, "model");
  const dataPath = stringFlag(f.data, "data");
  const d = ANALYZE_DEFAULTS;
  const windows = intFlag(f.windows, "windows", { fallback: d.windows, min: 1 });
  const lazyThreshold = numberFlag(f["lazy-threshold"], "lazy-threshold", {
    fallback: d.lazyThreshold,
    min: 0,
    max: 1,
  });
  const model = await loadModel(modelPath);
  const { n_positions } = model.config;
  const T = intFlag(f.ctx, "ctx", { fallback: Math.min(d.ctx, n_positions), min: 2, max: n_positions });
  using dataset = await openModelData(dataPath, {
    vocabSize: model.config.vocab_size,
    tokenizer: await checkpointTokenizer(model, modelPath),
  });
  const split = dataset.splits.includes("val") && dataset.split("val").length >= T ? "val" : "train";
  const analysis = await analyzeModel(model, dataset.split(split), { windows, T, lazyThreshold });
  console.log(`${modelPath} on the ${split} split of ${dataPath}`);
  console.log(formatAnalysis(analysis));
  if (f.json) console.log(JSON.stringify(analysis));
}
