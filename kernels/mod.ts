/**
 * WGSL compute kernels for training GPT-2 on WebGPU, forward and backward, each with the
 * plain-TypeScript CPU reference the tests compare it to.
 *
 * @module
 */
export * from "./device.ts";
export * from "./matmul.ts";
