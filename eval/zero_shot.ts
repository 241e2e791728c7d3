/**
 * Zero-shot and few-shot scoring of a task, with lm-evaluation-harness 0.4.13's rules for its
 * Hugging Face backend (`HFLM`), each noted where it is applied: every candidate's continuation is
 * scored by log-likelihood given its context ({@linkcode scoreRequests}); a `choice` item is
 * right when its gold candidate scores highest (`acc`) or highest per character of its choice
 * (`acc_norm`); TruthfulQA items also get MC2, the normalised probability of the true answers;
 * a `final_word` item is right when greedy decoding reproduces the word (`acc`), and the words'
 * perplexity is exp(−mean log p(word)).
 *
 * @module
 */
import type { LanguageModel } from "@inheritune/core";
import type { Tokenizer } from "@inheritune/data";
import { type ScoreRequest, scoreRequests } from "./scorer.ts";
import {
  type Candidate,
  HARNESS_TASKS,
  type LineProblem,
  type Task,
  type TaskItem,
  type TaskKind,
} from "./tasks.ts";
import { pyLen, pyRstrip } from "./_python.ts";

/** A task tokenized for one model: its scorable items and their requests. */
export interface PreparedTask {
  /** The task. */
  readonly task: Task;
  /** Items that can be scored, at most `limit` of them. */
  readonly items: readonly TaskItem[];
  /** One request per candidate of `items` (then per MC2 candidate), in order. */
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
  /** Accuracy (greedy match for `final_word`; MC1 for TruthfulQA). */
  acc: number;
  /** Standard error of `acc` (NaN for one item). */
  acc_stderr: number;
  /** Length-normalised accuracy (`choice` tasks whose harness task reports it). */
  acc_norm?: number;
  /** Standard error of `acc_norm`. */
  acc_norm_stderr?: number;
  /** TruthfulQA's MC2: mean normalised probability of the true answers. */
  mc2?: number;
  /** Standard error of `mc2`. */
  mc2_stderr?: number;
  /** exp(−mean log p(word)) over items (`final_word` tasks only). */
  perplexity?: number;
}

/** One scored item, as lm-evaluation-harness logs a sample. */
export interface TaskSample {
  /** Its line in the task file. */
  line: number;
  /** Index of the right candidate. */
  gold: number;
  /** Each candidate's (context, continuation) text. */
  pairs: [string, string][];
  /** Each candidate's log-likelihood, in nats. */
  logprobs: number[];
  /** Whether greedy decoding gives each candidate's continuation (`final_word` tasks only). */
  greedy?: boolean[];
  /** 1 when right, else 0. */
  acc: number;
  /** 1 when right by `acc_norm`, else 0 (where the task reports it). */
  acc_norm?: number;
  /** MC2 candidates' (context, continuation) text (TruthfulQA). */
  mc2_pairs?: [string, string][];
  /** MC2 candidates' log-likelihoods. */
  mc2_logprobs?: number[];
  /** The item's MC2 score. */
  mc2?: number;
}

/** Options of {@linkcode encodePair}. */
export interface EncodeOptions {
  /**
   * The id the model's Hugging Face tokenizer puts before every text it encodes (BOS for
   * SentencePiece Llama tokenizers; see `hfBosToken` of `@inheritune/core`), or undefined.
   */
  bos?: number;
}

/**
 * The id lm-evaluation-harness conditions an empty context on, `HFLM.prefix_token_id`: the
 * tokenizer's BOS, else its end-of-sequence id (here the end-of-text id, GPT-2's BOS and EOS).
 */
function prefixToken(tokenizer: Tokenizer, bos: number | undefined): number | undefined {
  return bos ?? tokenizer.bosToken ?? tokenizer.eotToken ?? tokenizer.eosToken;
}

