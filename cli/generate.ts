/**
 * `deno task generate --model MODEL [--prompt TEXT] ...`: continue a prompt with a model, printing
 * the text as it is generated and the speed on stderr. A thin layer over `generate`.
 *
 * @module
 */
import { checkpointTokenizer, DEFAULT_SEED, generate, loadModel, promptTokens } from "@inheritune/core";
import { getGpu } from "@inheritune/kernels";
import { type CommandSpec, MODEL_FLAG, parseCommand } from "./_flags.ts";

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
      default: "",
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
  const { model: path, "max-new-tokens": maxNewTokens, temperature, "top-k": topK, seed } = f;
  const model = await loadModel(path);
  const tokenizer = await checkpointTokenizer(model, path);
  const prompt = promptTokens(tokenizer, f.prompt);
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
  if (f.json) console.log(JSON.stringify({ ids: all, text: tokenizer.decode(all) }));
}
