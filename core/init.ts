/**
 * Initialisation from the parameter table: N(0, 0.02) weights (GPT-2's residual projections scaled
 * by 1/√(2·n_layer)), norm weights 1 and biases 0.
 *
 * @module
 */
import { Rng } from "@inheritune/data";
import type { ModelConfig } from "./config.ts";
import { paramSpecs } from "./model.ts";
import { numel, type ParamMap, type ParamSpec } from "./params.ts";

/** Initial value of one parameter tensor, drawn from `rng`. */
export function initTensor(spec: ParamSpec, config: ModelConfig, rng: Rng): Float32Array {
  const out = new Float32Array(numel(spec.shape));
  switch (spec.init) {
    case "normal":
      return rng.normal(out, 0.02);
    case "residual":
      return rng.normal(out, 0.02 / Math.sqrt(2 * config.n_layer));
    case "ones":
      return out.fill(1);
    case "zeros":
      return out;
  }
}

/** Freshly initialised parameters for `config`, deterministic in `seed`. */
export function initParams(config: ModelConfig, seed: number): ParamMap {
  const rng = new Rng(seed);
  const params: ParamMap = new Map();
  for (const spec of paramSpecs(config)) params.set(spec.name, initTensor(spec, config, rng));
  return params;
}
