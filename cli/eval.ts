/**
 * `deno task eval`: validation loss, perplexity and bits per byte on the data's val split (train
 * when it has none) and zero-shot task accuracy, one table row per model. A thin layer over
 * `evaluateModel`.
 *
 * @module
 */
import { checkpointTokenizer, loadModel } from "@inheritune/core";
import { getGpu } from "@inheritune/kernels";
import { DataError, maxToken, openDataset, type Tokenizer, type TokenSource } from "@inheritune/data";
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
import { type CommandSpec, intFlag, parseCommand, UsageError } from "./_flags.ts";
import { dataTokenizer } from "./_data.ts";

/** The command line of `deno task eval`. */
export const COMMAND = {
  name: "eval",
  summary: "validation loss, perplexity, bits per byte and zero-shot tasks, one table for several models",
  usage: "--model MODEL... --data DATA [--tasks cloze|FILE.jsonl ...] [--ctx T] [--json|--markdown]",
  flags: {
    model: {
      type: "string",
      multiple: true,
      arg: "MODEL",
      help: "a model to evaluate; repeat for several (required)",
    },
    data: {
      type: "string",
      arg: "DATA",
      help: "prepared data (its val split, train when it has none) or llm.c shards",
    },
    tasks: {
      type: "string",
      multiple: true,
      arg: "LIST",
      help:
        "cloze, cloze-word, JSONL files, or none; repeatable or comma-separated (default cloze with --data)",
    },
    limit: { type: "string", arg: "N", help: "most items per task" },
    ctx: {
      type: "string",
      arg: "T",
      help: "context of the validation windows (default the model's n_positions)",
    },
    "max-tokens": {
      type: "string",
      arg: "N",
      help: "most validation targets scored (default all complete windows)",
    },
    batch: { type: "string", arg: "B", help: "sequences per forward pass (default 8192 / T)" },
    seed: {
      type: "string",
      arg: "S",
      help: "seed of the built-in cloze items",
      default: CLOZE_DEFAULTS.seed,
    },
    "cloze-items": {
      type: "string",
      arg: "N",
      help: "items of a built-in cloze task",
      default: CLOZE_DEFAULTS.items,
    },
    "write-cloze": {
      type: "string",
      arg: "FILE",
      help: "also write the built-in cloze task as JSONL (all that runs without --model)",
    },
    json: { type: "boolean", help: "print the reports as JSON" },
    markdown: { type: "boolean", help: "print the table as Markdown" },
  },
  notes: [
    "Task formats: lm-evaluation-harness JSONL (HellaSwag, PIQA, ARC, WinoGrande, LAMBADA), a plain",
    "{context, choices, gold} form, and llm-foundry ICL JSONL ({query, choices, gold}; {context_options,",
    "continuation, gold}; {context, continuation}). For one model without --json/--markdown, the last line",
    'is JSON {"loss", "perplexity", "tokens", "bytes", "bpb", "tasks"}. Data prepared with another tokenizer',
    "is re-tokenised for the model (said on stderr); bare shards are read as the model's own tokens.",
  ],
  examples: [
    "deno task eval --model models/stories260K/model.gguf --data runs/data/tinystories --ctx 256",
    "deno task eval --model runs/inherited --model runs/scratch --data runs/data/tinystories --markdown",
  ],
} as const satisfies CommandSpec;

/** Task arguments: repeated flags and comma-separated lists alike. */
function taskNames(values: unknown, hasData: boolean): string[] {
  const names = ((values as string[] | undefined) ?? (hasData ? ["cloze"] : []))
    .flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v !== "");
  return names.includes("none") ? [] : names;
}

