/**
 * `deno task eval --model MODEL... [--data DATA] [--tasks FILE.jsonl|cloze|cloze-word ...]
 * [--limit N] [--json | --markdown]`: validation loss, perplexity and bits per byte on the data's
 * val split (train when it has none) and zero-shot task accuracy, one table row per model.
 *
 * Tasks default to the built-in `cloze` when `--data` is given; `--tasks none` skips them. For one
 * model without `--json`/`--markdown`, the last line printed is JSON
 * `{"loss", "perplexity", "tokens", "bytes", "bpb", "tasks"}`. `--write-cloze FILE` writes the
 * first built-in cloze task of `--tasks` (default `cloze`) as JSONL, and is all that runs when no
 * `--model` is given. Skipped task lines are reported on stderr.
 *
 * @module
 */
import { loadModel } from "@inheritune/core";
import { getGpu } from "@inheritune/kernels";
import {
  DataError,
  type Dataset,
  loadTokenizer,
  openDataset,
  type Tokenizer,
  type TokenSource,
} from "@inheritune/data";
import {
  buildClozeFromSplit,
  CLOZE_DEFAULTS,
  CLOZE_TASKS,
  evaluateModel,
  formatMarkdown,
  formatText,
  loadTask,
  type ModelReport,
  reportTable,
  type Task,
  taskToJsonl,
} from "@inheritune/eval";
import { intFlag, parseFlags, UsageError } from "./_flags.ts";

const FLAGS = {
  model: { type: "string", multiple: true },
  data: { type: "string" },
  tasks: { type: "string", multiple: true },
  limit: { type: "string" },
  ctx: { type: "string" },
  "max-tokens": { type: "string" },
  batch: { type: "string" },
  seed: { type: "string" },
  "cloze-items": { type: "string" },
  "write-cloze": { type: "string" },
  json: { type: "boolean" },
  markdown: { type: "boolean" },
} as const;

/** Task arguments: repeated flags and comma-separated lists alike. */
function taskNames(values: unknown, hasData: boolean): string[] {
  const names = ((values as string[] | undefined) ?? (hasData ? ["cloze"] : []))
    .flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v !== "");
  return names.includes("none") ? [] : names;
}

/** Runs the command with its flags. */
export async function main(args: string[]): Promise<void> {
  const f = parseFlags(args, FLAGS);
  const models = (f.model as string[] | undefined) ?? [];
  const writeCloze = f["write-cloze"] as string | undefined;
  if (models.length === 0 && writeCloze === undefined) throw new UsageError("--model is required");
  if (f.json === true && f.markdown === true) {
    throw new UsageError("--json and --markdown exclude each other");
  }
  const limit = f.limit === undefined ? undefined : intFlag(f.limit, "limit", { min: 1 });
  const names = taskNames(f.tasks, f.data !== undefined);
  const cloze = {
    seed: intFlag(f.seed, "seed", { fallback: CLOZE_DEFAULTS.seed, min: 0 }),
    items: intFlag(f["cloze-items"], "cloze-items", { fallback: CLOZE_DEFAULTS.items, min: 1 }),
  };

  using dataset = f.data === undefined ? undefined : await openDataset(String(f.data));
  const text = dataset ? await validationText(dataset) : undefined;
  const tasks: Task[] = [];
  for (const name of names) {
    if (Object.hasOwn(CLOZE_TASKS, name)) {
      if (!text) throw new UsageError(`task ${name} is built from --data, which is missing`);
      tasks.push(buildClozeFromSplit(text.source, text.tokenizer, { ...cloze, kind: CLOZE_TASKS[name] }));
      continue;
    }
    const { task, problems } = await loadTask(name);
    for (const p of problems) console.error(`${name} line ${p.line}: ${p.message}; skipped`);
    tasks.push(task);
  }
  if (writeCloze !== undefined) {
    const task = tasks.find((t) => Object.hasOwn(CLOZE_TASKS, t.name)) ??
      (text ? buildClozeFromSplit(text.source, text.tokenizer, cloze) : undefined);
    if (!task) throw new UsageError("--write-cloze needs --data");
    await Deno.writeTextFile(writeCloze, taskToJsonl(task));
    console.error(`wrote ${task.items.length} ${task.name} items to ${writeCloze}`);
    if (models.length === 0) return;
  }

  const ctx = f.ctx === undefined ? undefined : intFlag(f.ctx, "ctx", { min: 1 });
  const batch = f.batch === undefined ? undefined : intFlag(f.batch, "batch", { min: 1 });
  const maxTokens = f["max-tokens"] === undefined
    ? undefined
    : intFlag(f["max-tokens"], "max-tokens", { min: 1 });
  const gpu = await getGpu();
  const reports: ModelReport[] = [];
  for (const path of models) {
    const checkpoint = await loadModel(path);
    const { config } = checkpoint;
    if (ctx !== undefined && ctx > config.n_positions) {
      throw new UsageError(`--ctx ${ctx} exceeds ${path}'s n_positions ${config.n_positions}`);
    }
    if (text && text.tokenizer.name === config.tokenizer && text.tokenizer.vocabSize > config.vocab_size) {
      throw new DataError(
        `${path}: vocabulary ${config.vocab_size} is smaller than the data's ${text.tokenizer.vocabSize}`,
      );
    }
    console.error(
      `evaluating ${path} (${config.n_layer} layers, C=${config.n_embd}, ${config.tokenizer} tokens)`,
    );
    reports.push(
      await evaluateModel({ name: path, ...checkpoint }, {
        text,
        tasks,
        ctx,
        batch,
        maxTokens,
        limit,
        gpu,
        onSkip: (task, skipped) => {
          const [first] = skipped;
          console.error(
            `${task}: ${skipped.length} items skipped for ${path}, e.g. line ${first.line}: ${first.message}`,
          );
        },
      }),
    );
  }

  if (f.json === true) {
    console.log(JSON.stringify(reports, null, 2));
    return;
  }
  const table = reportTable(reports);
  if (f.markdown === true) {
    console.log(formatMarkdown(table));
    return;
  }
  console.log(formatText(table));
  if (reports.length === 1) console.log(JSON.stringify(summary(reports[0])));
}

/** The data's validation split (train when it has none) and the tokenizer it was made with. */
async function validationText(dataset: Dataset): Promise<{ source: TokenSource; tokenizer: Tokenizer }> {
  const source = dataset.splits.includes("val") ? dataset.split("val") : dataset.split("train");
  // A folder of bare llm.c shards has no meta.json: its tokens are GPT-2's.
  return { source, tokenizer: await loadTokenizer(dataset.meta ? dataset.path : "gpt2") };
}

/** The one-line JSON of a single model's evaluation. */
function summary(r: ModelReport): Record<string, unknown> {
  const tasks = Object.fromEntries(
    r.tasks.map((
      t,
    ) => [t.name, { acc: t.acc, acc_norm: t.acc_norm, perplexity: t.perplexity, items: t.items }]),
  );
  return {
    loss: r.text?.loss,
    perplexity: r.text?.perplexity,
    tokens: r.text?.tokens,
    bytes: r.text?.bytes,
    bpb: r.text?.bitsPerByte,
    params: r.params,
    tasks,
  };
}
