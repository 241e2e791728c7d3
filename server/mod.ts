/**
 * The progress server of a training run: a Hono app with a JSON API (status, metrics history,
 * server-sent events, an authenticated stop) and a self-contained live dashboard, over a run
 * source that is either fed by the trainer in this process ({@linkcode LiveRun}, served from a
 * thread of its own by {@linkcode serveLiveRun}) or follows a run folder's files
 * ({@linkcode FileRun}).
 *
 * ```ts
 * const server = await serveLiveRun({ name: "demo", totalSteps: 100 }, { port: 0 });
 * console.log(`${server.url} (stop token ${server.token})`);
 * // train({ ..., onMetrics: server.record, signal: server.signal }), then:
 * server.finish();
 * await server.close();
 * ```
 *
 * @module
 */
export * from "./run.ts";
export * from "./live.ts";
export * from "./files.ts";
export * from "./app.ts";
export * from "./serve.ts";
