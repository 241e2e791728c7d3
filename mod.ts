/**
 * Inheritune for Deno: derive small GPT-2 language models from larger ones (Sanyal et al., 2024)
 * and train them on WebGPU. Each workspace member is re-exported under its own namespace.
 *
 * @module
 */
export * as kernels from "@inheritune/kernels";
export * as core from "@inheritune/core";
export * as data from "@inheritune/data";
export * as evaluation from "@inheritune/eval";
export * as server from "@inheritune/server";
