/**
 * Token data for Inheritune: tokenizers (GPT-2, bytes, SentencePiece, Hugging Face
 * `tokenizer.json`), streaming preparation of llm.c token shards from text, memory-mapped shard
 * reading, and a batch sampler with precise, reproducible subsets.
 *
 * ```ts
 * import { BatchSampler, loadTokenizer, openDataset, prepare } from "@inheritune/data";
 *
 * await prepare({ inputs: ["brown"], out: "runs/data/brown" });
 * using data = await openDataset("runs/data/brown", { vocabSize: 50257 });
 * const sampler = new BatchSampler(data.split("train"), {
 *   B: 8, T: 256, shuffle: true, seed: 1, subset: { fraction: 0.1 },
 * });
 * const steps = sampler.stepsForEpochs(3); // "10% of the data for 3 epochs"
 * const { inputs, targets, epoch } = sampler.next(); // (B,T) each
 * const text = (await loadTokenizer("runs/data/brown")).decode(inputs.subarray(0, 256));
 * ```
 *
 * @module
 */
export * from "./corpus.ts";
export * from "./dataset.ts";
export * from "./document_tokens.ts";
export * from "./errors.ts";
export * from "./io.ts";
export * from "./meta.ts";
export * from "./prepare.ts";
export * from "./random.ts";
export * from "./sampler.ts";
export * from "./shard.ts";
export * from "./sentencepiece.ts";
export * from "./tokenizer.ts";
export * from "./tokenizer_json.ts";
export * from "./tokenizer_types.ts";
