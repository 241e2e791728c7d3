/**
 * `deno task prepare`: text, JSON Lines, JSON and Parquet files (optionally .gz / .zst), folders
 * or a built-in corpus to llm.c token shards, with GPT-2's tokenizer, bytes, or a model's own. A
 * thin layer over {@linkcode prepare}.
 *
 * @module
 */
import {
  CORPORA,
  DataError,
  DOCUMENTS_OPTIONS,
  type DocumentsOption,
  documentTokens,
  META_FILE,
  prepare,
  PREPARE_DEFAULTS,
  readTokenizerConfig,
  TOKENIZER_SPECS,
  type TokenizerConfig,
} from "@inheritune/data";
import { loadModelTokenizer, openGguf } from "@inheritune/core";
import { type CommandSpec, parseCommand, UsageError } from "./_flags.ts";
import { progressBar } from "./_prepare_progress.ts";

/** The command line of `deno task prepare`. */
export const COMMAND = {
  name: "prepare",
  summary:
    "text, JSON Lines, JSON or Parquet files (.gz, .zst too), folders or a built-in corpus → llm.c token shards, meta.json and the tokenizer's definition",
  usage:
    "--input PATH... --out DIR [--tokenizer SPEC] [--documents RULE] [--text-field NAME] [--val-fraction F] [--workers N]",
  flags: {
    input: {
      type: "string",
      short: "i",
      multiple: true,
      arg: "PATH",
      help:
        "text, .jsonl/.ndjson, .json (array or lines) and .parquet files, each optionally .gz/.zst; folders of them; or built-in corpora",
      default: ["brown"],
    },
    out: {
      type: "string",
      short: "o",
      arg: "DIR",
      help:
        "output folder; its earlier shards, meta.json and tokenizer file are replaced once the new ones are complete",
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
    "text-field": {
      type: "string",
      arg: "NAME",
      help:
        "the field of a JSON record or the Parquet column holding the text; dots reach nested fields (meta.body)",
      default: PREPARE_DEFAULTS.textField,
    },
    "skip-bad-lines": {
      type: "boolean",
      help: "skip and count JSON lines and Parquet rows without a text (else the first one is an error)",
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
    workers: {
      type: "int",
      arg: "N",
      help:
        "tokenizer threads (default: the number of cores, 1 for inputs under 1 MiB); every N gives the same bytes",
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
    "deno task prepare -i dumps/ -o runs/data/web --tokenizer models/qwen2 --text-field text --skip-bad-lines --workers 8",
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
  const framing = documentTokens(tokenizer, await tokenizerConfig(f.tokenizer));
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
      textField: f["text-field"],
      skipBadLines: f["skip-bad-lines"],
      workers: f.workers,
      documentTokens: framing,
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
  console.log(`  document tokens: ${framing.rule}`);
  for (const s of meta.sources) {
    if (s.skippedLines) console.log(`  skipped ${fmt(s.skippedLines)} line(s) without text in ${s.path}`);
  }
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

/**
 * The configuration beside tokenizer `spec` (`tokenizer_config.json`), or a GGUF file's
 * `tokenizer.ggml.add_bos_token` / `add_eos_token` with its BOS and EOS ids.
 */
async function tokenizerConfig(spec: string): Promise<TokenizerConfig | undefined> {
  if (!spec.toLowerCase().endsWith(".gguf")) return await readTokenizerConfig(spec);
  const gguf = await openGguf(spec);
  try {
    const m = gguf.metadata;
    const flag = (key: string): boolean | undefined => {
      const v = m.get(`tokenizer.ggml.${key}`);
      return typeof v === "boolean" ? v : undefined;
    };
    const id = (key: string): number | undefined => {
      const v = m.get(`tokenizer.ggml.${key}_token_id`);
      return typeof v === "number" && v !== 0xffffffff ? v : undefined;
    };
    const addBos = flag("add_bos_token");
    const addEos = flag("add_eos_token");
    if (addBos === undefined && addEos === undefined) return undefined;
    return { from: spec, addBos, addEos, bosToken: id("bos"), eosToken: id("eos") };
  } finally {
    gguf.close();
  }
}
