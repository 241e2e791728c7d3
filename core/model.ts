/**
 * The registry of families and what dispatches on a configuration's family: its parameter table,
 * its parameter count, its model on the GPU. GPT-2 (`gpt2.ts`) is one family file; the LLaMA-like
 * families are data (`families.ts`) over one decoder (`decoder.ts`). Each implements the
 * interfaces of `family.ts`; adding a decoder family means one entry in `families.ts`. No family
 * imports this module.
 *
 * @module
 */
import type { Gpu } from "@inheritune/kernels";
import { type FamilyName, familyName, headSize, kvHeads, type ModelConfig } from "./config.ts";
import type { CreateOptions, Family, LanguageModel } from "./family.ts";
import { GPT2_FAMILY } from "./gpt2.ts";
import { DECODER_FAMILIES_BY_NAME } from "./families.ts";
import { numel, type ParamMap, type ParamSpec } from "./params.ts";

/** Every family, by name (a `config.json`'s `model_type`). */
export const FAMILIES: Readonly<Record<FamilyName, Family>> = {
  gpt2: GPT2_FAMILY as Family,
  ...(DECODER_FAMILIES_BY_NAME as Record<string, Family>),
} as Record<FamilyName, Family>;

/** The family of `config`. */
export function family(config: ModelConfig): Family {
  return FAMILIES[familyName(config)];
}

/** The family called `name` (a `config.json`'s `model_type`), or undefined. */
export function familyByName(name: string): Family | undefined {
  return Object.hasOwn(FAMILIES, name) ? FAMILIES[name as FamilyName] : undefined;
}

/** The parameter table of `config`. */
export function paramSpecs(config: ModelConfig): ParamSpec[] {
  return family(config).paramSpecs(config);
}

/** Total parameter count of `config` (a tied LM head counted once). */
export function countParams(config: ModelConfig): number {
  return paramSpecs(config).reduce((s, p) => s + numel(p.shape), 0);
}

/** A model of `config` on the GPU with `params`, for batches of `options.B` × `options.T`. */
export function createModel(
  gpu: Gpu,
  config: ModelConfig,
  params: ParamMap,
  options: CreateOptions,
): LanguageModel {
  return family(config).create(gpu, config, params, options);
}

/** Attention heads of `config`: query heads, key/value heads and the head size. */
export function attentionHeads(config: ModelConfig): { NH: number; NKV: number; hs: number } {
  return { NH: config.n_head, NKV: kvHeads(config), hs: headSize(config) };
}
