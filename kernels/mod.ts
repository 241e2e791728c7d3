/**
 * WGSL compute kernels for training GPT-2 and LLaMA models on WebGPU, forward and backward, each
 * with the plain-TypeScript CPU reference the tests compare it to.
 *
 * @module
 */
export * from "./device.ts";
export * from "./rows.ts";
export * from "./readback.ts";
export * from "./elementwise.ts";
export * from "./scratch.ts";
export * from "./column_sums.ts";
export * from "./matmul.ts";
export * from "./attention.ts";
export * from "./layernorm.ts";
export * from "./rmsnorm.ts";
export * from "./rope.ts";
export * from "./glu.ts";
export * from "./gelu.ts";
export * from "./residual.ts";
export * from "./scale.ts";
export * from "./embedding.ts";
export * from "./softcap.ts";
export * from "./classifier.ts";
export * from "./target_rank.ts";
export * from "./adamw.ts";
