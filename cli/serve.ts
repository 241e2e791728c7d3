/**
 * `deno task serve --run DIR [--port N] [--host H]`: the dashboard and API of a run folder,
 * read-only, following a run that trains elsewhere. Also the `--serve [PORT]` / `--host` glue of
 * `deno task train`, which serves the run being trained and lets it be stopped.
 *
 * @module
 */
import { basename, join } from "node:path";
import {
  FileRun,
  type Metrics,
  METRICS_FILE,
  readMetricsFile,
  serveLiveRun,
  type ServeOptions,
  serveRun,
} from "@inheritune/server";
import { type CommandSpec, type FlagDef, parseCommand, UsageError } from "./_flags.ts";

/** The port `--serve` without a value listens on. */
export const DEFAULT_PORT = 8000;
/** The address the servers listen on unless `--host` says otherwise. */
export const DEFAULT_HOST = "127.0.0.1";

/** The range of a TCP port. */
const PORT_RANGE = { min: 0, max: 65535 } as const;

/** The flags `deno task train` serves the run it trains with. */
export const SERVE_FLAGS = {
  serve: {
    type: "int",
    arg: "[PORT]",
    help: "serve the live dashboard while training",
    bare: DEFAULT_PORT,
    ...PORT_RANGE,
  },
  host: { type: "string", arg: "H", help: "address for --serve", default: DEFAULT_HOST, needs: "serve" },
} as const satisfies Record<string, FlagDef>;

/** `start()` (which serves on `options`' port), with a port already in use reported as the flag's fault. */
async function listen<S>(start: () => S | Promise<S>, options: ServeOptions, flag: string): Promise<S> {
  try {
    return await start();
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse) {
      throw new UsageError(
        `--${flag} ${options.port}: ${options.hostname} already has a server on that port; choose another`,
      );
    }
    throw e;
  }
}

/** What `train --serve` hooks into the training loop; without `--serve`, hooks that do nothing. */
export interface TrainingServer {
  /** Pass as the trainer's `onMetrics` (after any other printer). */
  onMetrics(m: Metrics): void;
  /** Pass as the trainer's `signal`: aborted by `POST /api/stop`. */
  signal?: AbortSignal;
  /** Marks the run finished or failed when `training` settles, then shuts the server down. */
  track<T>(training: Promise<T>): Promise<T>;
}

/** What the live dashboard shows of the run besides its metrics. */
export interface TrainingRun {
  /** Output folder. */
  out: string;
  /** Model configuration. */
  config: object;
  /** The GPU adapter's description. */
  device: string;
  /** Steps the run trains to. */
  steps: number;
  /** The checkpoint folder the run continues from: its metrics are shown first. */
  resumed?: string;
}

/**
 * Starts the live server when `--serve` was given (`f` as {@linkcode SERVE_FLAGS} parse) and prints
 * its address and stop token.
 */
export async function serveTraining(
  f: { serve?: number; host: string },
  run: TrainingRun,
): Promise<TrainingServer> {
  if (f.serve === undefined) return { onMetrics: () => {}, track: (training) => training };
  const port = f.serve;
  const hostname = f.host;
  const live = {
    name: basename(run.out),
    config: { ...run.config },
    device: run.device,
    totalSteps: run.steps,
    history: run.resumed !== undefined ? await readMetricsFile(join(run.resumed, METRICS_FILE)) : [],
  };
  // On a thread of its own: a training step holds this one for as long as it runs.
  const server = await listen(() => serveLiveRun(live, { port, hostname }), { port, hostname }, "serve");
  console.log(
    `serving ${server.url} (stop: curl -X POST -H "Authorization: Bearer ${server.token}" ${server.url}api/stop)`,
  );
  return {
    onMetrics: server.record,
    signal: server.signal,
    async track(training) {
      try {
        const result = await training;
        server.finish();
        return result;
      } catch (e) {
        server.fail(e);
        throw e;
      } finally {
        await server.close();
      }
    },
  };
}

/** The command line of `deno task serve`. */
export const COMMAND = {
  name: "serve",
  summary: "serve the dashboard and API of a finished or running run folder, read-only",
  usage: "--run DIR [--port N] [--host H]",
  flags: {
    run: { type: "string", arg: "DIR", help: "a run folder (metrics.jsonl, config.json)", required: true },
    port: { type: "int", arg: "N", help: "port to listen on", default: DEFAULT_PORT, ...PORT_RANGE },
    host: { type: "string", arg: "H", help: "address to listen on", default: DEFAULT_HOST },
  },
  notes: ["`deno task train ... --serve [PORT]` serves the run it trains, with POST /api/stop to stop it."],
  examples: ["deno task serve --run runs/inherited --port 8080"],
} as const satisfies CommandSpec;

/** Runs the command with its flags. */
export async function main(args: string[]): Promise<void> {
  const f = parseCommand(COMMAND, args);
  if (!f) return;
  const dir = f.run;
  const run = await FileRun.open(dir);
  const options = { port: f.port, hostname: f.host, token: null };
  const server = await listen(() => serveRun(run, options), options, "port");
  console.log(`serving ${dir} read-only at ${server.url} (Ctrl-C to quit)`);
  await server.finished;
}
