/**
 * Evaluation of trained models, offline: validation loss, perplexity and bits per byte; zero-shot
 * and few-shot multiple-choice and final-word tasks scored by log-likelihood on the GPU, as
 * lm-evaluation-harness's Hugging Face backend scores them (HellaSwag, PIQA, ARC, WinoGrande,
 * WSC273, BoolQ, LogiQA, MMLU, TruthfulQA and LAMBADA JSONL, llm-foundry's and a plain form, and a
 * seeded cloze task built from held-out text); comparison tables.
 *
 * ```ts
 * import { buildClozeFromSplit, evaluateModel, formatText, reportTable } from "@inheritune/eval";
 * import { loadModel } from "@inheritune/core";
 * import { loadTokenizer, openDataset } from "@inheritune/data";
 *
 * using data = await openDataset("runs/data/brown-bytes");
 * const val = data.split("val");
 * const tokenizer = await loadTokenizer("runs/data/brown-bytes");
 * const cloze = buildClozeFromSplit(val, tokenizer, { seed: 1 });
 * const report = await evaluateModel(
 *   { name: "runs/small", ...await loadModel("runs/small") },
 *   { text: { source: val, tokenizer }, tasks: [cloze] },
 * );
 * console.log(formatText(reportTable([report])));
 * ```
 *
 * @module
 */
export * from "./tasks.ts";
export * from "./cloze.ts";
export * from "./scorer.ts";
export * from "./text.ts";
export * from "./zero_shot.ts";
export * from "./fewshot.ts";
export * from "./evaluate.ts";
export * from "./report.ts";
export * from "./diagnostics.ts";
