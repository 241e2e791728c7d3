/**
 * `deno task export --model MODEL --out FILE.gguf [--type T]`: write a model as a GGUF file that
 * llama.cpp, Ollama and LM Studio run. A thin layer over `exportGguf`.
 *
 * @module
 */
import { dirname } from "node:path";
import { exportGguf, GGUF_EXPORT_TYPES, type GgufExportType, loadModel } from "@inheritune/core";
import { type CommandSpec, MODEL_FLAG, parseCommand, UsageError } from "./_flags.ts";

/** The command line of `deno task export`. */
export const COMMAND = {
  name: "export",
  summary: "write a model as a GGUF file for llama.cpp and Ollama (f32, f16 or quantized)",
  usage: "--model MODEL --out FILE.gguf [--type f32|f16|q8_0|q4_0|q4_k|q6_k]",
  flags: {
    model: MODEL_FLAG,
    out: {
      type: "string",
      arg: "FILE.gguf",
      help: "the GGUF file to write (replaced whole)",
      required: true,
    },
    type: {
      type: "string",
      arg: "T",
      help: "type of the matrices; vectors stay f32, rows that are not whole blocks fall back as " +
        "llama.cpp's quantizer does (q4_k to q5_0, q6_k to q8_0, then f16)",
      default: "f16",
      choices: GGUF_EXPORT_TYPES,
    },
  },
  examples: [
    "deno task export --model models/stories260K/model.gguf --out runs/stories260K-q8_0.gguf --type q8_0",
    "deno task export --model runs/small --out runs/small.gguf",
  ],
  notes: [
    "Architectures: gpt2, llama (mistral is written as llama, without its sliding window), qwen2, qwen3,",
    "phi3, gemma3. The tokenizer goes along as tokenizer.ggml.* metadata; a model without one is written",
    'with tokenizer.ggml.model "no_vocab".',
  ],
} as const satisfies CommandSpec;

/** Runs the command with its flags. */
export async function main(args: string[]): Promise<void> {
  const f = parseCommand(COMMAND, args);
  if (!f) return;
  if (!f.out.toLowerCase().endsWith(".gguf")) {
    throw new UsageError(`--out must name a .gguf file, got ${JSON.stringify(f.out)}`);
  }
  const folder = dirname(f.out);
  if (!(await Deno.stat(folder).then((s) => s.isDirectory, () => false))) {
    throw new UsageError(`--out: folder ${folder} does not exist`);
  }
  const model = await loadModel(f.model);
  const written = await exportGguf(model, f.out, { type: f.type as GgufExportType });
  const types = new Map<string, number>();
  for (const t of written.tensors) types.set(t.type, (types.get(t.type) ?? 0) + 1);
  const size = (await Deno.stat(f.out)).size;
  console.log(
    `wrote ${f.out}: ${written.arch}, ${written.tensors.length} tensors (${
      [...types].map(([type, n]) => `${n} ${type}`).join(", ")
    }), ${written.keys} keys, ${size.toLocaleString("en-US")} bytes`,
  );
  for (const note of written.notes) console.log(`note: ${note}`);
}
