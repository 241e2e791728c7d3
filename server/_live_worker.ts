/**
 * The thread behind `serveLiveRun` (`serve.ts`): a {@linkcode LiveRun} and its HTTP server, fed by
 * messages from the training thread. A training step holds its own thread for as long as it runs
 * (on a software adapter, a whole submission); here requests are answered meanwhile.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { LiveRun } from "./live.ts";
import { type FromLiveWorker, type RunServer, serveRun, type ToLiveWorker } from "./serve.ts";

let run: LiveRun | undefined;
let server: RunServer | undefined;

function post(message: FromLiveWorker): void {
  self.postMessage(message);
}

self.onmessage = async (event: MessageEvent<ToLiveWorker>) => {
  const message = event.data;
  switch (message.type) {
    case "start":
      run = new LiveRun(message.run);
      try {
        server = serveRun(run, message.serve);
      } catch (e) {
        const error = e instanceof Error ? e : new Error(String(e));
        return post({ type: "error", name: error.name, message: error.message });
      }
      run.signal.addEventListener("abort", () => post({ type: "stop" }));
      return post({ type: "listening", url: server.url, token: server.token });
    case "record":
      return run?.record(message.metrics);
    case "finish":
      return run?.finish();
    case "fail":
      return run?.fail(message.error);
    case "close":
      await server?.close();
      post({ type: "closed" });
      self.close();
  }
};
