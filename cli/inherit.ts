/**
 * `deno task inherit --reference MODEL --layers N [--select first|even|last|list|ranked]
 * [--blocks 0,1,2,7] [--only attn|mlp] --out DIR`: derive the target model and write it as a
 * model folder, without training.
 *
 * @module
 */
import { countParams, inherit, loadModel, saveModel } from "@inheritune/core";
import { inheritFlags, intFlag, parseFlags, stringFlag } from "./_flags.ts";

const FLAGS = {
  reference: { type: "string" },
  layers: { type: "string" },
  select: { type: "string" },
  blocks: { type: "string" },
  only: { type: "string" },
  out: { type: "string" },
  seed: { type: "string" },
} as const;

/** Runs the command with its flags. */
export async function main(args: string[]): Promise<void> {
  const f = parseFlags(args, FLAGS);
  const referencePath = stringFlag(f.reference, "reference");
  const out = stringFlag(f.out, "out");
  const reference = await loadModel(referencePath);
  const target = inherit(reference, inheritFlags(f, intFlag(f.seed, "seed", { fallback: 0, min: 0 })));
  await saveModel(out, target);
  console.log(
    `wrote ${out}: blocks ${target.blocks.join(",")} of ${referencePath} ` +
      `(${countParams(target.config).toLocaleString("en-US")} of ${
        countParams(reference.config).toLocaleString("en-US")
      } parameters)`,
  );
}