/** Runs the command with its flags. */
export async function main(args: string[]): Promise<void> {
  const f = parseCommand(COMMAND, args);
  if (!f) return;
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
  const ctx = f.ctx === undefined ? undefined : intFlag(f.ctx, "ctx", { min: 1 });
  const batch = f.batch === undefined ? undefined : intFlag(f.batch, "batch", { min: 1 });
  const maxTokens = f["max-tokens"] === undefined
    ? undefined
    : intFlag(f["max-tokens"], "max-tokens", { min: 1 });

  using dataset = f.data === undefined ? undefined : await openDataset(String(f.data));
  const source = dataset && validationSource(dataset);
  const prepared = dataset && await dataTokenizer(dataset);
  // Tasks are built from the data's text, decoded with its tokenizer (bare shards: the first model's).
  let tasks: Task[] | undefined;
  const buildTasks = async (tokenizer?: Tokenizer): Promise<Task[]> => {
    const out: Task[] = [];
    for (const name of names) {
      if (Object.hasOwn(CLOZE_TASKS, name)) {
        if (!source || !tokenizer) {
          throw new UsageError(`task ${name} is built from --data, which is missing`);
        }
        out.push(buildClozeFromSplit(source, tokenizer, { ...cloze, kind: CLOZE_TASKS[name] }));
        continue;
      }
      const { task, problems } = await loadTask(name);
      for (const p of problems) console.error(`${name} line ${p.line}: ${p.message}; skipped`);
      out.push(task);
    }
    return out;
  };
  if (writeCloze !== undefined) {
    tasks = await buildTasks(prepared);
    const task = tasks.find((t) => Object.hasOwn(CLOZE_TASKS, t.name)) ??
      (source && prepared ? buildClozeFromSplit(source, prepared, cloze) : undefined);
    if (!task) throw new UsageError("--write-cloze needs --data of a prepared folder (with meta.json)");
    await Deno.writeTextFile(writeCloze, taskToJsonl(task));
    console.error(`wrote ${task.items.length} ${task.name} items to ${writeCloze}`);
    if (models.length === 0) return;
  }

  const gpu = await getGpu();
  const reports: ModelReport[] = [];
  for (const path of models) {
    const checkpoint = await loadModel(path);
    const { config } = checkpoint;
    if (ctx !== undefined && ctx > config.n_positions) {
      throw new UsageError(`--ctx ${ctx} exceeds ${path}'s n_positions ${config.n_positions}`);
    }
    const own = await checkpointTokenizer(checkpoint, path);
    if (source && !prepared) {
      // Bare shards: the model's own tokens, which must fit its vocabulary.
      const max = maxToken(source);
      if (max >= config.vocab_size) {
        throw new DataError(
          `${dataset!.path}: token ${max} is not below ${path}'s vocabulary of ${config.vocab_size}`,
        );
      }
    }
    if (prepared && prepared.hash !== own.hash) {
      console.error(
        `${path}: re-tokenising ${
          dataset!.path
        } (${prepared.name} tokens) with the model's ${own.name} tokenizer`,
      );
    }
    tasks ??= await buildTasks(prepared ?? own);
    console.error(`evaluating ${path} (${config.n_layer} blocks, C=${config.n_embd}, ${own.name} tokens)`);
    reports.push(
      await evaluateModel({ name: path, ...checkpoint }, {
        text: source ? { source, tokenizer: prepared ?? own } : undefined,
        tasks,
        // The built-in default is skipped for a model that cannot score it; asked-for tasks are strict.
        optionalTasks: f.tasks === undefined ? new Set(names) : undefined,
        ctx,
        batch,
        maxTokens,
        limit,
        gpu,
        onSkip: (task, skipped) => {
          const [first] = skipped;
          console.error(
            first
              ? `${task}: ${skipped.length} items skipped for ${path}, e.g. line ${first.line}: ${first.message}`
              : `${task}: skipped for ${path}: no item fits the model`,
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

/** The data's validation split, or its training split when it has no validation tokens. */
function validationSource(
  dataset: { splits: readonly string[]; split(name: string): TokenSource },
): TokenSource {
  const val = dataset.splits.includes("val") ? dataset.split("val") : undefined;
  return val && val.length > 0 ? val : dataset.split("train");
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
