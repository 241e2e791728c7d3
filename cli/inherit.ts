/**
 * `deno task inherit`: derive the target model from a reference's blocks and write it as a model
 * folder, without training. A thin layer over `inherit`.
 *
 * @module
 */
import { countParams, inherit, INHERIT_DEFAULTS, loadModel, saveModel } from "@inheritune/core";
import { type CommandSpec, inheritFlags, MODEL_FLAG, parseCommand } from "./_flags.ts";

/** The command line of `deno task inherit`. */
export const COMMAND = {
  name: "inherit",
  summary:
    "write the derived model (a reference's embeddings, chosen blocks, final norm and head) without training",
  usage:
    "--reference MODEL --layers N [--select first|even|last|list|ranked] [--blocks 0,1,7] [--only attn|mlp] [--reinit NAMES] --out DIR",
  flags: {
    reference: MODEL_FLAG,
    layers: { type: "int", arg: "N", help: "blocks to keep" },
    select: {
      type: "string",
      arg: "S",
      help:
        `which blocks: first, even, last, list (--blocks), ranked (--blocks best first) (default ${INHERIT_DEFAULTS.select}; list for --blocks without --layers)`,
    },
    blocks: { type: "list", arg: "LIST", help: "block indices, e.g. 0,1,7" },
    only: {
      type: "string",
      arg: "PART",
      help: "inherit only the attn or mlp sub-blocks, the rest freshly initialised",
      default: INHERIT_DEFAULTS.only,
    },
    reinit: {
      type: "list",
      arg: "NAMES",
      help:
        "tensors outside the blocks to initialise afresh: GPT-2 ln_f, wpe, wte; LLaMA norm, embed_tokens, lm_head",
    },
    out: { type: "string", arg: "DIR", help: "output model folder", required: true },
    seed: {
      type: "int",
      arg: "S",
      help: "seed of fresh initialisation",
      default: INHERIT_DEFAULTS.seed,
      min: 0,
    },
  },
  examples: [
    "deno task inherit --reference models/stories260K/model.gguf --layers 2 --out runs/stories-2",
    "deno task inherit --reference models/brown-ref --select list --blocks 0,2,4 --reinit ln_f --out runs/even3",
  ],
} as const satisfies CommandSpec;

/** Runs the command with its flags. */
export async function main(args: string[]): Promise<void> {
  const f = parseCommand(COMMAND, args);
  if (!f) return;
  const { reference: referencePath, out } = f;
  const reference = await loadModel(referencePath);
  const target = inherit(reference, inheritFlags(f, f.seed));
  await saveModel(out, target);
  console.log(
    `wrote ${out}: blocks ${target.blocks.join(",")} of ${referencePath} ` +
      `(${countParams(target.config).toLocaleString("en-US")} of ${
        countParams(reference.config).toLocaleString("en-US")
      } parameters)`,
  );
}
