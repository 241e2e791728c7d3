/**
 * The training loop: AdamW with warm-up and cosine decay, gradient clipping and accumulation,
 * periodic validation, `metrics.jsonl`, periodic atomic checkpoints (`train_state.ts`) and exact
 * resume from any of them.
 *
 * Each micro-step is one submission (forward + backward, plus the optimizer on the last one); the
 * loss is copied to a staging buffer and read back only at log steps, asynchronously, so the GPU is
 * never stalled waiting for the CPU to print. Between steps the loop gives the event loop a turn
 * (every step that ends 200 ms or more after the last turn), so that a stop request or a signal
 * is seen within that time, however rarely steps are logged.
 *
 * @module
 */
import { type Gpu, Readback, Recorder, write } from "@inheritune/kernels";
import { join } from "node:path";
import { writeAll } from "@inheritune/data";
import type { ModelConfig } from "./config.ts";
import { type TokenReader, validationLoss } from "./evaluate.ts";
import { countParams, createModel } from "./model.ts";
import { AdamW, type AdamWOptions } from "./optimizer.ts";
import type { ParamMap } from "./params.ts";
import { learningRate } from "./schedule.ts";
import { writeAtomic, writeError } from "./_file_io.ts";
import {
  checkpointFolder,
  clearRunCheckpoints,
  loadTrainingState,
  METRICS_FILE,
  publishCheckpoint,
  saveRunCheckpoint,
} from "./train_state.ts";

/** A source of training batches (implemented by `@inheritune/data`'s sampler). */
export interface BatchSource {
  /** The next (B,T) inputs and targets. */
  next(): { inputs: Uint32Array; targets: Uint32Array; epoch: number };
  /** A JSON-serialisable exact position. */
  state(): unknown;
  /** Returns to a position from {@linkcode BatchSource.state}. */
  restore(state: never): void;
}

/** One line of `metrics.jsonl`. */
export interface StepMetrics {
  /** Optimizer steps completed. */
  step: number;
  /** Mean training loss of the step. */
  loss: number;
  /** Learning rate used. */
  lr: number;
  /** Training throughput since the previous log. */
  tokens_per_s: number;
  /** Tokens trained on so far. */
  tokens: number;
  /** Seconds of training so far, summed over the run's processes (a resume continues the count). */
  elapsed_s: number;
  /** Validation loss, when evaluated at this step. */
  val_loss?: number;
  /** Data epoch of the step's last batch. */
  epoch?: number;
}

/** Defaults of {@linkcode TrainOptions}: the one place these numbers are written. */
export const TRAINER_DEFAULTS = {
  /** Peak learning rate. */
  lr: 6e-4,
  /** Warm-up steps. */
  warmup: 0,
  /** Cosine floor as a fraction of lr. */
  minLrFraction: 0.1,
  /** Micro-batches per optimizer step. */
  accumulation: 1,
  /** Log every this many steps. */
  logEvery: 10,
  /** Evaluate every this many steps (0: only at the end). */
  evalEvery: 0,
  /** Seconds of training between checkpoints when no step interval is given. */
  saveSeconds: 600,
  /** Checkpoints kept. */
  keep: 3,
} as const;

/**
 * Milliseconds of training between turns of the event loop, in which a stop request or a signal is
 * seen: every step boundary where steps are longer. A turn is a timer wait of 1 to 3 ms (measured
 * on a loaded 2-core machine), so this bounds its cost to about 1% of the time.
 */
const YIELD_MS = 200;

