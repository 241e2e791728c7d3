/**
 * Language models on WebGPU: one model interface over GPT-2 and the LLaMA-like families (Llama,
 * Qwen2, Qwen3, Mistral, Phi-3, Gemma 3) on one configurable decoder; their parameter tables and
 * forward and backward passes, AdamW, inheritance, checkpoints (Hugging Face folders, GGUF, llm.c
 * and llama2.c files), the trainer and generation.
 *
 * @module
 */
export * from "./config.ts";
export * from "./params.ts";
export * from "./family.ts";
export * from "./model.ts";
export * from "./init.ts";
export * from "./gpt2.ts";
export * from "./decoder.ts";
export * from "./families.ts";
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
export * from "./gguf_export.ts";
export * from "./llm_binaries.ts";
export * from "./tokenizer.ts";
export * from "./hf_tokenizer.ts";
export * from "./train_state.ts";
export * from "./report.ts";
export * from "./experiment.ts";
export * from "./grow.ts";
export * from "./generate.ts";
