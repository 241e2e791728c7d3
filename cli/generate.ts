/**
 * `deno task generate --model MODEL [--prompt TEXT | --prompt-ids IDS] ...`: continue a prompt with
 * a model, printing the text as it is generated (the ids, for a model without a tokenizer) and the
 * speed on stderr. A thin layer over `generate`.
 *
 * @module
 */
import { DEFAULT_SEED, generate, loadModel, ownTokenizer, promptTokens } from "@inheritune/core";
import { getGpu } from "@inheritune/kernels";
import { DataError } from "@inheritune/data";
import { type CommandSpec, MODEL_FLAG, parseCommand, UsageError } from "./_flags.ts";

/** The command line of `deno task generate`. */
export const COMMAND = {
  name: "generate",
  summary: "continue a prompt with a model (greedy at temperature 0), printing the text as it comes",
  usage:
    "--model MODEL [--prompt TEXT | --prompt-ids IDS] [--max-new-tokens N] [--temperature T] [--top-k K] [--seed S] [--json]",
  flags: {
    model: MODEL_FLAG,
    prompt: {
      type: "string",
      arg: "TEXT",
      help: "text to continue (default empty: from the model's BOS token)",
    },
    "prompt-ids": {
      type: "list",
      arg: "IDS",
      help: "token ids to continue, comma-separated, instead of text (a model without a tokenizer)",
    },
    "max-new-tokens": {
      type: "int",
      arg: "N",
      help: "stop after N new tokens (or at the end-of-sequence token)",
      default: 128,
      min: 1,
    },
    temperature: {
      type: "number",
      arg: "T",
      help: "softmax temperature; 0 is greedy",
      default: 0.8,
      min: 0,
    },
    "top-k": {
      type: "int",
      arg: "K",
      help: "sample among the K most likely tokens; 0 for all",
      default: 40,
      min: 0,
    },
    seed: { type: "int", arg: "S", help: "seed of the sampling", default: DEFAULT_SEED, min: 0 },
    json: {
      type: "boolean",
      help: 'end with one line {"ids": [...], "text": "..."}: every token, prompt and BOS included ' +
        "(text null without a tokenizer)",
    },
  },
  examples: [
    "deno task generate --model models/stories260K/model.gguf --max-new-tokens 50 --temperature 0",
    'deno task generate --model runs/tiny --prompt "One day" --temperature 0.7 --json',
    "deno task generate --model tests/fixtures/qwen3_tiny --prompt-ids 57,6,36,7 --max-new-tokens 8 --temperature 0",
  ],
} as const satisfies CommandSpec;

/**
 * The ids of `--prompt-ids`: integers below the vocabulary of `vocabSize`.
 *
 * @throws {UsageError} naming the flag and the first bad id.
 */
function promptIds(items: readonly string[], vocabSize: number): number[] {
  if (items.length === 0) throw new UsageError("--prompt-ids needs at least one id");
  return items.map((item) => {
    const id = Number(item);
    if (!/^\d+$/.test(item.trim()) || !(id < vocabSize)) {
      throw new UsageError(
        `--prompt-ids: ${
          JSON.stringify(item)
        } is not a token id below the model's vocabulary of ${vocabSize}`,
      );
    }
    return id;
  });
}

/** Runs the command with its flags. */
export async function main(args: string[]): Promise<void> {
  const f = parseCommand(COMMAND, args);
  if (!f) return;
  const { model: path, "max-new-tokens": maxNewTokens, temperature, "top-k": topK, seed } = f;
  if (f.prompt !== undefined && f["prompt-ids"] !== undefined) {
    throw new UsageError("--prompt and --prompt-ids exclude each other");
  }
  const model = await loadModel(path);
  const tokenizer = await ownTokenizer(model, path);
  let prompt: number[];
  if (f["prompt-ids"] !== undefined) prompt = promptIds(f["prompt-ids"], model.config.vocab_size);
  else if (tokenizer) prompt = promptTokens(tokenizer, f.prompt ?? "");
  else {
    throw new DataError(
      `${path}: the model carries no tokenizer (no tokenizer.json or tokenizer.model): give the prompt as ` +
        `ids with --prompt-ids`,
    );
  }
  const gpu = await getGpu();
  // Print the text as it grows, holding back a trailing partial UTF-8 character; without a
  // tokenizer, the ids.
  const encoder = new TextEncoder();
  let shown = "";
  const show = (ids: number[]): void => {
    const text = tokenizer ? tokenizer.decode(ids) : ids.join(" ");
    const stable = text.endsWith("\uFFFD") ? text.slice(0, -1) : text;
    if (stable.startsWith(shown) && stable.length > shown.length) {
      Deno.stdout.writeSync(encoder.encode(stable.slice(shown.length)));
      shown = stable;
    }
  };
  const all = [...prompt];
  show(all);
  const started = performance.now();
  const added = await generate(gpu, model, {
    prompt,
    maxNewTokens,
    temperature,
    topK: topK === 0 ? undefined : topK,
    seed,
    eos: tokenizer
      ? tokenizer.eosToken
      : "eos_token_id" in model.config
      ? model.config.eos_token_id
      : undefined,
    onToken: (id) => {
      all.push(id);
      show(all);
    },
  });
  const seconds = (performance.now() - started) / 1000;
  console.log();
  console.error(
    `${added.length} tokens in ${seconds.toFixed(2)} s (${
      (added.length / seconds).toFixed(1)
    } tokens/s, ${gpu.description})`,
  );
  if (f.json) console.log(JSON.stringify({ ids: all, text: tokenizer ? tokenizer.decode(all) : null }));
}