/** Options of {@linkcode train}. */
export interface TrainOptions {
  /** The device. */
  gpu: Gpu;
  /** Architecture of the model to train. */
  config: ModelConfig;
  /** Initial parameters (fresh, inherited or loaded). */
  params: ParamMap;
  /** Tokenizer files saved with the model (see `Checkpoint.tokenizerFiles`). */
  tokenizerFiles?: Map<string, Uint8Array>;
  /** Training batches. */
  batches: BatchSource;
  /** Validation tokens; enables `val_loss`. */
  val?: TokenReader;
  /** Output folder: model, metrics.jsonl, training state. */
  out: string;
  /** Optimizer steps to run in total. */
  steps: number;
  /** Sequences per micro-batch. */
  B: number;
  /** Context length. */
  T: number;
  /** Micro-batches per optimizer step. */
  accumulation?: number;
  /** Peak learning rate. */
  lr?: number;
  /** Warm-up steps. */
  warmup?: number;
  /** Cosine floor as a fraction of lr. */
  minLrFraction?: number;
  /** AdamW settings. */
  adamw?: AdamWOptions;
  /** Log every this many steps; the last step is always logged. */
  logEvery?: number;
  /** Evaluate every this many steps (0: only at the end, when `val` is given). */
  evalEvery?: number;
  /** Validation targets scored per evaluation (all when omitted). */
  evalTokens?: number;
  /** Save a checkpoint every this many steps; 0: only at the end (default: every 10 minutes). */
  saveEvery?: number;
  /** Checkpoints to keep, newest first (3). */
  keep?: number;
  /**
   * A checkpoint folder of `out` to continue from (`latestRunCheckpoint`); `params` must be its
   * model's. Without it, a new run starts and removes any checkpoints `out` holds.
   */
  resume?: string;
  /** Called for each logged step (progress display, server). */
  onMetrics?: (m: StepMetrics) => void;
  /** Aborting stops at the next step boundary, saving a checkpoint. */
  signal?: AbortSignal;
  /** Extra fields for the state file (e.g. the command line, to resume with). */
  meta?: Record<string, unknown>;
}

/** What {@linkcode train} returns. */
export interface TrainResult {
  /** Steps completed (counting resumed ones). */
  step: number;
  /** Last logged training loss. */
  loss: number;
  /** Last validation loss, if evaluated. */
  valLoss?: number;
  /** Whether the run was stopped early through `signal`. */
  stopped: boolean;
  /** Trained parameters. */
  params: ParamMap;
  /** Every logged metrics record of this process. */
  history: StepMetrics[];
}

/** Staging buffers for asynchronous loss readback: at most two log steps are in flight. */
const READBACK_RING = 2;

