/**
 * The registry of families and what dispatches on a configuration's family: its parameter table,
 * its parameter count, its model on the GPU. A family (`gpt2.ts`, `llama.ts`) is one file with its
 * parameter table, its Hugging Face `config.json` mapping and its GPU model, implementing the
 * interfaces of `family.ts`; adding a third means one such file and one line in
 * {@linkcode FAMILIES}. No family imports this module.
 *
 * @module
 */
import type { Gpu } from "@inheritune/kernels";
import {
  type FamilyName,
  familyName,
  type GPT2Config,
  type LlamaConfig,
  type ModelConfig,
} from "./config.ts";
import type { CreateOptions, Family, LanguageModel } from "./family.ts";
import { GPT2_FAMILY } from "./gpt2.ts";
import { LLAMA_FAMILY } from "./llama.ts";
import { numel, type ParamMap, type ParamSpec } from "./params.ts";

/** Every family, by name. */
export const FAMILIES: { readonly gpt2: Family<GPT2Config>; readonly llama: Family<LlamaConfig> } = {
  gpt2: GPT2_FAMILY,
  llama: LLAMA_FAMILY,
};

/** The family of `config`. */
export function family(config: ModelConfig): Family {
  return FAMILIES[familyName(config)] as Family;
}

/** The family called `name` (a `config.json`'s `model_type`), or undefined. */
export function familyByName(name: string): Family | undefined {
  return Object.hasOwn(FAMILIES, name) ? FAMILIES[name as FamilyName] as Family : undefined;
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
  const NH = config.n_head;
  return { NH, NKV: config.family === "llama" ? config.n_kv_head : NH, hs: config.n_embd / NH };
}
