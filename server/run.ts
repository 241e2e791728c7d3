/**
 * What the progress server shows of a training run: its metrics history, a status summary and a
 * stream of events. {@linkcode RunSource} is the one interface the HTTP app reads; `LiveRun` (fed by
 * the trainer) and `FileRun` (following a run folder's files) implement it.
 *
 * A logged step is the trainer's `StepMetrics`, imported as a type only: nothing of the trainer
 * runs here.
 *
 * @module
 */
import type { StepMetrics } from "@inheritune/core";

/** One logged training step: one line of `metrics.jsonl`, as the trainer reports it. */
export type Metrics = StepMetrics;

/** Where a run is: training, done (completed or stopped), or ended by an error. */
export type RunState = "running" | "finished" | "failed";

/** The body of `GET /api/status`. */
export interface RunStatus {
  /** Run name (its output folder's name). */
  name: string;
  /** Model configuration (`config.json`), when known. */
  config: Record<string, unknown> | null;
  /** The GPU adapter's description, when known (live runs only). */
  device: string | null;
  /** Training, done, or failed. */
  state: RunState;
  /** Last logged step (0 before the first). */
  step: number;
  /** Steps the run was started for, when known. */
  total_steps: number | null;
  /** Tokens trained on at the last logged step. */
  tokens: number;
  /** Latest training loss. */
  loss: number | null;
  /** Latest validation loss, and the step it was measured at. */
  val_loss: number | null;
  /** Step of {@linkcode RunStatus.val_loss}. */
  val_step: number | null;
  /** Throughput over the last few logged steps of this process. */
  tokens_per_s: number | null;
  /** Estimated seconds to `total_steps`, while running. */
  eta_s: number | null;
  /** Seconds since the training process started, at the last logged step. */
  elapsed_s: number | null;
  /** Whether `POST /api/stop` can stop this run (live runs). */
  can_stop: boolean;
  /** Whether a stop was requested and the run is saving its checkpoint. */
  stop_requested: boolean;
  /** One line saying why the run failed. */
  error: string | null;
}

/**
 * What subscribers hear: a logged step (with the status after it), a status change, the history
 * starting over (a run folder overwritten by a new run), or the end of the stream.
 */
export type RunEvent =
  | { type: "metrics"; metrics: Metrics; status: RunStatus }
  | { type: "status"; status: RunStatus }
  | { type: "reset" }
  | { type: "end" };

/** Outcome of {@linkcode RunSource.stop}. */
export type StopOutcome = "stopping" | "not-running" | "read-only";

/** Logged steps over which throughput and ETA are averaged: per-step readings are noisy. */
const RATE_WINDOW = 20;

/**
 * A run as the server sees it. Subclasses add logged steps in order through `push` (which tells
 * subscribers) and `emit` a status event when their state changes.
 */
export abstract class RunSource {
  /** Run name shown on the dashboard. */
  abstract readonly name: string;
  #history: Metrics[] = [];
  /** The latest step with a validation loss: kept, not searched for, as evaluations may be rare. */
  #latestVal: Metrics | null = null;
  #listeners = new Set<(event: RunEvent) => void>();

  /** Brings the history up to date (a no-op for live runs, which are pushed to). */
  refresh(): Promise<void> {
    return Promise.resolve();
  }

  /** The current status. */
  async status(): Promise<RunStatus> {
    await this.refresh();
    return this.describe();
  }

  /** Logged steps after step `since`, ascending. */
  async metrics(since = 0): Promise<Metrics[]> {
    await this.refresh();
    const history = this.#history;
    let lo = 0;
    let hi = history.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (history[mid].step <= since) lo = mid + 1;
      else hi = mid;
    }
    return history.slice(lo);
  }

  /** Calls `listener` for every event until the returned function is called. */
  subscribe(listener: (event: RunEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Number of current subscribers (open event streams). */
  get subscribers(): number {
    return this.#listeners.size;
  }

  /** Asks the run to save a checkpoint and stop. Read-only sources refuse. */
  stop(): StopOutcome {
    return "read-only";
  }

  /** Ends every event stream and releases timers; the source serves no events afterwards. */
  close(): void {
    this.emit({ type: "end" });
    this.#listeners.clear();
  }

  /** The status from the current history (no refresh). */
  protected abstract describe(): RunStatus;

  /** Sends `event` to every subscriber; a listener that throws is dropped, never the caller. */
  protected emit(event: RunEvent): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(event);
      } catch {
        this.#listeners.delete(listener);
      }
    }
  }

  /** Logged steps, ascending. */
  protected get history(): readonly Metrics[] {
    return this.#history;
  }

  /** Appends `m` (a step after the last) and tells subscribers, building the status only if anyone listens. */
  protected push(m: Metrics): void {
    this.#history.push(m);
    if (m.val_loss !== undefined) this.#latestVal = m;
    if (this.#listeners.size > 0) this.emit({ type: "metrics", metrics: m, status: this.describe() });
  }

  /** Forgets the history (a rewritten run folder). */
  protected clearHistory(): void {
    this.#history = [];
    this.#latestVal = null;
  }

  /** {@linkcode summarize} of the history, without searching it. */
  protected summary(totalSteps: number | null): Summary {
    return summarize(this.#history, { totalSteps, latestVal: this.#latestVal });
  }
}

/** The status fields that follow from the history alone. */
export type Summary = Pick<
  RunStatus,
  "step" | "tokens" | "loss" | "val_loss" | "val_step" | "tokens_per_s" | "eta_s" | "elapsed_s"
>;

/** Options of {@linkcode summarize}. */
export interface SummarizeOptions {
  /** Steps the run trains to, for the ETA; `null` when unknown. */
  totalSteps: number | null;
  /** The latest step with a validation loss, `null` for none (default: searched for in the history). */
  latestVal?: Metrics | null;
}

/**
 * Summarizes `history` (ascending by step): the latest step and losses, throughput over the last
 * few logged steps of the current process, and the time left to `totalSteps` at that rate.
 */
export function summarize(history: readonly Metrics[], options: SummarizeOptions): Summary {
  const { totalSteps } = options;
  const last = history.at(-1);
  if (last === undefined) {
    return {
      step: 0,
      tokens: 0,
      loss: null,
      val_loss: null,
      val_step: null,
      tokens_per_s: null,
      eta_s: null,
      elapsed_s: null,
    };
  }
  const val = options.latestVal !== undefined
    ? options.latestVal
    : history.findLast((m) => m.val_loss !== undefined) ?? null;
  // the window stops where elapsed_s went backwards: runs resumed before it was kept restarted at 0
  let first = history.length - 1;
  while (
    first > 0 && history.length - first <= RATE_WINDOW &&
    history[first - 1].elapsed_s <= history[first].elapsed_s
  ) first--;
  const from = history[first];
  const seconds = last.elapsed_s - from.elapsed_s;
  let tokensPerS: number | null = null;
  let eta: number | null = null;
  if (first < history.length - 1 && seconds > 0) {
    tokensPerS = (last.tokens - from.tokens) / seconds;
    if (totalSteps !== null) eta = (Math.max(0, totalSteps - last.step) * seconds) / (last.step - from.step);
  } else {
    tokensPerS = last.tokens_per_s;
  }
  return {
    step: last.step,
    tokens: last.tokens,
    loss: last.loss,
    val_loss: val?.val_loss ?? null,
    val_step: val?.step ?? null,
    tokens_per_s: tokensPerS,
    eta_s: eta,
    elapsed_s: last.elapsed_s,
  };
}
