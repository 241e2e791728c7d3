/**
 * Text generation, one token at a time: greedy at temperature 0, else sampling from the
 * temperature-scaled softmax, optionally restricted to the top k logits, with a seeded generator.
 *
 * There is no KV cache: each new token reruns the forward pass over the whole sequence (at most
 * the model's context; a longer one keeps its last `n_positions` tokens), which the causal mask
 * makes equal to incremental decoding. Only the last position's logits are computed and read back,
 * one row of the LM head chunk by chunk, since a whole (T,V) logit matrix of a large vocabulary
 * outgrows a binding.
 *
 * @module
 */
import {
  createView,
  type Gpu,
  GpuError,
  matmul,
  read,
  Recorder,
  rowChunks,
  rowView,
  softcapForward,
  write,
} from "@inheritune/kernels";
import { DataError, Rng, type Tokenizer } from "@inheritune/data";
import { isDecoder } from "./config.ts";
import type { Checkpoint } from "./family.ts";
import { createModel } from "./model.ts";

/** Options of {@linkcode generate}. */
export interface GenerateOptions {
  /** The sequence to continue (at least one token: a BOS for an empty prompt). */
  prompt: readonly number[];
  /** Most tokens to add. */
  maxNewTokens: number;
  /** Softmax temperature; 0 picks the most likely token (default 0). */
  temperature?: number;
  /** Sample among the k most likely tokens only (default: all). */
  topK?: number;
  /** Seed of the sampling (default 0). */
  seed?: number;
  /** Stop after this token (not included in the count of new tokens it ends). */
  eos?: number;
  /** Called with each new token as soon as it is chosen. */
  onToken?: (id: number) => void;
}

/**
 * The ids of a prompt: BOS first when the tokenizer has one (SentencePiece and Llama models are
 * trained with it), and GPT-2's end-of-text alone for an empty prompt.
 *
 * @throws {DataError} for an empty prompt with a tokenizer that has neither.
 */
export function promptTokens(tokenizer: Tokenizer, text: string): number[] {
  const ids = tokenizer.encode(text);
  if (tokenizer.bosToken !== undefined) return [tokenizer.bosToken, ...ids];
  if (ids.length > 0) return ids;
  if (tokenizer.eotToken !== undefined) return [tokenizer.eotToken];
  throw new DataError(`the ${tokenizer.name} tokenizer has no BOS token: give a prompt`);
}

/**
 * Picks the next token from `logits`: the first largest at temperature 0, else a sample from
 * softmax(logits / temperature) over the `topK` largest.
 */
export function sampleToken(
  logits: Float32Array,
  options: { temperature: number; topK?: number; rng: Rng },
): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  if (options.temperature === 0) return best;
  let ids = Array.from(logits.keys());
  if (options.topK !== undefined && options.topK < ids.length) {
    ids = ids.sort((a, b) => logits[b] - logits[a] || a - b).slice(0, options.topK);
  }
  const weights = ids.map((i) => Math.exp((logits[i] - logits[best]) / options.temperature));
  let u = options.rng.uniform() * weights.reduce((a, b) => a + b, 0);
  for (let j = 0; j < ids.length; j++) {
    u -= weights[j];
    if (u < 0) return ids[j];
  }
  return ids[ids.length - 1];
}

/**
 * Continues `options.prompt` with `model` on `gpu`; returns the new tokens (the EOS that stopped
 * it included).
 *
 * @throws {GpuError} for an empty prompt or a token outside the vocabulary.
 */
export async function generate(gpu: Gpu, model: Checkpoint, options: GenerateOptions): Promise<number[]> {
  const { config } = model;
  const V = config.vocab_size, C = config.n_embd;
  if (options.prompt.length === 0) throw new GpuError("generation needs at least one prompt token");
  const bad = options.prompt.find((t) => !(Number.isInteger(t) && t >= 0 && t < V));
  if (bad !== undefined) throw new GpuError(`prompt token ${bad} is outside the vocabulary of ${V}`);
  const temperature = options.temperature ?? 0;
  const T = Math.min(config.n_positions, options.prompt.length + options.maxNewTokens);
  const net = createModel(gpu, config, model.params, { B: 1, T });
  const row = createView(gpu, C, "generate hidden row");
  const logits = createView(gpu, V, "generate logits");
  const chunks = rowChunks(gpu, net.head, { rows: V, cols: C });
  const chunkOut = createView(gpu, Math.max(...chunks.map((c) => c.rows)), "generate logits chunk");
  const seq = [...options.prompt];
  const added: number[] = [];
  const rng = new Rng(options.seed ?? 0);
  const tokens = new Uint32Array(T);
  try {
    // The recorded program reads the hidden row of the last position from `row`, filled per step.
    const forward = new Recorder(gpu);
    net.recordHidden(forward);
    const head = new Recorder(gpu);
    for (const chunk of chunks) {
      matmul(head, {
        out: chunkOut,
        a: row,
        b: rowView(net.head, C, chunk),
        M: 1,
        N: chunk.rows,
        K: C,
        transB: true,
      });
      head.copy(chunkOut, logits, { from: 0, to: chunk.row0, length: chunk.rows });
    }
    // Soft-capping keeps the argmax but changes what temperature samples from.
    const cap = isDecoder(config) ? config.final_logit_softcapping : undefined;
    if (cap !== undefined) softcapForward(head, { logits, n: V, cap });
    while (added.length < options.maxNewTokens) {
      const context = seq.slice(-T);
      tokens.fill(0).set(context);
      write(gpu, net.tokens, tokens);
      const enc = gpu.device.createCommandEncoder();
      forward.encode(enc);
      const last = context.length - 1;
      enc.copyBufferToBuffer(net.hidden.buffer, (net.hidden.offset + last * C) * 4, row.buffer, 0, C * 4);
      head.encode(enc);
      gpu.device.queue.submit([enc.finish()]);
      const next = sampleToken(await read(gpu, logits), { temperature, topK: options.topK, rng });
      seq.push(next);
      added.push(next);
      options.onToken?.(next);
      if (next === options.eos) break;
    }
    forward.destroy();
    head.destroy();
  } finally {
    for (const v of [row, logits, chunkOut]) v.buffer.destroy();
    net.destroy();
  }
  return added;
}
