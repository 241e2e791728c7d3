/**
 * How the live dashboard answers while a run trains in the same process (issue 25): starts
 * `deno task train --serve` on loopback with `--log-every 200`, waits until step 600 is logged,
 * then opens 200 event streams (time to their first byte) and sends 2,000 `GET /api/status`
 * requests, 50 at a time (latency of each), closes the streams, stops the run with
 * `POST /api/stop` (time to the 202 and to the process's exit), and reads the trainer's own
 * tokens/s per logged interval, split into the intervals that overlapped the load and the others
 * (the first interval, with the shaders' compilation, left out).
 *
 *   deno run -A bench/server/load.ts [--root DIR] [--steps N] [--clients N] [--requests N]
 *     [--concurrency N] [--log-every K] [--load-after STEP] [--limit-s S] [--json]
 *
 * A step's metrics line is printed when the next logged step is submitted (the trainer reads
 * losses back one log late), so the line of step s arrives when step s + K is reached: the wall
 * time of each step is taken from that.
 *
 * `--root` runs another checkout's trainer (e.g. the commit before a change, exported with
 * `git archive`), for before/after figures on the same machine. Every wait is bounded: the load
 * phase lasts at most `--limit-s` seconds (a request unanswered by then is counted as such), and so
 * does each wait for the trainer, which is killed after the run.
 * Loopback only.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join, resolve } from "node:path";
import { writeShard } from "@inheritune/data";
import { intFlag } from "../../cli/_flags.ts";
import { runCommand } from "../../cli/_run.ts";

/** The model and data of the run: steps of tens of milliseconds on a CPU adapter. */
// deno-fmt-ignore
const MODEL = ["--n-layer", "2", "--n-head", "4", "--n-embd", "64", "--ctx", "64", "--batch", "4"];
const TEXT = new URL("../../corpora/tinystories/valid_head.txt", import.meta.url);

/** What one run measured. */
export interface LoadResult {
  /** The trainer's checkout. */
  root: string;
  /** Machine load (1-minute average) before and after the run. */
  load: [number, number];
  /** Seconds the load phase lasted. */
  load_s: number;
  /** Event streams: time to first byte (ms), and how many got none within the limit. */
  sse: Percentiles & { unanswered: number };
  /** Status requests: latency (ms), and how many got no answer within the limit. */
  status: Percentiles & { unanswered: number };
  /** `POST /api/stop`: ms to the 202, and to the trainer's exit. */
  stop: { answer_ms: number; exit_ms: number };
  /** The trainer's tokens/s per logged interval, by whether the interval overlapped the load. */
  tokens_per_s: { loaded: number[]; quiet: number[] };
}

/** Order statistics of a sample, in milliseconds. */
interface Percentiles {
  /** Answered. */
  n: number;
  /** Median. */
  p50: number;
  /** 99th percentile. */
  p99: number;
  /** Largest. */
  max: number;
}

function percentiles(values: number[]): Percentiles {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted.at(-1) ?? NaN };
}

async function loadAverage(): Promise<number> {
  return Number((await Deno.readTextFile("/proc/loadavg").catch(() => "NaN")).split(" ")[0]);
}

/** Lines of `stream` as they arrive, each with the time it arrived. */
async function* timedLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<[string, number]> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop()!;
    for (const line of lines) yield [line, performance.now()];
  }
}

/** Options of {@linkcode measure}. */
export interface LoadOptions {
  /** Checkout whose `cli.ts` trains. */
  root: string;
  /** Steps the run is started for (it is stopped once the load is over). */
  steps: number;
  /** Event streams to open. */
  clients: number;
  /** Status requests to send. */
  requests: number;
  /** Status requests in flight at once. */
  concurrency: number;
  /** The trainer's `--log-every`. */
  logEvery: number;
  /** The load starts once this step is known to be reached. */
  loadAfter: number;
  /** Seconds any wait may last. */
  limitS: number;
}