/**
 * Token ids of a (context, continuation) pair as lm-evaluation-harness's `TemplateLM` forms them
 * (`api/model.py` `_encode_pair` and `loglikelihood`), or null when it cannot:
 *
 * - whitespace at the end of the context (Python's `rstrip`) moves to the start of the
 *   continuation;
 * - the continuation's ids are those of `context + continuation` after the context's (the whole
 *   is encoded, then split), so a token spanning the boundary belongs to the continuation;
 * - each encoding starts with `options.bos` where the model's tokenizer adds one (`HFLM.tok_encode`
 *   with the tokenizer's default `add_special_tokens`), except for a text that already starts with
 *   that token's text (`has_bos_prefix`);
 * - an empty context becomes the prefix token ({@linkcode prefixToken}), and the continuation is
 *   encoded without BOS; when it starts with the prefix token itself, that token is the context.
 */
export function encodePair(
  tokenizer: Tokenizer,
  pair: Candidate,
  options: EncodeOptions = {},
): { context: number[]; continuation: number[] } | null {
  let { context, continuation } = pair;
  const trimmed = pyRstrip(context);
  continuation = context.slice(trimmed.length) + continuation;
  context = trimmed;
  const prefix = prefixToken(tokenizer, options.bos);
  if (context === "") {
    const ids = tokenizer.encode(continuation);
    if (prefix === undefined) return null;
    return ids[0] === prefix
      ? { context: ids.slice(0, 1), continuation: ids.slice(1) }
      : { context: [prefix], continuation: ids };
  }
  const bos = options.bos;
  const encode = (text: string): number[] =>
    bos === undefined || text.startsWith(tokenizer.token(bos))
      ? tokenizer.encode(text)
      : [bos, ...tokenizer.encode(text)];
  const ctx = encode(context);
  return { context: ctx, continuation: encode(context + continuation).slice(ctx.length) };
}

/** Options of {@linkcode prepareTask}. */
export interface PrepareOptions extends EncodeOptions {
  /** Most tokens of a request the model sees (its context). */
  T: number;
  /** The model's vocabulary size; a request with a larger id is skipped. */
  vocabSize?: number;
  /** Most items. */
  limit?: number;
}

/** Every candidate of `item`: its own, then its MC2 ones. */
function allCandidates(item: TaskItem): readonly Candidate[] {
  return item.mc2 ? [...item.candidates, ...item.mc2.candidates] : item.candidates;
}

/**
 * Tokenizes the first `limit` scorable items of `task` for a model of context `T` and vocabulary
 * `vocabSize`. An item is skipped (and listed) when a candidate has no context to condition on and
 * the tokenizer no end-of-text token, a continuation of 0 or more than T tokens (the harness
 * asserts there is none), or a token the model does not have. Longer requests are cut from the
 * left when scored ({@linkcode scoreRequests}).
 */
