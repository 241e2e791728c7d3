/**
 * `deno task generate --model MODEL [--prompt TEXT] ...`: continue a prompt with a model, printing
 * the text as it is generated and the speed on stderr. A thin layer over `generate`.
 *
 * @module
 */
import { checkpointTokenizer, generate, loadModel, promptTokens } from "@inheritune/core";
import { getGpu } from "@inheritune/kernels";
import { type CommandSpec, intFlag, MODEL_FLAG, numberFlag, parseCommand, stringFlag } from "./_flags.ts";

/** Defaults of `deno task generate`. */
export const GENERATE_DEFAULTS = {
  maxNewTokens: 128,
  temperature: 0.8,
  topK: 40,
  seed: 1337,
} as const;

/** The command line of `deno task generate`. */
export const COMMAND = {
  name: "generate",
  summary: "continue a prompt with a model (greedy at temperature 0), printing the text as it comes",
  usage:
    "--model MODEL [--prompt TEXT] [--max-new-tokens N] [--temperature T] [--top-k K] [--seed S] [--json]",
  flags: {
    model: MODEL_FLAG,
    prompt: {
      type: "string",
      arg: "TEXT",
      help: "text to continue; empty starts from the model's BOS token",
      default: '""',
    },
    "max-new-tokens": {
      type: "string",
      arg: "N",
      help: "stop after N new tokens (or at the end-of-sequence token)",
      default: GENERATE_DEFAULTS.maxNewTokens,
    },
    temperature: {
      type: "string",
      arg: "T",
      help: "softmax temperature; 0 is greedy",
      default: GENERATE_DEFAULTS.temperature,
    },
    "top-k": {
      type: "string",
      arg: "K",
      help: "sample among the K most likely tokens; 0 for all",
      default: GENERATE_DEFAULTS.topK,
    },
    seed: { type: "string", arg: "S", help: "seed of the sampling", default: GENERATE_DEFAULTS.seed },
    json: {
      type: "boolean",
      help: 'end with one line {"ids": [...], "text": "..."}: every token, prompt and BOS included',
    },
  },
  examples: [
    "deno task generate --model models/stories260K/model.gguf --max-new-tokens 50 --temperature 0",
    'deno task generate --model runs/tiny --prompt "One day" --temperature 0.7 --json',
  ],
} as const satisfies CommandSpec;

/** Runs the command with its flags. */
export async function main(args: string[]): Promise<void> {
  const f = parseCommand(COMMAND, args);
  if (!f) return;
  const path = stringFlag(f.model, "model");
  const d = GENERATE_DEFAULTS;
  const maxNewTokens = intFlag(f["max-new-tokens"], "max-new-tokens", { fallback: d.maxNewTokens, min: 1 });
  const temperature = numberFlag(f.temperature, "temperature", { fallback: d.temperature, min: 0 });
  const topK = intFlag(f["top-k"], "top-k", { fallback: d.topK, min: 0 });
  const seed = intFlag(f.seed, "seed", { fallback: d.seed, min: 0 });
  const model = await loadModel(path);
  const tokenizer = await checkpointTokenizer(model, path);
  const prompt = promptTokens(tokenizer, typeof f.prompt === "string" ? f.prompt : "");
  const gpu = await getGpu();
  // Print the text as it grows, holding back a trailing partial UTF-8 character.
  const encoder = new TextEncoder();
  let shown = "";
  const show = (ids: number[]): void => {
    const text = tokenizer.decode(ids);
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
    eos: tokenizer.eosToken,
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
  if (f.json === true) console.log(JSON.stringify({ ids: all, text: tokenizer.decode(all) }));
}
