/**
 * Inheritune's inheritance: a smaller model that keeps a reference model's token and position
 * embeddings, a selection of its blocks (the first n by default), its final LayerNorm and its
 * tied LM head, unchanged.
 *
 * Selections, for comparison: `first` (the paper), `last`, `even` (evenly spaced, as DistilBERT),
 * `list` (explicit indices) and `ranked` (the best-first ranking of a measured criterion, e.g.
 * from `deno task analyze`). Ablations: inherit only the attention sub-block (`ln_1`, `attn.*`) or
 * only the MLP sub-block (`ln_2`, `mlp.*`), the rest freshly initialised.
 *
 * @module
 */
import type { Checkpoint } from "./checkpoint.ts";
import type { GPTConfig } from "./config.ts";
import { initTensor } from "./init.ts";
import { type ParamMap, paramSpecs } from "./params.ts";
import { Rng } from "./random.ts";

/** How blocks are chosen. */
export type Selection = "first" | "even" | "last" | "list" | "ranked";

/** Options of {@linkcode inherit}. */
export interface InheritOptions {
  /** Number of blocks n (not needed for `list`). */
  layers?: number;
  /** Which blocks ("first"). */
  select?: Selection;
  /** Block indices: the list for `list`, the best-first ranking for `ranked`. */
  blocks?: number[];
  /** Which block weights to inherit ("both"); the others are freshly initialised. */
  only?: "attn" | "mlp" | "both";
  /** Seed of the fresh initialisation (ablations). */
  seed?: number;
}

/** A bad inheritance request (n = 0, n > depth, unknown block...); one line, exit code 2. */
export class InheritError extends Error {
  /** Creates the error with its one-line message. */
  constructor(message: string) {
    super(message);
    this.name = "InheritError";
  }
}

/** The reference block indices to keep, in the order they will appear in the target. */
export function selectBlocks(depth: number, options: InheritOptions): number[] {
  const select = options.select ?? "first";
  if (select === "list") {
    const list = options.blocks ?? [];
    if (list.length === 0) throw new InheritError("--select list needs --blocks, e.g. --blocks 0,1,2,7");
    const seen = new Set<number>();
    for (const b of list) {
      if (!Number.isInteger(b) || b < 0 || b >= depth) {
        throw new InheritError(`block ${b} does not exist: the reference has blocks 0..${depth - 1}`);
      }
      if (seen.has(b)) throw new InheritError(`block ${b} is listed twice`);
      seen.add(b);
    }
    if (options.layers !== undefined && options.layers !== list.length) {
      throw new InheritError(`--layers ${options.layers} contradicts the ${list.length} listed blocks`);
    }
    return [...list];
  }
  const n = options.layers;
  if (n === undefined || !Number.isInteger(n) || n < 1) {
    throw new InheritError(`the number of blocks to inherit must be at least 1, got ${n}`);
  }
  if (n > depth) throw new InheritError(`cannot inherit ${n} blocks from a reference with ${depth}`);
  switch (select) {
    case "first":
      return Array.from({ length: n }, (_, i) => i);
    case "last":
      return Array.from({ length: n }, (_, i) => depth - n + i);
    case "even":
      // n indices spread over 0..depth-1, always including the first block
      return Array.from({ length: n }, (_, i) => (n === 1 ? 0 : Math.round((i * (depth - 1)) / (n - 1))));
    case "ranked": {
      const ranking = options.blocks ?? [];
      if (ranking.length < n) {
        throw new InheritError(`--select ranked needs a ranking of at least ${n} blocks`);
      }
      const chosen = selectBlocks(depth, { select: "list", blocks: ranking.slice(0, n) });
      return chosen.sort((a, b) => a - b); // keep the reference's order of computation
    }
    default:
      throw new InheritError(
        `unknown selection ${JSON.stringify(select)}: use first, even, last, list or ranked`,
      );
  }
}

function inheritsTensor(tensor: string, only: "attn" | "mlp" | "both"): boolean {
  if (only === "both") return true;
  const attn = tensor.startsWith("ln_1.") || tensor.startsWith("attn.");
  return only === "attn" ? attn : !attn;
}

/**
 * Derives the target model: embeddings, `ln_f` and the tied head copied unchanged; block `i` of
 * the target is reference block `blocks[i]`. Copies share no memory with the reference.
 */
export function inherit(reference: Checkpoint, options: InheritOptions): Checkpoint & { blocks: number[] } {
  const blocks = selectBlocks(reference.config.n_layer, options);
  const only = options.only ?? "both";
  if (!["attn", "mlp", "both"].includes(only)) {
    throw new InheritError(`unknown --only ${JSON.stringify(only)}: use attn, mlp or both`);
  }
  const config: GPTConfig = { ...reference.config, n_layer: blocks.length };
  const rng = new Rng(options.seed ?? 0);
  const params: ParamMap = new Map();
  for (const spec of paramSpecs(config)) {
    let source = spec.name;
    let inherited = true;
    if (spec.layer >= 0) {
      const tensor = spec.name.slice(`h.${spec.layer}.`.length);
      source = `h.${blocks[spec.layer]}.${tensor}`;
      inherited = inheritsTensor(tensor, only);
    }
    if (inherited) {
      const data = reference.params.get(source);
      if (!data) throw new InheritError(`reference lacks ${source}`);
      params.set(spec.name, data.slice());
    } else {
      params.set(spec.name, initTensor(spec, config, rng));
    }
  }
  return { config, params, blocks };
}
