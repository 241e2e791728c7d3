/**
 * `deno task analyze`: per-block diagnostics of a model on a few windows of the validation split
 * (the training split when val cannot fill one window): attention entropy, first-token mass, rank-one closeness
 * and approximate rank per head, Block Influence and angular distance per block, a suggested
 * number of blocks to inherit and the ranking that `--select ranked --blocks` takes.
 *
 * @module
 */
import { checkpointTokenizer, loadModel } from "@inheritune/core";
import { analyzeModel, DEFAULT_LAZY_THRESHOLD, formatAnalysis } from "@inheritune/eval";
import { validationSplit } from "@inheritune/data";
import { type CommandSpec, MODEL_FLAG, parseCommand, UsageError } from "./_flags.ts";
import { openModelData } from "./_data.ts";

/** Tokens per window without `--ctx`, or the model's context when that is smaller. */
const DEFAULT_CTX = 256;

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
      help:
        "prepared data or llm.c shards in the model's tokens (val split; train when val cannot fill a window)",
      required: true,
    },
    windows: {
      type: "int",
      arg: "N",
      help: "token windows to analyse, spread over the split",
      default: 4,
      min: 1,
    },
    ctx: {
      type: "int",
      arg: "T",
      help:
        `tokens per window, at most the model's context (default ${DEFAULT_CTX}, or that context if smaller)`,
      min: 2,
    },
    "lazy-threshold": {
      type: "number",
      arg: "X",
      help: "mean rank-one closeness from which a block counts as lazy",
      default: DEFAULT_LAZY_THRESHOLD,
      min: 0,
      max: 1,
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
  const { model: modelPath, data: dataPath, windows, "lazy-threshold": lazyThreshold } = f;
  const model = await loadModel(modelPath);
  const { n_positions } = model.config;
  const T = f.ctx ?? Math.min(DEFAULT_CTX, n_positions);
  if (T > n_positions) {
    throw new UsageError(`--ctx ${T} exceeds the model's context (n_positions ${n_positions})`);
  }
  using dataset = await openModelData(dataPath, {
    vocabSize: model.config.vocab_size,
    tokenizer: await checkpointTokenizer(model, modelPath),
  });
  const split = validationSplit(dataset, T) ?? "train";
  const analysis = await analyzeModel(model, dataset.split(split), { windows, T, lazyThreshold });
  console.log(`${modelPath} on the ${split} split of ${dataPath}`);
  console.log(formatAnalysis(analysis));
  if (f.json) console.log(JSON.stringify(analysis));
}
