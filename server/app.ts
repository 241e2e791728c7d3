/**
 * The progress server's HTTP app (Hono): a JSON API over a {@linkcode RunSource}, a server-sent
 * event stream, and the dashboard page. Every response of the API is JSON, errors included.
 *
 * | route | answer |
 * | --- | --- |
 * | `GET /` | the dashboard (HTML; its script at `GET /dashboard.js`) |
 * | `GET /api/status` | {@linkcode RunStatus} |
 * | `GET /api/metrics?since=STEP` | `{ metrics: Metrics[] }`, the logged steps after STEP |
 * | `GET /api/events` | `text/event-stream`: `metrics`, `status`, `reset` and `end` events |
 * | `POST /api/stop` | 202 with `Authorization: Bearer TOKEN`; 401 without; 409 if the run cannot stop |
 *
 * @module
 */
import { timingSafeEqual } from "node:crypto";
import { Hono } from "hono";
import DASHBOARD_HTML from "./_dashboard.html" with { type: "text" };
import DASHBOARD_JS from "./_dashboard.js" with { type: "text" };
import type { RunEvent, RunSource } from "./run.ts";

/** Options of {@linkcode createApp}. */
export interface AppOptions {
  /** The bearer token `POST /api/stop` requires; without one, stopping is refused. */
  token?: string;
  /** Milliseconds between keep-alive comments on idle event streams (15000). */
  keepAliveMs?: number;
}

/** Events a slow reader may leave unread before its stream is dropped, so it cannot hold memory. */
const EVENT_BACKLOG = 1024;

/** A comment line that keeps idle connections from being closed by proxies. */
const KEEP_ALIVE = new TextEncoder().encode(": keep-alive\n\n");

/** The event stream's wire form: one SSE message. */
function encodeEvent(event: RunEvent): string {
  switch (event.type) {
    case "metrics":
      return `id: ${event.metrics.step}\nevent: metrics\ndata: ${
        JSON.stringify({ metrics: event.metrics, status: event.status })
      }\n\n`;
    case "status":
      return `event: status\ndata: ${JSON.stringify(event.status)}\n\n`;
    case "reset":
      return "event: reset\ndata: {}\n\n";
    case "end":
      return "event: end\ndata: {}\n\n";
  }
}

function sameToken(given: string, expected: string): boolean {
  const a = new TextEncoder().encode(given);
  const b = new TextEncoder().encode(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Builds the app serving `source`. */
export function createApp(source: RunSource, options: AppOptions = {}): Hono {
  const app = new Hono();
  const keepAliveMs = options.keepAliveMs ?? 15_000;
  // every stream sends the same bytes for an event: encode it once
  const encoded = new WeakMap<RunEvent, Uint8Array>();
  const wire = (event: RunEvent): Uint8Array => {
    let bytes = encoded.get(event);
    if (bytes === undefined) encoded.set(event, bytes = new TextEncoder().encode(encodeEvent(event)));
    return bytes;
  };

  app.get("/", (c) => c.html(DASHBOARD_HTML));
  app.get("/dashboard.js", (c) => {
    c.header("content-type", "text/javascript; charset=utf-8");
    return c.body(DASHBOARD_JS);
  });

  app.get("/api/status", async (c) => c.json(await source.status()));

  app.get("/api/metrics", async (c) => {
    const raw = c.req.query("since");
    const since = raw === undefined ? 0 : Number(raw);
    if (raw !== undefined && (!/^\d+$/.test(raw) || !Number.isSafeInteger(since))) {
      return c.json({
        error: `since must be a step number (a non-negative integer), got ${JSON.stringify(raw)}`,
      }, 400);
    }
    return c.json({ metrics: await source.metrics(since) });
  });

  app.get("/api/events", async () => {
    const status = await source.status();
    let cleanup = (): void => {};
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        let open = true;
        /** Stops following; `reason` errors the stream, dropping what a stalled reader left queued. */
        const close = (reason?: Error): void => {
          if (!open) return;
          open = false;
          unsubscribe();
          clearInterval(keepAlive);
          try {
            if (reason) controller.error(reason);
            else controller.close();
          } catch {
            // already closed by a cancelled reader
          }
        };
        const send = (bytes: Uint8Array): void => {
          if (!open) return;
          if ((controller.desiredSize ?? 0) <= 0) {
            return close(new Error(`over ${EVENT_BACKLOG} events unread`));
          }
          controller.enqueue(bytes);
        };
        const unsubscribe = source.subscribe((event) => {
          send(wire(event));
          if (event.type === "end") close();
        });
        const keepAlive = setInterval(() => send(KEEP_ALIVE), keepAliveMs);
        cleanup = close;
        send(new TextEncoder().encode(`retry: 2000\n${encodeEvent({ type: "status", status })}`));
      },
      cancel() {
        cleanup();
      },
    }, new CountQueuingStrategy({ highWaterMark: EVENT_BACKLOG }));
    return new Response(body, {
      headers: {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
      },
    });
  });

  app.post("/api/stop", (c) => {
    const readOnly = { error: "this server is read-only: stop the run where it trains" };
    if (options.token === undefined) return c.json(readOnly, 409);
    const match = /^Bearer\s+(\S+)$/i.exec(c.req.header("authorization") ?? "");
    if (match === null || !sameToken(match[1], options.token)) {
      c.header("www-authenticate", 'Bearer realm="inheritune"');
      return c.json(
        { error: "stopping needs the token printed at start-up: Authorization: Bearer TOKEN" },
        401,
      );
    }
    const outcome = source.stop();
    if (outcome === "read-only") return c.json(readOnly, 409);
    if (outcome === "not-running") return c.json({ error: "the run is no longer running" }, 409);
    return c.json(
      { stopping: true, message: "saving a checkpoint after the current step, then stopping" },
      202,
    );
  });

  app.notFound((c) => c.json({ error: `not found: ${c.req.method} ${new URL(c.req.url).pathname}` }, 404));
  app.onError((e, c) => c.json({ error: e.message.split("\n")[0] }, 500));
  return app;
}
