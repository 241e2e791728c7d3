/**
 * Zero-shot scoring of a task: every candidate's continuation is scored by log-likelihood given
 * its context ({@linkcode scoreRequests}); a `choice` item is right when its gold candidate scores
 * highest (`acc`) or highest per UTF-8 byte of continuation (`acc_norm`); a `final_word` item is
 * right when greedy decoding reproduces the word (`acc`), and the words' perplexity is
 * exp(−mean log p(word)).
 *
 * @module
 */
import type { LanguageModel } from "@inheritune/core";
import type { Tokenizer } from "@inheritune/data";
import { type ScoreRequest, scoreRequests } from "./scorer.ts";
import type { LineProblem, Task, TaskItem, TaskKind } from "./tasks.ts";

/** A task tokenized for one model: its scorable items and their requests. */
export interface PreparedTask {
  /** The task. */
  readonly task: Task;
  /** Items that can be scored, at most `limit` of them. */
  readonly items: readonly TaskItem[];
  /** One request per candidate of `items`, in order. */
  readonly requests: readonly ScoreRequest[];
  /** Items left out, with the reason (a continuation longer than T, no context to condition on). */
  readonly skipped: readonly LineProblem[];
}

/** A task's metrics. */
export interface TaskResult {
  /** Task name. */
  name: string;
  /** How it was scored. */
  kind: TaskKind;
  /** Items scored. */
  items: number;
  /** Items skipped (see {@linkcode PreparedTask.skipped}). */
  skipped: number;
  /** Accuracy (greedy match for `final_word`). */
  acc: number;
  /** Standard error of `acc` (NaN for one item). */
  acc_stderr: number;
  /** Byte-length-normalised accuracy (`choice` tasks only). */
  acc_norm?: number;
  /** Standard error of `acc_norm`. */
  acc_norm_stderr?: number;
  /** exp(−mean log p(word)) over items (`final_word` tasks only). */
  perplexity?: number;
}

/**
 * Token ids of a (context, continuation) pair as lm-evaluation-harness forms them: trailing
 * whitespace of the context moves to the continuation, the continuation's ids are those of
 * `context + continuation` after the context's, and an empty context becomes the end-of-text
 * token (or null when the tokenizer has none).
 */
export function encodePair(
  tokenizer: Tokenizer,
  pair: { context: string; continuation: string },
): { context: number[]; continuation: number[] } | null {
  let { context, continuation } = pair;
  const trimmed = context.trimEnd();
  continuation = context.slice(trimmed.length) + continuation;
  context = trimmed;
  if (context === "") {
    if (tokenizer.eotToken === undefined) return null;
    return { context: [tokenizer.eotToken], continuation: tokenizer.encode(continuation) };
  }
  const ctx = tokenizer.encode(context);
  return { context: ctx, continuation: tokenizer.encode(context + continuation).slice(ctx.length) };
}

/**
 * Tokenizes the first `limit` scorable items of `task` for a model of context `T` and vocabulary
 * `vocabSize`. An item is skipped (and listed) when a candidate has no context to condition on and
 * the tokenizer no end-of-text token, a continuation of 0 or more than T tokens, or a token the
 * model does not have.
 */
export function prepareTask(
  task: Task,
  tokenizer: Tokenizer,
  options: { T: number; vocabSize?: number; limit?: number },
): PreparedTask {
  const items: TaskItem[] = [];
  const requests: ScoreRequest[] = [];
  const skipped: LineProblem[] = [];
  const limit = options.limit ?? Infinity;
  const vocabSize = options.vocabSize ?? Infinity;
  for (const item of task.items) {
    if (items.length >= limit) break;
    const encoded = item.candidates.map((c) => encodePair(tokenizer, c));
    const problem = encoded.some((e) => e === null)
      ? `a candidate has no context and tokenizer ${tokenizer.name} no end-of-text token`
      : encoded.some((e) => e!.continuation.length === 0 || e!.continuation.length > options.T)
      ? `a continuation has 0 or more than T=${options.T} tokens`
      : encoded.some((e) => [...e!.context, ...e!.continuation].some((id) => id >= vocabSize))
      ? `a token id is not below the model's vocabulary size ${vocabSize}`
      : undefined;
    if (problem) {
      skipped.push({ line: item.line, message: problem });
      continue;
    }
    items.push(item);
    for (const e of encoded) requests.push(e!);
  }
  return { task, items, requests, skipped };
}

/** Longest request of `prepared` in tokens (context + continuation). */
export function longestRequest(prepared: PreparedTask): number {
  return prepared.requests.reduce((m, r) => Math.max(m, r.context.length + r.continuation.length), 0);
}

/** Mean of 0/1 outcomes and its standard error √(p(1−p)/(n−1)) (sample variance, as lm-evaluation-harness). */
export function meanWithStderr(hits: readonly boolean[]): { mean: number; stderr: number } {
  const n = hits.length;
  const mean = hits.filter((h) => h).length / n;
  return { mean, stderr: n > 1 ? Math.sqrt((mean * (1 - mean)) / (n - 1)) : NaN };
}

function argmax(values: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/**
 * Scores a prepared task with `model` and computes its metrics.
 *
 * @throws {RangeError} when no item could be prepared.
 */
export async function scoreTask(model: LanguageModel, prepared: PreparedTask): Promise<TaskResult> {
  const { task, items } = prepared;
  if (items.length === 0) throw new RangeError(`${task.name}: no item can be scored`);
  const finalWord = task.kind === "final_word";
  const scores = await scoreRequests(model, prepared.requests, { greedy: finalWord });
  const base = { name: task.name, kind: task.kind, items: items.length, skipped: prepared.skipped.length };
  if (finalWord) {
    // A final-word item has one candidate, so scores and items correspond one to one.
    const acc = meanWithStderr(scores.map((s) => s.greedy));
    const meanLogprob = scores.reduce((sum, s) => sum + s.logprob, 0) / scores.length;
    return { ...base, acc: acc.mean, acc_stderr: acc.stderr, perplexity: Math.exp(-meanLogprob) };
  }
  const encoder = new TextEncoder();
  const hits: boolean[] = [];
  const hitsNorm: boolean[] = [];
  let next = 0;
  for (const item of items) {
    const logprobs = item.candidates.map((_, k) => scores[next + k].logprob);
    const perByte = item.candidates.map((c, k) =>
      logprobs[k] / Math.max(1, encoder.encode(c.continuation).length)
    );
    next += item.candidates.length;
    hits.push(argmax(logprobs) === item.gold);
    hitsNorm.push(argmax(perByte) === item.gold);
  }
  const acc = meanWithStderr(hits);
  const accNorm = meanWithStderr(hitsNorm);
  return {
    ...base,
    acc: acc.mean,
    acc_stderr: acc.stderr,
    acc_norm: accNorm.mean,
    acc_norm_stderr: accNorm.stderr,
  };
}
