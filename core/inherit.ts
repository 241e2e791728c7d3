/**
 * Inheritune's inheritance: a smaller model that keeps a reference model's embeddings, a selection
 * of its blocks (the first n by default), its final norm and its LM head, unchanged. Works on any
 * family through its parameter table.
 *
 * Selections, for comparison: `first` (the paper), `last`, `even` (evenly spaced, as DistilBERT),
 * `list` (explicit indices) and `ranked` (the best-first ranking of a measured criterion, e.g.
 * from `deno task analyze`). Ablations: inherit only the attention sub-block (its norm and
 * projections) or only the MLP sub-block, the rest freshly initialised; and re-initialise some of
 * the tensors outside the blocks (`reinit`, as the paper's official code does with the final norm
 * and GPT-2's position table).
 *
 * @module
 */
import { Rng, UserError } from "@inheritune/data";
import type { Checkpoint } from "./family.ts";
import { type ModelConfig, selectLayers } from "./config.ts";
import { initTensor } from "./init.ts";
import { family, paramSpecs } from "./model.ts";
import type { ParamMap, ParamSpec } from "./params.ts";

/** How blocks are chosen. */
export type Selection = "first" | "even" | "last" | "list" | "ranked";

/** Defaults of {@linkcode InheritOptions}. */
export const INHERIT_DEFAULTS = { select: "first", only: "both", seed: 0 } as const;

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
  /**
   * Tensors outside the blocks to initialise afresh instead of inheriting, by short name (the
   * checkpoint name without `model.`/`transformer.` and `.weight`/`.bias`): GPT-2's `ln_f`, `wpe`,
   * `wte`; LLaMA's `norm`, `embed_tokens`, `lm_head`.
   */
  reinit?: string[];
  /** Seed of the fresh initialisation (ablations). */
  seed?: number;
}

/** A bad inheritance request (n = 0, n > depth, unknown block...); one line, exit code 2. */
export class InheritError extends UserError {
  /** Creates the error with its one-line message. */
  constructor(message: string) {
    super(message);
    this.name = "InheritError";
  }
}

/** The reference block indices to keep, in the order they will appear in the target. */
export function selectBlocks(depth: number, options: InheritOptions): number[] {
  const select = options.select ?? INHERIT_DEFAULTS.select;
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

/** The short name `reinit` knows a tensor outside the blocks by: `ln_f.weight` → `ln_f`. */
export function shortName(spec: ParamSpec): string {
  return spec.name.replace(/^(model|transformer)\./, "").replace(/\.(weight|bias)$/, "");
}

/**
 * Derives the target model: the tensors outside the blocks (embeddings, final norm, head) copied
 * unchanged unless named in `reinit`; block `i` of the target is reference block `blocks[i]`.
 * Copies share no memory with the reference.
 */
export function inherit(reference: Checkpoint, options: InheritOptions): Checkpoint & { blocks: number[] } {
  const blocks = selectBlocks(reference.config.n_layer, options);
  const only = options.only ?? INHERIT_DEFAULTS.only;
  if (!["attn", "mlp", "both"].includes(only)) {
    throw new InheritError(`unknown --only ${JSON.stringify(only)}: use attn, mlp or both`);
  }
  const config: ModelConfig = selectLayers(reference.config, blocks);
  const specs = paramSpecs(config);
  const reinit = new Set(options.reinit ?? []);
  const outside = specs.filter((s) => s.layer < 0).map(shortName);
  for (const name of reinit) {
    if (!outside.includes(name)) {
      throw new InheritError(
        `--reinit ${name}: not a tensor outside the blocks of this model (it has ${
          [...new Set(outside)].join(", ")
        })`,
      );
    }
  }
  const rng = new Rng(options.seed ?? INHERIT_DEFAULTS.seed);
  const params: ParamMap = new Map();
  for (const spec of specs) {
    let source = spec.name;
    let inherited = !reinit.has(shortName(spec));
    if (spec.layer >= 0) {
      source = family(config).blockParamName(blocks[spec.layer], spec.key);
      inherited = only === "both" || spec.part === only;
    }
    if (inherited) {
      const data = reference.params.get(source);
      if (!data) throw new InheritError(`reference lacks ${source}`);
      params.set(spec.name, data.slice());
    } else {
      params.set(spec.name, initTensor(spec, config, rng));
    }
  }
  return { ...reference, config, params, blocks };
}