/** One run under load; see the module notes. */
export async function measure(options: LoadOptions): Promise<LoadResult> {
  const dir = await Deno.makeTempDir({ prefix: "inheritune_load_" });
  const limitMs = options.limitS * 1000;
  const before = await loadAverage();
  let child: Deno.ChildProcess | undefined;
  try {
    const data = join(dir, "data");
    await Deno.mkdir(data);
    const text = await Deno.readFile(TEXT);
    await writeShard(join(data, "train_000000.bin"), [...text]);
    await writeShard(join(data, "val_000000.bin"), [...text.subarray(0, 20_000)]);
    const out = join(dir, "run");
    // deno-fmt-ignore
    const args = [
      "run", "-A", "--unstable-ffi", "cli.ts", "train", "--data", data, "--out", out, ...MODEL,
      "--steps", String(options.steps), "--log-every", String(options.logEvery), "--eval-tokens", "4096",
      "--serve", "0",
    ];
    child = new Deno.Command(Deno.execPath(), {
      args,
      cwd: options.root,
      stdout: "piped",
      stderr: "inherit",
      env: { NO_COLOR: "1" },
    }).spawn();
    const logged: { step: number; at: number }[] = [];
    const serving = Promise.withResolvers<{ url: string; token: string }>();
    const reading = (async () => {
      for await (const [line, at] of timedLines(child!.stdout)) {
        const address = line.match(/^serving (\S+) .*Bearer (\w+)/);
        if (address) serving.resolve({ url: address[1], token: address[2] });
        const step = line.match(/^step +(\d+)\//);
        if (step) logged.push({ step: Number(step[1]), at });
      }
    })();
    let exited = false;
    child.status.then(() => exited = true);
    /** `promise`, or an error naming `what` once the limit has passed. */
    const within = <T>(promise: Promise<T>, what: string): Promise<T> =>
      Promise.race([
        promise,
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error(`no ${what} within ${options.limitS} s`)), limitMs)
        ),
      ]);
    /** Waits until `done()`, checking every 20 ms; throws when the trainer ends first or the limit passes. */
    const until = async (done: () => boolean, what: string): Promise<void> => {
      const end = performance.now() + limitMs;
      while (!done()) {
        if (exited) throw new Error(`the trainer ended before ${what}`);
        if (performance.now() > end) throw new Error(`no ${what} within ${options.limitS} s`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const { url, token } = await within(serving.promise, "serve line");
    // The line of step s arrives as step s + K is reached.
    await until(
      () => (logged.at(-1)?.step ?? 0) + options.logEvery >= options.loadAfter,
      `step ${options.loadAfter}`,
    );
    const loadStart = performance.now();
    const abort = new AbortController();
    const firstBytes: number[] = [];
    const streams = Array.from({ length: options.clients }, async () => {
      const t0 = performance.now();
      try {
        const res = await fetch(url + "api/events", { signal: abort.signal });
        const reader = res.body!.getReader();
        await reader.read();
        firstBytes.push(performance.now() - t0);
        while (!(await reader.read()).done) { /* events until the stream is closed */ }
      } catch {
        // closed by the abort below
      }
    });
    const latencies: number[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < options.requests && performance.now() < loadStart + limitMs) {
        next++;
        const t0 = performance.now();
        const remaining = loadStart + limitMs - t0;
        try {
          const res = await fetch(url + "api/status", {
            signal: AbortSignal.timeout(Math.max(1, remaining)),
          });
          await res.json();
          latencies.push(performance.now() - t0);
        } catch {
          // unanswered within the limit: counted below
        }
      }
    };
    await Promise.all(Array.from({ length: options.concurrency }, worker));
    // Streams that have not sent a byte by now get the rest of the limit.
    while (firstBytes.length < options.clients && performance.now() < loadStart + limitMs) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const loadEnd = performance.now();
    abort.abort();
    await Promise.all(streams);
    // Two more lines: the interval the load ended in gets its figure, and one after it.
    const lines = logged.length;
    await until(() => logged.length >= lines + 2, "two more logged steps");

    const t0 = performance.now();
    const stop = await within(
      fetch(url + "api/stop", { method: "POST", headers: { authorization: `Bearer ${token}` } }),
      "stop answer",
    );
    await stop.body?.cancel();
    const answerMs = performance.now() - t0;
    await within(child.status, "exit after the stop");
    const exitMs = performance.now() - t0;
    await reading;

    const metrics = (await Deno.readTextFile(join(out, "metrics.jsonl"))).trim().split("\n")
      .filter((l) => l !== "").map((l) => JSON.parse(l) as { step: number; tokens_per_s: number });
    // When step s was reached: when the line of step s - K arrived (see the module notes).
    const reached = (step: number): number | undefined =>
      logged.find((l) => l.step === step - options.logEvery)?.at;
    const tokens = { loaded: [] as number[], quiet: [] as number[] };
    for (const m of metrics) {
      const [from, to] = [reached(m.step - options.logEvery), reached(m.step)];
      if (from === undefined || to === undefined || m.step % options.logEvery !== 0) continue;
      const overlaps = from < loadEnd && to > loadStart;
      (overlaps ? tokens.loaded : tokens.quiet).push(Math.round(m.tokens_per_s));
    }
    return {
      root: options.root,
      load: [before, await loadAverage()],
      load_s: Math.round(loadEnd - loadStart) / 1000,
      sse: { ...percentiles(firstBytes), unanswered: options.clients - firstBytes.length },
      status: { ...percentiles(latencies), unanswered: options.requests - latencies.length },
      stop: { answer_ms: Math.round(answerMs), exit_ms: Math.round(exitMs) },
      tokens_per_s: tokens,
    };
  } finally {
    try {
      child?.kill("SIGKILL");
    } catch {
      // already exited
    }
    await child?.status;
    await Deno.remove(dir, { recursive: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      root: { type: "string" },
      steps: { type: "string" },
      clients: { type: "string" },
      requests: { type: "string" },
      concurrency: { type: "string" },
      "log-every": { type: "string" },
      "load-after": { type: "string" },
      "limit-s": { type: "string" },
      json: { type: "boolean" },
    },
  });
  const int = (name: keyof typeof values, fallback: number, min = 0): number =>
    intFlag(values[name], name, { fallback, min });
  const r = await measure({
    root: resolve(values.root ?? new URL("../../", import.meta.url).pathname),
    steps: int("steps", 100_000, 1),
    clients: int("clients", 200),
    requests: int("requests", 2000),
    concurrency: int("concurrency", 50, 1),
    logEvery: int("log-every", 200, 1),
    loadAfter: int("load-after", 3 * int("log-every", 200, 1), 1),
    limitS: int("limit-s", 180, 1),
  });
  if (values.json) return console.log(JSON.stringify(r));
  const ms = (p: Percentiles) =>
    `p50 ${p.p50.toFixed(1)} ms, p99 ${p.p99.toFixed(1)} ms, max ${p.max.toFixed(1)} ms`;
  const mean = (xs: number[]) => xs.length ? (xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(0) : "-";
  console.log(`trainer: ${r.root} (load average ${r.load[0]} before, ${r.load[1]} after)`);
  console.log(`event streams, first byte: ${ms(r.sse)} (${r.sse.n} answered, ${r.sse.unanswered} not)`);
  console.log(`GET /api/status: ${ms(r.status)} (${r.status.n} answered, ${r.status.unanswered} not)`);
  console.log(
    `POST /api/stop: answered in ${r.stop.answer_ms} ms, trainer exited after ${r.stop.exit_ms} ms`,
  );
  console.log(
    `tokens/s per logged interval: under load ${r.tokens_per_s.loaded.join(", ") || "-"} (mean ${
      mean(r.tokens_per_s.loaded)
    }); quiet ${r.tokens_per_s.quiet.join(", ") || "-"} (mean ${mean(r.tokens_per_s.quiet)})`,
  );
}

if (import.meta.main) Deno.exit(await runCommand("load", main));
