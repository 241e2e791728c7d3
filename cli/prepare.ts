/**
 * `deno task prepare`: text files, folders or a built-in corpus to llm.c token shards, with GPT-2's
 * tokenizer, bytes, or a model's own. A thin layer over {@linkcode prepare}.
 *
 * @module
 */
import {
  CORPORA,
  DataError,
  DOCUMENTS_OPTIONS,
  type DocumentsOption,
  META_FILE,
  prepare,
  PREPARE_DEFAULTS,
  TOKENIZER_SPECS,
} from "@inheritune/data";
import { loadModelTokenizer } from "@inheritune/core";
import { type CommandSpec, parseCommand, UsageError } from "./_flags.ts";
import { progressBar } from "./_prepare_progress.ts";

/** The command line of `deno task prepare`. */
export const COMMAND = {
  name: "prepare",
  summary:
    "text files, folders or a built-in corpus → llm.c token shards, meta.json and the tokenizer's definition",
  usage: "--input PATH... --out DIR [--tokenizer SPEC] [--documents RULE] [--val-fraction F]",
  flags: {
    input: {
      type: "string",
      short: "i",
      multiple: true,
      arg: "PATH",
      help: "text files, folders of text files, or built-in corpora",
      default: ["brown"],
    },
    out: {
      type: "string",
      short: "o",
      arg: "DIR",
      help: "output folder; its earlier shards, meta.json and tokenizer file are replaced",
      required: true,
    },
    tokenizer: {
      type: "string",
      arg: "SPEC",
      help: `${TOKENIZER_SPECS}, or a .gguf file`,
      default: PREPARE_DEFAULTS.tokenizer,
    },
    documents: {
      type: "string",
      arg: "RULE",
      help:
        `${DOCUMENTS_OPTIONS.join(" | ")}: files (and <|endoftext|> parts), blank-line paragraphs, lines; ` +
        "auto: paragraphs, else lines, when files are too few for --val-fraction",
      default: PREPARE_DEFAULTS.documents,
      choices: DOCUMENTS_OPTIONS,
    },
    "val-fraction": {
      type: "number",
      arg: "F",
      help: "fraction of documents for validation, in [0, 1); 0 writes no val split",
      default: PREPARE_DEFAULTS.valFraction,
      min: 0,
    },
    "shard-tokens": {
      type: "int",
      arg: "N",
      help: "most tokens per shard",
      default: PREPARE_DEFAULTS.shardTokens,
      min: 1,
    },
    "max-tokens": {
      type: "int",
      arg: "N",
      help: "stop after N tokens in all (default: all of the input)",
      min: 1,
    },
  },
  notes: [
    "Built-in corpora:",
    ...Object.values(CORPORA).map((c) => `  ${c.name.padEnd(18)}  ${c.description}`),
  ],
  examples: [
    "deno task prepare -i corpora/tinystories/valid_head.txt -o runs/data/tinystories --tokenizer models/stories260K/model.gguf --documents paragraphs",
    "deno task prepare -i brown -o runs/data/brown --tokenizer bytes",
  ],
} as const satisfies CommandSpec;

/** Runs `prepare` with command-line `args` (without the command name). */
export async function main(args: string[]): Promise<void> {
  const f = parseCommand(COMMAND, args);
  if (!f) return;
  const { out, input: inputs, "val-fraction": valFraction } = f;
  const documents = f.documents as DocumentsOption;
  if (valFraction >= 1) throw new UsageError(`--val-fraction must be below 1, got ${valFraction}`);
  const tokenizer = await loadModelTokenizer(f.tokenizer).catch((e) => {
    throw e instanceof DataError ? new UsageError(`--tokenizer: ${e.message}`) : e;
  });
  const bar = progressBar();
  const started = performance.now();
  let meta;
  try {
    meta = await prepare({
      inputs,
      out,
      tokenizer,
      documents,
      valFraction,
      shardTokens: f["shard-tokens"],
      maxTokens: f["max-tokens"],
      onProgress: bar.update,
    });
  } finally {
    bar.done();
  }
  const seconds = (performance.now() - started) / 1000;
  const bytes = meta.sources.reduce((n, s) => n + s.bytes, 0);
  const fmt = (n: number): string => n.toLocaleString("en-US");
  const val = meta.splits.val;
  console.log(
    `prepared ${fmt(meta.splits.train.tokens + (val?.tokens ?? 0))} ${meta.tokenizer} tokens from ` +
      `${fmt(bytes)} bytes in ${seconds.toFixed(1)} s (${(bytes / 1e6 / seconds).toFixed(1)} MB/s)`,
  );
  console.log(`  documents: ${meta.documentRule} (${meta.documents})`);
  for (const [split, s] of Object.entries(meta.splits)) {
    console.log(
      `  ${(split + ":").padEnd(6)} ${fmt(s.tokens)} tokens, ${
        fmt(s.documents)
      } documents, ${s.shards.length} shard(s)`,
    );
  }
  if (val && val.documents === 0) {
    console.log(
      `  note: val is empty: ${meta.splits.train.documents} document(s) are too few for --val-fraction ${meta.valFraction}` +
        ` (separate documents with ${JSON.stringify("<|endoftext|>")}, blank lines, or give more files)`,
    );
  }
  console.log(`  wrote ${out}/${META_FILE}${meta.tokenizerFile ? ` and ${out}/${meta.tokenizerFile}` : ""}`);
}
