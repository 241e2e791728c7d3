/**
 * Serving a run over HTTP with `Deno.serve`, on 127.0.0.1 unless told otherwise. A source that can
 * be stopped gets a random bearer token for `POST /api/stop`. {@linkcode serveLiveRun} serves a run
 * trained in this process from a thread of its own, so that it answers while a step runs.
 *
 * @module
 */
import { createApp } from "./app.ts";
import type { LiveRunOptions } from "./live.ts";
import type { Metrics, RunSource } from "./run.ts";

/** Options of {@linkcode serveRun}. */
export interface ServeOptions {
  /** TCP port; 0 picks a free one (8000). */
  port?: number;
  /** Interface to listen on ("127.0.0.1": this machine only). */
  hostname?: string;
  /** Token for `POST /api/stop` (default: a fresh random one); `null` makes the server read-only. */
  token?: string | null;
}

/** A running server. */
export interface RunServer {
  /** The dashboard's address, e.g. `http://127.0.0.1:8000/`. */
  readonly url: string;
  /** The token `POST /api/stop` requires, or `null` for a read-only server. */
  readonly token: string | null;
  /** Resolves when the server has shut down. */
  readonly finished: Promise<void>;
  /** Ends the event streams (and the source's timers), then shuts the server down. */
  close(): Promise<void>;
}

/** A random 256-bit bearer token, in hex. */
export function generateToken(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(32)), (b) => b.toString(16).padStart(2, "0")).join(
    "",
  );
}

/** Serves `source`: the dashboard and the API of {@linkcode createApp}. */
export function serveRun(source: RunSource, options: ServeOptions = {}): RunServer {
  const token = options.token === undefined ? generateToken() : options.token;
  const app = createApp(source, { token: token ?? undefined });
  const server = Deno.serve(
    { port: options.port ?? 8000, hostname: options.hostname ?? "127.0.0.1", onListen: () => {} },
    app.fetch,
  );
  const addr = server.addr;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  return {
    url: `http://${host}:${addr.port}/`,
    token,
    finished: server.finished,
    async close() {
      source.close();
      await server.shutdown();
    },
  };
}

/** A run trained in this process, served from a worker thread by {@linkcode serveLiveRun}. */
export interface LiveServer {
  /** The dashboard's address. */
  readonly url: string;
  /** The token `POST /api/stop` requires. */
  readonly token: string | null;
  /** Aborted once `POST /api/stop` is accepted; pass it to the trainer as `signal`. */
  readonly signal: AbortSignal;
  /** Records one logged step (pass it as the trainer's `onMetrics`). */
  record(m: Metrics): void;
  /** Marks the run finished (completed or stopped). */
  finish(): void;
  /** Marks the run failed with `error`'s first line. */
  fail(error: unknown): void;
  /** Ends the event streams, shuts the server down and ends its thread. */
  close(): Promise<void>;
}

/** Messages to the server's thread (`_live_worker.ts`). */
export type ToLiveWorker =
  | { type: "start"; run: LiveRunOptions; serve: ServeOptions }
  | { type: "record"; metrics: Metrics }
  | { type: "finish" }
  | { type: "fail"; error: string }
  | { type: "close" };

/** Messages from the server's thread. */
export type FromLiveWorker =
  | { type: "listening"; url: string; token: string | null }
  | { type: "error"; name: string; message: string }
  | { type: "stop" }
  | { type: "closed" };

/**
 * Serves a {@linkcode LiveRun} of `run`'s options on a worker thread: the training thread only
 * posts its logged steps, and requests are answered while it computes, whatever the step takes.
 * A stop request reaches the trainer's `signal` when its thread next turns its event loop (the
 * trainer does between steps).
 *
 * @throws {Deno.errors.AddrInUse} when the port is taken.
 */
export async function serveLiveRun(run: LiveRunOptions, options: ServeOptions = {}): Promise<LiveServer> {
  const worker = new Worker(new URL("./_live_worker.ts", import.meta.url), { type: "module" });
  const send = (message: ToLiveWorker): void => worker.postMessage(message);
  const stop = new AbortController();
  const listening = Promise.withResolvers<{ url: string; token: string | null }>();
  const closed = Promise.withResolvers<void>();
  worker.onmessage = (event: MessageEvent<FromLiveWorker>) => {
    const message = event.data;
    if (message.type === "listening") listening.resolve(message);
    else if (message.type === "stop") stop.abort();
    else if (message.type === "closed") closed.resolve();
    else {
      const Class = message.name === "AddrInUse" ? Deno.errors.AddrInUse : Error;
      listening.reject(new Class(message.message));
    }
  };
  worker.onerror = (event) => {
    event.preventDefault();
    listening.reject(new Error(`the dashboard's thread failed: ${event.message}`));
    closed.resolve();
  };
  send({ type: "start", run, serve: options });
  let address;
  try {
    address = await listening.promise;
  } catch (e) {
    worker.terminate();
    throw e;
  }
  return {
    ...address,
    signal: stop.signal,
    record: (metrics) => send({ type: "record", metrics }),
    finish: () => send({ type: "finish" }),
    fail: (error) =>
      send({ type: "fail", error: (error instanceof Error ? error.message : String(error)).split("\n")[0] }),
    async close() {
      send({ type: "close" });
      await closed.promise;
      worker.terminate();
    },
  };
}
