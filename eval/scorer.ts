/**
 * Log-likelihood of continuations, batched on the GPU: each request (context tokens, continuation
 * tokens) is one row of a (B,T) batch whose targets are the continuation's tokens at the positions
 * that predict them and `IGNORE_INDEX` elsewhere, so one forward pass scores B requests and the
 * model's per-position losses are −log p of exactly those tokens.
 *
 * @module
 */
import { createView, IGNORE_INDEX, Readback, Recorder, targetRank, write } from "@inheritune/kernels";
import type { LanguageModel } from "@inheritune/core";

/** Tokens to score: log p(`continuation` | `context`). */
export interface ScoreRequest {
  /** Conditioning tokens (at least one); truncated from the left to fit the model's T. */
  readonly context: ArrayLike<number>;
  /** Scored tokens, 1..T of them. */
  readonly continuation: ArrayLike<number>;
}

/** The score of one request. */
export interface Score {
  /** Σ log p(continuation token | everything before it), in nats. */
  logprob: number;
  /** Whether every continuation token is the argmax of its position (only with `greedy`). */
  greedy: boolean;
}

/** Options of {@linkcode scoreRequests}. */
export interface ScoreOptions {
  /** Also compute {@linkcode Score.greedy} (one extra kernel per batch). */
  greedy?: boolean;
}

/** Batches whose results are copied out before one readback. */
const BATCHES_PER_READ = 32;

/**
 * Fills row `b` of `tokens`/`targets` (each (B,T)) with one request: the last T+1 tokens of
 * context + continuation, inputs shifted by one from targets, targets ignored outside the
 * continuation and after the sequence ends. This is lm-evaluation-harness's truncation for a
 * causal model (`HFLM._loglikelihood_tokens`): the input is `(context_enc +
 * continuation_enc)[-(max_length + 1):][:-1]`, cut from the left, with `max_length` the model's
 * context (`n_positions` / `max_position_embeddings` of its config) as T is here by default.
 */
export function packRequest(
  request: ScoreRequest,
  rows: { tokens: Uint32Array; targets: Uint32Array; b: number; T: number },
): void {
  const { tokens, targets, b, T } = rows;
  const n = request.context.length + request.continuation.length;
  const m = request.continuation.length;
  if (request.context.length === 0 || m === 0 || m > T) {
    throw new RangeError(
      `a request needs ≥ 1 context token and 1..${T} continuation tokens, got ${request.context.length} and ${m}`,
    );
  }
  const seq = new Uint32Array(n);
  seq.set(Array.from(request.context));
  seq.set(Array.from(request.continuation), request.context.length);
  const kept = seq.subarray(Math.max(0, n - (T + 1)));
  const len = kept.length - 1;
  const row = b * T;
  tokens.fill(0, row, row + T);
  targets.fill(IGNORE_INDEX, row, row + T);
  tokens.set(kept.subarray(0, len), row);
  targets.set(kept.subarray(len - m + 1), row + len - m);
}

/**
 * Scores every request with `model` (B rows per forward pass, context `model.T`): the sum of the
 * log-probabilities of the continuation tokens, and optionally whether greedy decoding would
 * produce them. One GPU readback per 32 batches.
 *
 * @throws {RangeError} for a request without context or with more than T continuation tokens.
 */
export async function scoreRequests(
  model: LanguageModel,
  requests: readonly ScoreRequest[],
  options: ScoreOptions = {},
): Promise<Score[]> {
  const { B, T, gpu, config } = model;
  const BT = B * T;
  const rec = new Recorder(gpu);
  model.recordForward(rec);
  const ranks = options.greedy ? createView(gpu, BT, "ranks") : undefined;
  if (ranks) {
    targetRank(rec, {
      out: ranks,
      inp: model.hidden,
      wte: model.head,
      targets: model.targets,
      BT,
      C: config.n_embd,
      V: config.vocab_size,
    });
  }
  const batches = Math.ceil(requests.length / B);
  const outputs = ranks ? 2 : 1;
  const perBatch = BT * outputs;
  const staging = new Readback(gpu, perBatch * Math.min(batches, BATCHES_PER_READ), "scores");
  const tokens = new Uint32Array(BT);
  const targets = new Uint32Array(BT);
  const scores: Score[] = [];
  try {
    for (let first = 0; first < batches; first += BATCHES_PER_READ) {
      const n = Math.min(BATCHES_PER_READ, batches - first);
      const packed: Uint32Array[] = [];
      for (let i = 0; i < n; i++) {
        for (let b = 0; b < B; b++) {
          const r = requests[(first + i) * B + b];
          if (r) {
            packRequest(r, { tokens, targets, b, T });
          } else {
            tokens.fill(0, b * T, (b + 1) * T);
            targets.fill(IGNORE_INDEX, b * T, (b + 1) * T);
          }
        }
        packed.push(targets.slice());
        write(gpu, model.tokens, tokens);
        write(gpu, model.targets, targets);
        const enc = gpu.device.createCommandEncoder();
        rec.encode(enc);
        staging.copy(enc, model.losses, i * perBatch);
        if (ranks) staging.copy(enc, ranks, i * perBatch + BT);
        gpu.device.queue.submit([enc.finish()]);
      }
      await staging.mapRead(n * perBatch, (bytes) => {
        const out = new Float32Array(bytes);
        for (let i = 0; i < n; i++) {
          const losses = out.subarray(i * perBatch, i * perBatch + BT);
          const rank = ranks ? out.subarray(i * perBatch + BT, (i + 1) * perBatch) : undefined;
          for (let b = 0; b < B && (first + i) * B + b < requests.length; b++) {
            let logprob = 0;
            let greedy = rank !== undefined;
            for (let t = b * T; t < (b + 1) * T; t++) {
              if (packed[i][t] === IGNORE_INDEX) continue;
              logprob -= losses[t];
              if (rank && rank[t] !== 0) greedy = false;
            }
            scores.push({ logprob, greedy });
          }
        }
      });
    }
  } finally {
    staging.destroy();
    ranks?.buffer.destroy();
    rec.destroy();
  }
  return scores;
}
