/**
 * Serving a run over HTTP with `Deno.serve`, on 127.0.0.1 unless told otherwise. A source that can
 * be stopped gets a random bearer token for `POST /api/stop`.
 *
 * @module
 */
import { createApp } from "./app.ts";
import type { RunSource } from "./run.ts";

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
