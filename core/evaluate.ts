/**
 * Validation loss: mean next-token cross-entropy over the windows `[s, s+T]` for
 * s = 0, T, 2T, ... (inputs `s..s+T-1`, targets `s+1..s+T`), dropping a last incomplete window.
 *
 * @module
 */
import { IGNORE_INDEX, Readback, Recorder, write } from "@inheritune/kernels";
import type { LanguageModel } from "./family.ts";

/** Random access to a split's tokens (implemented by `@inheritune/data`). */
export interface TokenReader {
  /** Number of tokens. */
  readonly length: number;
  /** Tokens `start .. start+count-1`. */
  read(start: number, count: number): Uint32Array;
}

/** Result of {@linkcode validationLoss}. */
export interface LossResult {
  /** Mean cross-entropy in nats per token. */
  loss: number;
  /** exp(loss). */
  perplexity: number;
  /** Target tokens scored. */
  tokens: number;
  /** Sum of the per-token losses (nats). */
  sum: number;
}

/** Batches whose per-position losses are copied out before one readback. */
const BATCHES_PER_READ = 64;

/**
 * Evaluates `model` (context `model.T`, `model.B` windows per batch) on `data`, scoring at most
 * `maxTokens` targets (all complete windows when omitted). One readback per 64 batches.
 */
export async function validationLoss(
  model: LanguageModel,
  data: TokenReader,
  options: { maxTokens?: number } = {},
): Promise<LossResult> {
  const { B, T, gpu } = model;
  let windows = Math.max(0, Math.floor((data.length - 1) / T));
  if (options.maxTokens !== undefined) windows = Math.min(windows, Math.floor(options.maxTokens / T));
  if (windows === 0) {
    throw new RangeError(`evaluation needs at least ${T + 1} tokens, the data has ${data.length}`);
  }
  const rec = new Recorder(gpu);
  model.recordForward(rec);
  const batches = Math.ceil(windows / B);
  const BT = B * T;
  const staging = new Readback(gpu, BT * Math.min(batches, BATCHES_PER_READ), "validation losses");
  const tokens = new Uint32Array(BT);
  const targets = new Uint32Array(BT);
  let sum = 0;
  let count = 0;
  for (let first = 0; first < batches; first += BATCHES_PER_READ) {
    const n = Math.min(BATCHES_PER_READ, batches - first);
    for (let i = 0; i < n; i++) {
      for (let b = 0; b < B; b++) {
        const w = (first + i) * B + b;
        if (w < windows) {
          const win = data.read(w * T, T + 1);
          tokens.set(win.subarray(0, T), b * T);
          targets.set(win.subarray(1), b * T);
        } else {
          tokens.fill(0, b * T, (b + 1) * T);
          targets.fill(IGNORE_INDEX, b * T, (b + 1) * T);
        }
      }
      write(gpu, model.tokens, tokens);
      write(gpu, model.targets, targets);
      const enc = gpu.device.createCommandEncoder();
      rec.encode(enc);
      staging.copy(enc, model.losses, i * BT);
      gpu.device.queue.submit([enc.finish()]);
    }
    const rows = Math.min(n * B, windows - first * B);
    await staging.mapRead(n * BT, (bytes) => {
      const losses = new Float32Array(bytes);
      for (let i = 0; i < rows * T; i++) sum += losses[i];
    });
    count += rows * T;
  }
  staging.destroy();
  rec.destroy();
  const loss = sum / count;
  return { loss, perplexity: Math.exp(loss), tokens: count, sum };
}
