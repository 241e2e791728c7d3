/**
 * One model's full evaluation: validation loss, perplexity and bits per byte, then every zero-shot
 * task, each with a model instance shaped for it (validation at the requested context, tasks at
 * the longest request's length, which keeps short cloze items cheap).
 *
 * @module
 */
import {
  type Checkpoint,
  countParams,
  createModel,
  hfBosToken,
  type ModelConfig,
  ownTokenizer,
} from "@inheritune/core";
import { getGpu, type Gpu } from "@inheritune/kernels";
import { DataError, type Tokenizer, type TokenSource } from "@inheritune/data";
import type { LineProblem, Task } from "./tasks.ts";
import { evaluateText, retokenize, type TextResult } from "./text.ts";
import { longestRequest, prepareTask, scoreTask, type TaskResult, type TaskSample } from "./zero_shot.ts";

/** Everything measured about one model. */
export interface ModelReport {
  /** The model's name (its path, for the CLI). */
  model: string;
  /** Parameter count. */
  params: number;
  /** Its architecture. */
  config: ModelConfig;
  /** Validation text metrics, when text was given. */
  text?: TextResult;
  /** One result per task, in the order given. */
  tasks: TaskResult[];
}

/** Tokens per forward pass when the batch size is not given: B = max(1, ⌊8192 / T⌋). */
const TOKENS_PER_BATCH = 8192;

/** Options of {@linkcode evaluateModel}. */
export interface EvaluateOptions {
  /**
   * Validation tokens and the tokenizer they were made with, re-encoded when the model's differs;
   * without one (bare llm.c shards), or for a model without a tokenizer, the ids are the model's own.
   */
  text?: { source: TokenSource; tokenizer?: Tokenizer };
  /** Zero-shot tasks. */
  tasks?: readonly Task[];
  /** Context of the validation windows and most tokens per task request (default n_positions). */
  ctx?: number;
  /** Sequences per forward pass (default ⌊8192 / T⌋). */
  batch?: number;
  /** Most validation targets scored (default every complete window). */
  maxTokens?: number;
  /** Most items per task. */
  limit?: number;
  /**
   * Tasks (by name) that are left out with a note through `onSkip` when the model can score none
   * of their items, instead of failing the evaluation.
   */
  optionalTasks?: ReadonlySet<string>;
  /** Told of the items a task skips, once per task that skips any. */
  onSkip?: (task: string, skipped: readonly LineProblem[]) => void;
  /** Told of every scored item of a task, once per task. */
  onSamples?: (task: string, samples: readonly TaskSample[]) => void;
  /** The device (default the shared one). */
  gpu?: Gpu;
}

/**
 * Evaluates the model `checkpoint` on validation text and zero-shot tasks. A model without a
 * tokenizer reads the text's ids as its own; bits per byte then take the text's tokenizer, and are
 * left out when neither has one.
 *
 * @throws {DataError} when the validation text is shorter than one window, a task has no item
 * this model can score, or tasks are given for a model without a tokenizer.
 */
export async function evaluateModel(
  checkpoint: Checkpoint & { name: string },
  options: EvaluateOptions = {},
): Promise<ModelReport> {
  const { config, params } = checkpoint;
  const gpu = options.gpu ?? await getGpu();
  const own = await ownTokenizer(checkpoint, checkpoint.name);
  const ctx = options.ctx ?? config.n_positions;
  const batchFor = (T: number): number => options.batch ?? Math.max(1, Math.floor(TOKENS_PER_BATCH / T));
  const report: ModelReport = { model: checkpoint.name, params: countParams(config), config, tasks: [] };

  if (options.text) {
    const { source, tokenizer: dataTokenizer } = options.text;
    const tokens = !own || !dataTokenizer || dataTokenizer.hash === own.hash
      ? source
      : retokenize(source, { from: dataTokenizer, to: own, maxTokens: options.maxTokens });
    if (options.maxTokens !== undefined && options.maxTokens < ctx) {
      throw new DataError(
        `at most ${options.maxTokens} validation tokens is less than one window of context ${ctx}`,
      );
    }
    if (tokens.length < ctx + 1) {
      throw new DataError(
        `validation text has ${tokens.length} tokens, one window of context ${ctx} needs ${ctx + 1}`,
      );
    }
    const model = createModel(gpu, config, params, { B: batchFor(ctx), T: ctx });
    try {
      report.text = await evaluateText(model, tokens, {
        tokenizer: own ?? dataTokenizer,
        maxTokens: options.maxTokens,
      });
    } finally {
      model.destroy();
    }
  }

  const tasks = options.tasks ?? [];
  const tokenizer = own ?? options.text?.tokenizer;
  if (tasks.length > 0 && !tokenizer) {
    throw new DataError(
      `${checkpoint.name}: the model carries no tokenizer, which task ${
        tasks[0].name
      } needs to encode its text`,
    );
  }
  // Contexts start with BOS where the model's Hugging Face tokenizer adds one, as in the harness.
  const bos = tokenizer && hfBosToken(tokenizer, own ? checkpoint.tokenizerFiles : undefined);
  const prepared = tasks.map((t) =>
    prepareTask(t, tokenizer!, { T: ctx, vocabSize: config.vocab_size, limit: options.limit, bos })
  ).filter((p) => {
    if (p.skipped.length > 0 || p.items.length === 0) options.onSkip?.(p.task.name, p.skipped);
    return p.items.length > 0 || !options.optionalTasks?.has(p.task.name);
  });
  const unscorable = prepared.find((p) => p.items.length === 0);
  if (unscorable) {
    const first = unscorable.skipped[0];
    throw new DataError(
      `${unscorable.task.name}: no item can be scored by ${checkpoint.name}${
        first ? ` (line ${first.line}: ${first.message})` : ""
      }`,
    );
  }
  if (prepared.length > 0) {
    const T = Math.min(ctx, Math.max(...prepared.map(longestRequest)) - 1);
    const requests = Math.max(...prepared.map((p) => p.requests.length));
    const model = createModel(gpu, config, params, { B: Math.min(batchFor(T), requests), T });
    try {
      for (const p of prepared) {
        const onSamples = options.onSamples &&
          ((s: readonly TaskSample[]) => options.onSamples!(p.task.name, s));
        report.tasks.push(await scoreTask(model, p, { onSamples }));
      }
    } finally {
      model.destroy();
    }
  }
  return report;
}
