/**
 * Tokenization spread over Deno module workers for `prepare`. A job is a list of text pieces,
 * each encoded on its own (`encodePieces`), so a job's ids do not depend on which thread encoded
 * it or on what else it ran; `prepare` merges results in submission order, which makes the
 * output byte-identical for every worker count. Each worker rebuilds the tokenizer from its
 * definition (or built-in name) and checks the definition hash against the original.
 *
 * @module
 */
import type { Tokenizer } from "./tokenizer_types.ts";

/** Text pieces to encode, each with whether it continues a document after a letter or digit. */
export interface EncodeJob {
  /** The pieces, in order. */
  readonly pieces: readonly string[];
  /** Per piece: encode with `continuing: true`. */
  readonly continuing: readonly boolean[];
}

/** The ids of a job's pieces, concatenated; piece `i` is `ids[ends[i-1] .. ends[i])`. */
export interface EncodedJob {
  /** Every piece's ids, in order. */
  readonly ids: Uint32Array<ArrayBuffer>;
  /** End offset of each piece's ids. */
  readonly ends: Uint32Array<ArrayBuffer>;
}

/** How a worker rebuilds the tokenizer: a built-in name, or its definition file. */
export type TokenizerRecipe =
  | { readonly builtin: string; readonly hash: string }
  | { readonly file: string; readonly bytes: Uint8Array; readonly hash: string };

/** Encodes every piece of `job` with `tokenizer`. */
export function encodePieces(tokenizer: Tokenizer, job: EncodeJob): EncodedJob {
  const parts: number[][] = [];
  let total = 0;
  for (let i = 0; i < job.pieces.length; i++) {
    const ids = tokenizer.encode(job.pieces[i], { continuing: job.continuing[i] });
    parts.push(ids);
    total += ids.length;
  }
  const ids = new Uint32Array(total);
  const ends = new Uint32Array(parts.length);
  let at = 0;
  parts.forEach((p, i) => {
    ids.set(p, at);
    at += p.length;
    ends[i] = at;
  });
  return { ids, ends };
}

/** The recipe a worker can rebuild `tokenizer` from, or null when it has none (a custom object). */
export function tokenizerRecipe(tokenizer: Tokenizer): TokenizerRecipe | null {
  const definition = tokenizer.definition?.();
  if (definition) return { file: definition.file, bytes: definition.bytes, hash: tokenizer.hash };
  if (tokenizer.kind === "gpt2" || tokenizer.kind === "bytes") {
    return { builtin: tokenizer.kind, hash: tokenizer.hash };
  }
  return null;
}

/** Messages from a worker. */
export type WorkerReply =
  | { readonly type: "ready" }
  | {
    readonly type: "done";
    readonly id: number;
    readonly ids: Uint32Array<ArrayBuffer>;
    readonly ends: Uint32Array<ArrayBuffer>;
  }
  | { readonly type: "error"; readonly message: string };

interface Waiting {
  readonly id: number;
  readonly job: EncodeJob;
  readonly resolve: (r: EncodedJob) => void;
  readonly reject: (e: Error) => void;
}

/** Encodes jobs in the calling thread (no workers) or on module workers, one job per idle worker. */
export class EncodePool {
  readonly #tokenizer: Tokenizer;
  readonly #workers: Worker[];
  readonly #idle: Worker[];
  readonly #queue: Waiting[] = [];
  readonly #running = new Map<Worker, Waiting>();
  #nextId = 0;
  #failure: Error | null = null;

  private constructor(tokenizer: Tokenizer, workers: Worker[]) {
    this.#tokenizer = tokenizer;
    this.#workers = workers;
    this.#idle = [...workers];
  }

  /**
   * A pool of `threads` workers, each with its own copy of `tokenizer`; with `threads` 1, or a
   * tokenizer no worker can rebuild, jobs are encoded in the calling thread.
   */
  static async open(tokenizer: Tokenizer, threads: number): Promise<EncodePool> {
    const recipe = threads > 1 ? tokenizerRecipe(tokenizer) : null;
    if (!recipe) return new EncodePool(tokenizer, []);
    const url = new URL("./_encode_worker.ts", import.meta.url).href;
    const workers = Array.from({ length: threads }, () => new Worker(url, { type: "module" }));
    try {
      await Promise.all(workers.map((w) =>
        new Promise<void>((resolve, reject) => {
          w.onmessage = (e: MessageEvent<WorkerReply>): void => {
            if (e.data.type === "ready") resolve();
            else reject(new Error(e.data.type === "error" ? e.data.message : "unexpected reply"));
          };
          w.onerror = (e): void => {
            e.preventDefault();
            reject(new Error(`tokenizer worker failed to start: ${e.message}`));
          };
          w.postMessage(recipe);
        })
      ));
    } catch (e) {
      for (const w of workers) w.terminate();
      throw e;
    }
    const pool = new EncodePool(tokenizer, workers);
    for (const w of workers) {
      w.onmessage = (e: MessageEvent<WorkerReply>): void => pool.#reply(w, e.data);
      w.onerror = (e): void => {
        e.preventDefault();
        pool.#fail(new Error(`tokenizer worker failed: ${e.message}`));
      };
    }
    return pool;
  }

  /** Threads encoding besides the caller's (0: jobs run in the calling thread). */
  get threads(): number {
    return this.#workers.length;
  }

  /** The ids of `job`'s pieces. */
  encode(job: EncodeJob): Promise<EncodedJob> {
    if (this.#workers.length === 0) return Promise.resolve(encodePieces(this.#tokenizer, job));
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#queue.push({ id: this.#nextId++, job, resolve, reject });
      this.#dispatch();
    });
  }

  /** Stops the workers; jobs still running are dropped. */
  close(): void {
    for (const w of this.#workers) w.terminate();
    this.#workers.length = 0;
  }

  #dispatch(): void {
    while (this.#idle.length > 0 && this.#queue.length > 0) {
      const worker = this.#idle.pop()!;
      const waiting = this.#queue.shift()!;
      this.#running.set(worker, waiting);
      worker.postMessage({ id: waiting.id, pieces: waiting.job.pieces, continuing: waiting.job.continuing });
    }
  }

  #reply(worker: Worker, reply: WorkerReply): void {
    if (reply.type === "error") return this.#fail(new Error(reply.message));
    if (reply.type !== "done") return;
    const waiting = this.#running.get(worker)!;
    this.#running.delete(worker);
    this.#idle.push(worker);
    waiting.resolve({ ids: reply.ids, ends: reply.ends });
    this.#dispatch();
  }

  #fail(error: Error): void {
    this.#failure = error;
    for (const w of [...this.#running.values(), ...this.#queue]) w.reject(error);
    this.#running.clear();
    this.#queue.length = 0;
  }
}
