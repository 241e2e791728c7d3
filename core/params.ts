/**
 * What a parameter table is made of: every tensor's checkpoint name and shape, the block it
 * belongs to and which sub-block (for inheritance), how it is initialised and whether AdamW decays
 * it. Each family (`gpt2.ts`, `llama.ts`) defines its table; allocation, optimisers, checkpoints,
 * inheritance and analysis walk it.
 *
 * @module
 */

/** One named parameter tensor. */
export interface ParamSpec {
  /** Checkpoint name, e.g. `h.0.attn.c_attn.weight` (GPT-2) or `model.layers.0.mlp.up_proj.weight`. */
  name: string;
  /** Shape, outermost first. */
  shape: number[];
  /** Block index, or -1 for embeddings, the final norm and the head. */
  layer: number;
  /** The name inside its block (`attn.c_attn.weight`), or the whole name outside blocks. */
  key: string;
  /** Which sub-block a block tensor belongs to (its norm included); "other" outside blocks. */
  part: "attn" | "mlp" | "other";
  /** How the tensor is initialised: normal (std 0.02, scaled for residual projections), ones or zeros. */
  init: "normal" | "residual" | "ones" | "zeros";
  /** Whether AdamW applies weight decay (2-D weights only). */
  decay: boolean;
}

/** Number of elements of a shape. */
export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** A row-major matrix `(rows, cols)` transposed to `(cols, rows)`. */
export function transpose(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(src.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = src[r * cols + c];
  }
  return out;
}

/** CPU copies of every parameter, by name. */
export type ParamMap = Map<string, Float32Array>;

/**
 * What is wrong with `params` as the parameters of the table `specs`, in one line: a tensor that is
 * missing, one of the wrong size, or one the table does not have; undefined when nothing is.
 */
export function paramMapProblem(specs: readonly ParamSpec[], params: ParamMap): string | undefined {
  for (const spec of specs) {
    const data = params.get(spec.name);
    if (!data) return `parameter ${spec.name} is missing`;
    if (data.length !== numel(spec.shape)) {
      return `parameter ${spec.name} has ${data.length} values, shape [${spec.shape}] needs ${
        numel(spec.shape)
      }`;
    }
  }
  if (params.size !== specs.length) {
    const known = new Set(specs.map((s) => s.name));
    return `parameter ${[...params.keys()].find((k) => !known.has(k))} is not part of the configured model`;
  }
}
