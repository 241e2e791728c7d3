/**
 * `deno task prepare`: text files, folders or a built-in corpus to llm.c token shards. A thin
 * layer over {@linkcode prepare}.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { CORPORA } from "./corpus.ts";
import { META_FILE } from "./meta.ts";
import { prepare, PREPARE_DEFAULTS } from "./prepare.ts";
import { TOKENIZER_NAMES } from "./tokenizer.ts";
import { progressBar } from "./_progress.ts";

/** A command-line mistake; printed as one line, exit code 2. */
export class UsageError extends Error {
  /** Creates the error with its one-line message. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

const USAGE = `Usage: deno task prepare --input PATH... --out DIR [options]

Tokenizes text into llm.c shards: DIR/train_000000.bin ..., DIR/val_000000.bin ..., DIR/meta.json.

  --input, -i PATH   text file, folder of text files, or built-in corpus; repeatable, and
                     further inputs may follow as plain arguments (default: brown)
  --out, -o DIR      output folder (required); its earlier shards and meta.json are replaced
  --tokenizer NAME   ${TOKENIZER_NAMES.join(" | ")} (default ${PREPARE_DEFAULTS.tokenizer})
  --val-fraction F   fraction of documents for validation, in [0, 1) (default ${PREPARE_DEFAULTS.valFraction})
  --shard-tokens N   most tokens per shard (default ${PREPARE_DEFAULTS.shardTokens})
  --max-tokens N     stop after N tokens in all (default: all of the input)
  --help, -h         this text

Built-in corpora:
${Object.values(CORPORA).map((c) => `  ${c.name.padEnd(17)}  ${c.description}`).join("\n")}`;

function count(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value.replaceAll("_", ""));
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`${flag} must be a positive integer, got "${value}"`);
  }
  return n;
}

/** Runs `prepare` with command-line `args` (without the command name). */
export async function main(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      input: { type: "string", short: "i", multiple: true },
      out: { type: "string", short: "o" },
      tokenizer: { type: "string" },
      "val-fraction": { type: "string" },
      "shard-tokens": { type: "string" },
      "max-tokens": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (!values.out) throw new UsageError("--out DIR is required (see --help)");
  const inputs = [...(values.input ?? []), ...positionals];
  let valFraction: number | undefined;
  if (values["val-fraction"] !== undefined) {
    valFraction = Number(values["val-fraction"]);
    if (!(valFraction >= 0 && valFraction < 1)) {
      throw new UsageError(`--val-fraction must be a number in [0, 1), got "${values["val-fraction"]}"`);
    }
  }
  const tokenizer = values.tokenizer ?? PREPARE_DEFAULTS.tokenizer;
  if (!TOKENIZER_NAMES.includes(tokenizer)) {
    throw new UsageError(`--tokenizer must be one of ${TOKENIZER_NAMES.join(", ")}, got "${tokenizer}"`);
  }
  const bar = progressBar();
  const started = performance.now();
  let meta;
  try {
    meta = await prepare({
      inputs: inputs.length > 0 ? inputs : ["brown"],
      out: values.out,
      tokenizer,
      valFraction,
      shardTokens: count("--shard-tokens", values["shard-tokens"]),
      maxTokens: count("--max-tokens", values["max-tokens"]),
      onProgress: bar.update,
    });
  } finally {
    bar.done();
  }
  const seconds = (performance.now() - started) / 1000;
  const bytes = meta.sources.reduce((n, s) => n + s.bytes, 0);
  const fmt = (n: number): string => n.toLocaleString("en-US");
  console.log(
    `prepared ${fmt(meta.splits.train.tokens + meta.splits.val.tokens)} ${meta.tokenizer} tokens from ` +
      `${fmt(bytes)} bytes in ${seconds.toFixed(1)} s (${(bytes / 1e6 / seconds).toFixed(1)} MB/s)`,
  );
  for (const split of ["train", "val"] as const) {
    const s = meta.splits[split];
    console.log(
      `  ${(split + ":").padEnd(6)} ${fmt(s.tokens)} tokens, ${
        fmt(s.documents)
      } documents, ${s.shards.length} shard(s)`,
    );
  }
  if (meta.valFraction > 0 && meta.splits.val.documents === 0) {
    console.log(
      `  note: val is empty: ${meta.splits.train.documents} document(s) are too few for --val-fraction ${meta.valFraction}` +
        ` (separate documents with ${JSON.stringify("<|endoftext|>")} or give more files)`,
    );
  }
  console.log(`  wrote ${values.out}/${META_FILE}`);
}
