/**
 * GPT-2 on WebGPU: configuration, the parameter table, the model's forward and backward passes,
 * AdamW, inheritance, checkpoints and the trainer.
 *
 * @module
 */
export * from "./config.ts";
export * from "./params.ts";
export * from "./random.ts";
export * from "./init.ts";
export * from "./gpt2.ts";
export * from "./optimizer.ts";
export * from "./schedule.ts";
export * from "./evaluate.ts";
export * from "./inherit.ts";
export * from "./trainer.ts";
export * from "./safetensors.ts";
export * from "./checkpoint.ts";
export * from "./train_state.ts";
export * from "./report.ts";
export * from "./experiment.ts";
export * from "./grow.ts";
