/**
 * GPT-2 initialisation: N(0, 0.02) weights, residual projections scaled by 1/√(2·n_layer),
 * LayerNorm weights 1 and biases 0.
 *
 * @module
 */
import type { GPTConfig } from "./config.ts";
import { numel, type ParamMap, type ParamSpec, paramSpecs } from "./params.ts";
import { Rng } from "./random.ts";

/** Initial value of one parameter tensor, drawn from `rng`. */
export function initTensor(spec: ParamSpec, config: GPTConfig, rng: Rng): Float32Array {
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
export function initParams(config: GPTConfig, seed: number): ParamMap {
  const rng = new Rng(seed);
  const params: ParamMap = new Map();
  for (const spec of paramSpecs(config)) params.set(spec.name, initTensor(spec, config, rng));
  return params;
}
