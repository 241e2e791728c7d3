/**
 * `deno task eval`: validation loss, perplexity and bits per byte on the data's val split (train
 * when val cannot fill one window, see `validationSplit`) and zero-shot task accuracy, one table row per model. A thin layer over
 * `evaluateModel`.
 *
 * @module
 */
import { loadModel, ownTokenizer } from "@inheritune/core";
import { getGpu } from "@inheritune/kernels";
import { DataError, maxToken, openDataset, type Tokenizer, validationSplit } from "@inheritune/data";
import {
  buildClozeFromSplit,
  CLOZE_DEFAULTS,
  CLOZE_TASKS,
  DEFAULT_FEWSHOT_SEED,
  evaluateModel,
  formatMarkdown,
  formatText,
  HARNESS_TASKS,
  loadTask,
  type ModelReport,
  reportTable,
  type Task,
  type TaskSample,
  taskToJsonl,
  withFewshot,
} from "@inheritune/eval";
import { type CommandSpec, parseCommand, UsageError } from "./_flags.ts";
import { dataTokenizer } from "./_data.ts";

/** The command line of `deno task eval`. */
export const COMMAND = {
  name: "eval",
  summary: "validation loss, perplexity, bits per byte and zero-shot tasks, one table for several models",
  usage:
    "--model MODEL... --data DATA [--tasks TASK...] [--num-fewshot K [--fewshot-file FILE...]] [--ctx T] [--samples FILE] [--json|--markdown]",
  flags: {
    model: {
      type: "string",
      multiple: true,
      arg: "MODEL",
      help: "models to evaluate, one table row each (required, except for --write-cloze alone)",
    },
    data: {
      type: "string",
      arg: "DATA",
      help: "prepared data (its val split; train when val cannot fill one window) or llm.c shards",
    },
    tasks: {
      type: "list",
      multiple: true,
      arg: "TASK",
      help: "cloze, cloze-word, JSONL files, or none; also comma-separated (default cloze with --data)",
    },
    limit: { type: "int", arg: "N", help: "most items per task", min: 1 },
    ctx: {
      type: "int",
      arg: "T",
      help: "context of the validation windows (default the model's n_positions)",
      min: 1,
    },
    "max-tokens": {
      type: "int",
      arg: "N",
      help: "most validation targets scored (default all complete windows)",
      min: 1,
    },
    batch: { type: "int", arg: "B", help: "sequences per forward pass (default 8192 / T)", min: 1 },
    seed: {
      type: "int",
      arg: "S",
      help: "seed of the built-in cloze items",
      default: CLOZE_DEFAULTS.seed,
      min: 0,
    },
    "cloze-items": {
      type: "int",
      arg: "N",
      help: "items of a built-in cloze task",
      default: CLOZE_DEFAULTS.items,
      min: 1,
    },
    "num-fewshot": {
      type: "int",
      arg: "K",
      help: "examples before each item, formatted as lm-evaluation-harness does (default 0)",
      default: 0,
      min: 0,
    },
    "fewshot-file": {
      type: "list",
      multiple: true,
      arg: "FILE",
      help: "JSONL the examples come from, one per task file in order (default: each task's other items)",
    },
    "fewshot-seed": {
      type: "int",
      arg: "S",
      help: "seed of the examples drawn (the harness's fewshot_random_seed)",
      default: DEFAULT_FEWSHOT_SEED,
      min: 0,
    },
    samples: {
      type: "string",
      arg: "FILE",
      help: "also write every scored item as JSONL (model, task, line, log-likelihoods, outcomes)",
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
    "Task formats: the Hugging Face datasets' JSONL, phrased and scored as lm-evaluation-harness 0.4.13",
    "does (HellaSwag, PIQA, ARC, WinoGrande, WSC273, BoolQ, LogiQA, MMLU, TruthfulQA MC1/MC2, LAMBADA), a",
    "plain {context, choices, gold} form, and llm-foundry ICL JSONL ({query, choices, gold}; {context_options,",
    "continuation, gold}; {context, continuation}). For one model without --json/--markdown, the last line",
    'is JSON {"loss", "perplexity", "tokens", "bytes", "bpb", "tasks"}. Data prepared with another tokenizer',
    "is re-tokenised for the model (said on stderr); bare shards are read as the model's own tokens. A model",
    "without a tokenizer reads the data's ids as its own: loss and perplexity, and bits per byte only when",
    "the data has a tokenizer (else null, shown as -); tasks need a tokenizer.",
  ],
  examples: [
    "deno task eval --model models/stories260K/model.gguf --data runs/data/tinystories --ctx 256",
    "deno task eval --model runs/inherited runs/scratch --data runs/data/tinystories --markdown",
  ],
} as const satisfies CommandSpec;

/** The tasks to score: those named (none for "none"), else cloze when there is data. */
function taskNames(tasks: string[] | undefined, hasData: boolean): string[] {
  const names = tasks ?? (hasData ? ["cloze"] : []);
  return names.includes("none") ? [] : names;
}

/** Runs the command with its flags. */
export async function main(args: string[]): Promise<void> {
  const f = parseCommand(COMMAND, args);
  if (!f) return;
  const models = f.model ?? [];
  const writeCloze = f["write-cloze"];
  if (models.length === 0 && writeCloze === undefined) throw new UsageError("--model is required");
  if (f.json && f.markdown) throw new UsageError("--json and --markdown exclude each other");
  const { limit, ctx, batch, "max-tokens": maxTokens } = f;
  const names = taskNames(f.tasks, f.data !== undefined);
  const cloze = { seed: f.seed, items: f["cloze-items"] };

  using dataset = f.data === undefined ? undefined : await openDataset(f.data);
  // One split for every model, so that the table compares them on the same text. Each model's
  // context is known only once it loads: without --ctx the split is chosen for the shortest
  // window (one token and its target), and a model whose context it cannot fill says so.
  const split = dataset && (validationSplit(dataset, ctx ?? 1) ?? "train");
  if (dataset && split === "train") {
    console.error(`${dataset.path}: no val split of ${(ctx ?? 1) + 1} tokens or more; evaluating on train`);
  }
  const source = dataset && split && dataset.split(split);
  const prepared = dataset && await dataTokenizer(dataset);
  // Tasks are built from the data's text, decoded with its tokenizer (bare shards: the first model's).
  let tasks: Task[] | undefined;
  const buildTasks = async (tokenizer?: Tokenizer): Promise<Task[]> => {
    const out: Task[] = [];
    for (const name of names) {
      if (Object.hasOwn(CLOZE_TASKS, name)) {
        if (!source) throw new UsageError(`task ${name} is built from --data, which is missing`);
        if (!tokenizer) {
          const problem = `task ${name} is built from text, and neither ${
            dataset!.path
          } nor the model has a tokenizer`;
          if (f.tasks !== undefined) throw new UsageError(problem);
          console.error(`${problem}: skipped`);
          continue;
        }
        out.push(buildClozeFromSplit(source, tokenizer, { ...cloze, kind: CLOZE_TASKS[name] }));
        continue;
      }
      const { task, problems } = await loadTask(name);
      for (const p of problems) console.error(`${name} line ${p.line}: ${p.message}; skipped`);
      out.push(task);
    }
    return await withExamples(out);
  };
  const fewshotFiles = f["fewshot-file"] ?? [];
  const taskFiles = names.filter((n) => !Object.hasOwn(CLOZE_TASKS, n));
  if (fewshotFiles.length > 0 && fewshotFiles.length !== taskFiles.length) {
    throw new UsageError(
      `--fewshot-file needs one file per task file (${taskFiles.length}), got ${fewshotFiles.length}`,
    );
  }
  const shots = f["num-fewshot"];
  if (fewshotFiles.length > 0 && shots === 0) throw new UsageError("--fewshot-file needs --num-fewshot");
  // Task files and their --fewshot-file pair up in order; built-in cloze tasks draw from themselves.
  const withExamples = async (tasks: Task[]): Promise<Task[]> => {
    if (shots === 0) return tasks;
    const out: Task[] = [];
    let file = 0;
    for (const task of tasks) {
      const path = Object.hasOwn(CLOZE_TASKS, task.name) ? undefined : fewshotFiles[file++];
      const pool = path === undefined ? undefined : (await loadTask(path)).task;
      if (pool && pool.format !== task.format) {
        throw new UsageError(
          `--fewshot-file ${path} holds ${pool.format} items, task ${task.name} ${task.format}`,
        );
      }
      if (HARNESS_TASKS[task.format].zeroShotOnly) {
        console.error(`${task.name}: ${task.format} stays zero-shot, as in lm-evaluation-harness`);
      }
      try {
        out.push(withFewshot(task, { shots, pool, seed: f["fewshot-seed"] }));
      } catch (e) {
        if (e instanceof RangeError) throw new UsageError(`--num-fewshot ${shots}: ${e.message}`);
        throw e;
      }
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
  const samples: string[] = [];
  for (const path of models) {
    const checkpoint = await loadModel(path);
    const { config } = checkpoint;
    if (ctx !== undefined && ctx > config.n_positions) {
      throw new UsageError(`--ctx ${ctx} exceeds ${path}'s n_positions ${config.n_positions}`);
    }
    const own = await ownTokenizer(checkpoint, path);
    if (source && (!prepared || !own)) {
      // Bare shards, or a model without a tokenizer: the model's own tokens, which must fit its vocabulary.
      const max = maxToken(source);
      if (max >= config.vocab_size) {
        throw new DataError(
          `${dataset!.path}: token ${max} is not below ${path}'s vocabulary of ${config.vocab_size}`,
        );
      }
    }
    if (prepared && own && prepared.hash !== own.hash) {
      console.error(
        `${path}: re-tokenising ${
          dataset!.path
        } (${prepared.name} tokens) with the model's ${own.name} tokenizer`,
      );
    }
    tasks ??= await buildTasks(prepared ?? own);
    const tokens = own?.name ?? prepared?.name;
    console.error(
      `evaluating ${path} (${config.n_layer} blocks, C=${config.n_embd}, ${
        tokens ?? "ids without a tokenizer"
      }${tokens ? " tokens" : ": bits per byte unavailable"})`,
    );
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
        onSamples: f.samples === undefined
          ? undefined
          : (task, items) =>
            samples.push(...items.map((s: TaskSample) => JSON.stringify({ model: path, task, ...s }))),
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

  if (f.samples !== undefined) {
    await Deno.writeTextFile(f.samples, samples.map((line) => line + "\n").join(""));
    console.error(`wrote ${samples.length} scored items to ${f.samples}`);
  }
  if (f.json) {
    console.log(JSON.stringify(reports, null, 2));
    return;
  }
  const table = reportTable(reports);
  if (f.markdown) {
    console.log(formatMarkdown(table));
    return;
  }
  console.log(formatText(table));
  if (reports.length === 1) console.log(JSON.stringify(summary(reports[0])));
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
    // null where the text was scored but no tokenizer gave its bytes.
    bytes: r.text && (r.text.bytes ?? null),
    bpb: r.text && (r.text.bitsPerByte ?? null),
    params: r.params,
    tasks,
  };
}
