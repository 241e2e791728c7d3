/**
 * Language models on WebGPU: one model interface with two families (GPT-2, LLaMA), their
 * parameter tables and forward and backward passes, AdamW, inheritance, checkpoints (Hugging Face
 * folders, GGUF, llm.c and llama2.c files), the trainer and generation.
 *
 * @module
 */
export * from "./config.ts";
export * from "./params.ts";
export * from "./family.ts";
export * from "./model.ts";
export * from "./init.ts";
export * from "./gpt2.ts";
export * from "./llama.ts";
export * from "./optimizer.ts";
export * from "./schedule.ts";
export * from "./evaluate.ts";
export * from "./inherit.ts";
export * from "./trainer.ts";
export * from "./safetensors.ts";
export * from "./checkpoint.ts";
export * from "./ggml_quants.ts";
export * from "./gguf.ts";
export * from "./gguf_model.ts";
export * from "./llm_binaries.ts";
export * from "./tokenizer.ts";
export * from "./train_state.ts";
export * from "./report.ts";
export * from "./experiment.ts";
export * from "./grow.ts";
export * from "./generate.ts";