export function prepareTask(task: Task, tokenizer: Tokenizer, options: PrepareOptions): PreparedTask {
  const items: TaskItem[] = [];
  const requests: ScoreRequest[] = [];
  const skipped: LineProblem[] = [];
  const limit = options.limit ?? Infinity;
  const vocabSize = options.vocabSize ?? Infinity;
  for (const item of task.items) {
    if (items.length >= limit) break;
    const encoded = allCandidates(item).map((c) => encodePair(tokenizer, c, options));
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

/**
 * Mean of per-item values (0/1 outcomes or scores) and its standard error, the sample standard
 * deviation over √n as lm-evaluation-harness's `mean_stderr` (√(p(1−p)/(n−1)) for 0/1 outcomes).
 */
export function meanWithStderr(values: readonly (boolean | number)[]): { mean: number; stderr: number } {
  const xs = values.map(Number);
  const n = xs.length;
  const mean = xs.reduce((s, x) => s + x, 0) / n;
  const variance = xs.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1);
  return { mean, stderr: n > 1 ? Math.sqrt(variance / n) : NaN };
}

/** numpy's `argmax`: the first largest value, or the first NaN. */
function argmax(values: readonly number[]): number {
  let best = 0;
  for (let i = 0; i < values.length; i++) {
    if (Number.isNaN(values[i])) return i;
    if (values[i] > values[best]) best = i;
  }
  return best;
}

/**
 * TruthfulQA's MC2 score (`truthfulqa/utils.py` `process_results_mc2`): the probability mass of
 * the true answers after normalising exp(log-likelihood) over all answers. Computed from the
 * largest log-likelihood, which changes nothing except where the harness's exp underflows to 0
 * for every answer (log-likelihoods below −745) and it reports NaN.
 */
function mc2Score(logprobs: readonly number[], truths: readonly boolean[]): number {
  const top = Math.max(...logprobs);
  const p = logprobs.map((l) => Math.exp(l - top));
  const total = p.reduce((s, x) => s + x, 0);
  return p.reduce((s, x, i) => s + (truths[i] ? x : 0), 0) / total;
}

/** Options of {@linkcode scoreTask}. */
export interface ScoreTaskOptions {
  /** Told of every item's scores, once the task is scored. */
  onSamples?: (samples: readonly TaskSample[]) => void;
}

/**
 * Scores a prepared task with `model` and computes its metrics as lm-evaluation-harness's
 * `ConfigurableTask.process_results` does: `acc` from the argmax of the log-likelihoods (the
 * first on ties, as numpy), `acc_norm` from the argmax of log-likelihood over its choice's length
 * in characters ({@linkcode TaskItem.lengths}, not the continuation's bytes or tokens), reported
 * where the harness's task lists it.
 *
 * @throws {RangeError} when no item could be prepared.
 */
export async function scoreTask(
  model: LanguageModel,
  prepared: PreparedTask,
  options: ScoreTaskOptions = {},
): Promise<TaskResult> {
  const { task, items } = prepared;
  if (items.length === 0) throw new RangeError(`${task.name}: no item can be scored`);
  const finalWord = task.kind === "final_word";
  const scores = await scoreRequests(model, prepared.requests, { greedy: finalWord });
  const base = { name: task.name, kind: task.kind, items: items.length, skipped: prepared.skipped.length };
  const pairs = (cs: readonly Candidate[]): [string, string][] => cs.map((c) => [c.context, c.continuation]);
  const samples: TaskSample[] = [];
  let next = 0;
  for (const item of items) {
    const take = (n: number): number[] => scores.slice(next, next += n).map((s) => s.logprob);
    const greedy = scores.slice(next, next + item.candidates.length).map((s) => s.greedy);
    const logprobs = take(item.candidates.length);
    const lengths = item.lengths ?? item.candidates.map((c) => pyLen(c.continuation));
    const sample: TaskSample = {
      line: item.line,
      gold: item.gold,
      pairs: pairs(item.candidates),
      logprobs,
      acc: Number(finalWord ? greedy[0] : argmax(logprobs) === item.gold),
    };
    if (finalWord) sample.greedy = greedy;
    else if (HARNESS_TASKS[task.format].accNorm) {
      sample.acc_norm = Number(argmax(logprobs.map((l, k) => l / lengths[k])) === item.gold);
    }
    if (item.mc2) {
      sample.mc2_pairs = pairs(item.mc2.candidates);
      sample.mc2_logprobs = take(item.mc2.candidates.length);
      sample.mc2 = mc2Score(sample.mc2_logprobs, item.mc2.truths);
    }
    samples.push(sample);
  }
  options.onSamples?.(samples);
  const acc = meanWithStderr(samples.map((s) => s.acc));
  const result: TaskResult = { ...base, acc: acc.mean, acc_stderr: acc.stderr };
  if (finalWord) {
    // A final-word item has one candidate; lm-eval's `perplexity` aggregation is exp(−mean log p).
    result.perplexity = Math.exp(-samples.reduce((sum, s) => sum + s.logprobs[0], 0) / samples.length);
  }
  const metric = (key: "acc_norm" | "mc2"): void => {
    if (samples[0][key] === undefined) return;
    const m = meanWithStderr(samples.map((s) => s[key]!));
    result[key] = m.mean;
    result[`${key}_stderr`] = m.stderr;
  };
  metric("acc_norm");
  metric("mc2");
  return result;
}