/** Trains `options.params` and writes the model, metrics and checkpoints to `options.out`. */
export async function train(options: TrainOptions): Promise<TrainResult> {
  const { gpu, config, B, T, out } = options;
  const d = TRAINER_DEFAULTS;
  const accumulation = options.accumulation ?? d.accumulation;
  const schedule = {
    lr: options.lr ?? d.lr,
    warmup: options.warmup ?? d.warmup,
    steps: options.steps,
    minLrFraction: options.minLrFraction ?? d.minLrFraction,
  };
  const logEvery = options.logEvery ?? d.logEvery;
  const evalEvery = options.evalEvery ?? d.evalEvery;
  const keep = options.keep ?? d.keep;
  try {
    await Deno.mkdir(out, { recursive: true });
  } catch (e) {
    throw writeError(out, e);
  }
  const model = createModel(gpu, config, options.params, { B, T, training: true });
  const opt = new AdamW(model, options.adamw);
  const metricsPath = join(out, METRICS_FILE);
  let tokensSeen = 0;
  let elapsedBefore = 0;
  if (options.resume !== undefined) {
    const state = await loadTrainingState(options.resume);
    opt.restore(state.moments, state.step);
    options.batches.restore(state.batches as never);
    tokensSeen = state.tokens ?? 0;
    elapsedBefore = state.elapsed_s ?? 0;
    // The log continues from the checkpoint's copy: lines logged after it are trained again.
    const metrics = await Deno.readFile(join(options.resume, METRICS_FILE));
    await writeAtomic(metricsPath, (f) => writeAll(f, metrics));
  } else {
    await clearRunCheckpoints(out);
    await writeAtomic(metricsPath, () => Promise.resolve());
  }

  // micro-step program: forward + backward; the last one also steps the optimizer.
  const micro = new Recorder(gpu);
  model.recordForward(micro);
  model.recordBackward(micro, 1 / (B * T * accumulation));
  const zero = new Recorder(gpu);
  model.recordZeroGrads(zero);
  const update = new Recorder(gpu);
  opt.record(update);

  const ring = Array.from({ length: READBACK_RING }, () => new Readback(gpu, accumulation, "step losses"));
  const pending: Promise<StepMetrics>[] = [];
  const history: StepMetrics[] = [];
  const start = performance.now() - elapsedBefore * 1000;
  let lastLogTime = performance.now();
  let lastLogTokens = tokensSeen;
  let lastYield = lastLogTime;
  let lastSave = lastLogTime;
  let ringNext = 0;
  let epoch = 0;
  let valLoss: number | undefined;
  const startStep = opt.step;
  let savedStep = options.resume !== undefined ? startStep : -1;

  const flush = async (keep: number): Promise<void> => {
    while (pending.length > keep) {
      const m = await pending.shift()!;
      history.push(m);
      try {
        await Deno.writeTextFile(metricsPath, JSON.stringify(m) + "\n", { append: true });
      } catch (e) {
        throw writeError(metricsPath, e);
      }
      options.onMetrics?.(m);
    }
  };
  const saveDue = (step: number): boolean =>
    options.saveEvery === undefined
      ? performance.now() - lastSave >= d.saveSeconds * 1000
      : options.saveEvery > 0 && step % options.saveEvery === 0;
  /** Saves a checkpoint of the current step; returns its folder and the parameters. */
  const save = async (): Promise<{ dir: string; params: ParamMap }> => {
    await flush(0);
    const params = await model.downloadParams();
    const dir = await saveRunCheckpoint(out, {
      model: { config, params, tokenizerFiles: options.tokenizerFiles },
      state: {
        step: opt.step,
        moments: await opt.download(),
        batches: options.batches.state(),
        tokens: tokensSeen,
        elapsed_s: (performance.now() - start) / 1000,
        meta: { ...options.meta, params: countParams(config), steps_this_run: opt.step - startStep },
      },
      metrics: await Deno.readFile(metricsPath),
    }, { keep });
    savedStep = opt.step;
    lastSave = performance.now();
    return { dir, params };
  };

  while (opt.step < options.steps && !options.signal?.aborted) {
    const lr = learningRate(opt.step, schedule);
    const next = opt.step + 1;
    const evalNow = options.val !== undefined &&
      ((evalEvery > 0 && next % evalEvery === 0) ||
        next === options.steps);
    const logging = next % logEvery === 0 || next === options.steps || evalNow;
    const slot = ringNext;
    if (logging) ringNext = (ringNext + 1) % READBACK_RING;
    for (let i = 0; i < accumulation; i++) {
      const batch = options.batches.next();
      epoch = batch.epoch;
      write(gpu, model.tokens, batch.inputs);
      write(gpu, model.targets, batch.targets);
      const enc = gpu.device.createCommandEncoder();
      if (i === 0) zero.encode(enc);
      micro.encode(enc);
      if (logging) ring[slot].copy(enc, model.loss, i);
      if (i === accumulation - 1) {
        opt.prepare(lr);
        update.encode(enc);
      }
      gpu.device.queue.submit([enc.finish()]);
      tokensSeen += B * T;
    }
    const step = opt.step;
    let evaluated: number | undefined;
    if (evalNow) {
      // The training model's own buffers serve: the next step recomputes every activation.
      valLoss = (await validationLoss(model, options.val!, { maxTokens: options.evalTokens })).loss;
      evaluated = valLoss;
    }
    if (logging) {
      // Throughput between submissions of logged steps: the CPU is held at most one log interval
      // ahead of the GPU (below), so in steady state this is the GPU's rate. Readbacks resolve in
      // bursts, so timing their resolution would not be.
      const now = performance.now();
      const m: StepMetrics = {
        step,
        loss: NaN,
        lr,
        tokens_per_s: ((tokensSeen - lastLogTokens) * 1000) / Math.max(1e-9, now - lastLogTime),
        tokens: tokensSeen,
        elapsed_s: (now - start) / 1000,
        epoch,
      };
      if (evaluated !== undefined) m.val_loss = evaluated;
      lastLogTime = now;
      lastLogTokens = tokensSeen;
      pending.push(
        ring[slot].mapRead(accumulation, (bytes) => {
          m.loss = new Float32Array(bytes, 0, accumulation).reduce((a, b) => a + b, 0) / accumulation;
          return m;
        }),
      );
      // Wait for the previous log's loss, not this one's: the GPU keeps this step's work queued,
      // and the CPU stays at most one log interval ahead of it.
      await flush(1);
    }
    if (step < options.steps && saveDue(step)) await save();
    if (performance.now() - lastYield >= YIELD_MS) {
      await new Promise((resolve) => setTimeout(resolve, 0));
      lastYield = performance.now();
    }
  }
  await flush(0);
  const final = savedStep === opt.step
    ? { dir: checkpointFolder(out, opt.step), params: await model.downloadParams() }
    : await save();
  // state.json beside the model marks the run's process as ended (the read-only server's cue).
  await publishCheckpoint(out, final.dir, { state: true });
  for (const b of ring) b.destroy();
  micro.destroy();
  zero.destroy();
  update.destroy();
  model.destroy();
  return {
    step: opt.step,
    loss: history.at(-1)?.loss ?? NaN,
    valLoss,
    stopped: opt.step < options.steps,
    params: final.params,
    history,
  };
}
