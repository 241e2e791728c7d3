/**
 * A run in this process: the trainer pushes each logged step through {@linkcode LiveRun.record}
 * (pass it as `onMetrics`), and `POST /api/stop` aborts {@linkcode LiveRun.signal}, which the
 * trainer reads between steps before saving its checkpoint. `serveLiveRun` (`serve.ts`) keeps
 * one on a thread of its own.
 *
 * @module
 */
import { type Metrics, RunSource, type RunState, type RunStatus, type StopOutcome } from "./run.ts";

/** Options of {@linkcode LiveRun}. */
export interface LiveRunOptions {
  /** Run name shown on the dashboard. */
  name: string;
  /** Model configuration. */
  config?: Record<string, unknown>;
  /** The GPU adapter's description. */
  device?: string;
  /** Steps the run will train for. */
  totalSteps?: number;
  /** Steps logged before this process (a resumed run's `metrics.jsonl`), ascending. */
  history?: readonly Metrics[];
}

/** A run being trained in this process. */
export class LiveRun extends RunSource {
  /** Run name shown on the dashboard. */
  readonly name: string;
  readonly #options: LiveRunOptions;
  readonly #controller = new AbortController();
  #state: RunState = "running";
  #error: string | null = null;

  /** Starts a run in the `running` state. */
  constructor(options: LiveRunOptions) {
    super();
    this.name = options.name;
    this.#options = options;
    for (const m of options.history ?? []) this.push(m);
  }

  /** Aborted when a stop is requested; pass it to the trainer as `signal`. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Records one logged step and tells subscribers; cheap enough to call from the training loop. */
  readonly record = (m: Metrics): void => {
    this.push({ ...m });
  };

  /** Marks the run finished (completed or stopped) and tells subscribers. */
  finish(): void {
    this.#settle("finished", null);
  }

  /** Marks the run failed with `error`'s first line and tells subscribers. */
  fail(error: unknown): void {
    this.#settle("failed", (error instanceof Error ? error.message : String(error)).split("\n")[0]);
  }

  /** Requests a stop: the trainer finishes its current step, saves and returns. */
  override stop(): StopOutcome {
    if (this.#state !== "running") return "not-running";
    if (!this.#controller.signal.aborted) {
      this.#controller.abort();
      this.emit({ type: "status", status: this.describe() });
    }
    return "stopping";
  }

  /** The run as the dashboard shows it: the live trainer's state and its metrics so far. */
  protected override describe(): RunStatus {
    const total = this.#options.totalSteps ?? null;
    const summary = this.summary(total);
    return {
      name: this.name,
      config: this.#options.config ?? null,
      device: this.#options.device ?? null,
      state: this.#state,
      total_steps: total,
      ...summary,
      eta_s: this.#state === "running" ? summary.eta_s : null,
      can_stop: this.#state === "running",
      stop_requested: this.#controller.signal.aborted,
      error: this.#error,
    };
  }

  #settle(state: RunState, error: string | null): void {
    if (this.#state !== "running") return;
    this.#state = state;
    this.#error = error;
    this.emit({ type: "status", status: this.describe() });
  }
}
