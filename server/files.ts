/**
 * A run read from its output folder, for serving a finished run or one training in another
 * process: follows `metrics.jsonl` as lines are appended, reads `config.json` when it appears, and
 * calls the run finished once `state.json` (the trainer's last write) is newer than the metrics.
 *
 * From files alone a crashed run cannot be told from a running one: it shows as `running`, and the
 * total step count (hence the ETA) is known only once the run has finished.
 *
 * @module
 */
import { basename, join, resolve } from "node:path";
import { type Metrics, RunSource, type RunState, type RunStatus } from "./run.ts";

/** The metrics log inside a run folder. */
export const METRICS_FILE = "metrics.jsonl";

/** Options of {@linkcode FileRun.open}. */
export interface FileRunOptions {
  /** Run name (default: the folder's name). */
  name?: string;
  /** Milliseconds between checks for new lines while someone follows the event stream (1000). */
  pollMs?: number;
}

/** Parses one `metrics.jsonl` line; `undefined` for a line that is not a metrics record. */
export function parseMetricsLine(line: string): Metrics | undefined {
  let m: unknown;
  try {
    m = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof m !== "object" || m === null) return undefined;
  const r = m as Record<string, unknown>;
  for (const key of ["step", "loss", "lr", "tokens_per_s", "tokens", "elapsed_s"]) {
    if (typeof r[key] !== "number") return undefined;
  }
  return r as unknown as Metrics;
}

/** Reads a whole `metrics.jsonl` (an absent file reads as empty), skipping lines that are not records. */
export async function readMetricsFile(path: string): Promise<Metrics[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  return text.split("\n").map(parseMetricsLine).filter((m) => m !== undefined);
}

async function mtime(path: string): Promise<number | undefined> {
  try {
    return (await Deno.stat(path)).mtime?.getTime() ?? 0;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/** A run followed through the files in its folder; read-only (it cannot be stopped from here). */
export class FileRun extends RunSource {
  /** Run name shown on the dashboard. */
  readonly name: string;
  /** The run folder. */
  readonly dir: string;
  #offset = 0;
  #partial = "";
  #decoder = new TextDecoder();
  /** The file's first line as read, to notice the file being rewritten. */
  #head: Uint8Array | undefined;
  #state: RunState = "running";
  #config: Record<string, unknown> | null = null;
  #configMtime: number | undefined;
  #finalStep: number | null = null;
  #pending: Promise<void> | undefined;
  readonly #timer: ReturnType<typeof setInterval>;

  private constructor(dir: string, options: FileRunOptions) {
    super();
    this.dir = dir;
    this.name = options.name ?? basename(resolve(dir));
    this.#timer = setInterval(() => {
      if (this.subscribers > 0) this.refresh().catch(() => {});
    }, options.pollMs ?? 1000);
  }

  /**
   * Opens the run folder `dir` and reads what it holds so far.
   *
   * @throws {Deno.errors.NotFound} when `dir` is not a folder.
   */
  static async open(dir: string, options: FileRunOptions = {}): Promise<FileRun> {
    let isDirectory = false;
    try {
      isDirectory = (await Deno.stat(dir)).isDirectory;
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    if (!isDirectory) throw new Deno.errors.NotFound(`${dir}: no such run folder`);
    const run = new FileRun(dir, options);
    try {
      await run.refresh();
    } catch (e) {
      run.close();
      throw e;
    }
    return run;
  }

  /** Reads lines appended to `metrics.jsonl` and any change of state; concurrent calls share one read. */
  override refresh(): Promise<void> {
    this.#pending ??= this.#read().finally(() => this.#pending = undefined);
    return this.#pending;
  }

  /** Stops following the files and ends the event streams. */
  override close(): void {
    clearInterval(this.#timer);
    super.close();
  }

  /** The run as the dashboard shows it: what its metrics file and checkpoint say so far. */
  protected override describe(): RunStatus {
    const summary = this.summary(this.#finalStep);
    return {
      name: this.name,
      config: this.#config,
      device: null,
      state: this.#state,
      total_steps: this.#finalStep,
      ...summary,
      eta_s: null,
      can_stop: false,
      stop_requested: false,
      error: null,
    };
  }

  async #read(): Promise<void> {
    const metricsPath = join(this.dir, METRICS_FILE);
    let file: Deno.FsFile;
    try {
      file = await Deno.open(metricsPath);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      if (this.#offset > 0) this.#reset();
      return await this.#readState(metricsPath);
    }
    using _ = file;
    // a new run truncates the file and writes it again: shorter, or with another first line
    const size = (await file.stat()).size;
    if (size < this.#offset || !(await this.#sameHead(file))) this.#reset();
    if (size > this.#offset && !(await this.#readLines(file))) {
      this.#reset();
      await this.#readLines(file);
    }
    await this.#readState(metricsPath);
  }

  async #sameHead(file: Deno.FsFile): Promise<boolean> {
    if (this.#head === undefined) return true;
    const bytes = new Uint8Array(this.#head.length);
    await file.seek(0, Deno.SeekMode.Start);
    for (let filled = 0; filled < bytes.length;) {
      const n = await file.read(bytes.subarray(filled));
      if (n === null) return false;
      filled += n;
    }
    return bytes.every((b, i) => b === this.#head![i]);
  }

  /** Reads from the offset to the end; false when a step goes backwards (a rewritten file: read it from 0). */
  async #readLines(file: Deno.FsFile): Promise<boolean> {
    await file.seek(this.#offset, Deno.SeekMode.Start);
    const buffer = new Uint8Array(1 << 16);
    for (let n = await file.read(buffer); n !== null; n = await file.read(buffer)) {
      this.#offset += n;
      const text = this.#partial + this.#decoder.decode(buffer.subarray(0, n), { stream: true });
      const lines = text.split("\n");
      this.#partial = lines.pop()!;
      if (this.#head === undefined && lines.length > 0) {
        this.#head = new TextEncoder().encode(lines[0] + "\n");
      }
      for (const line of lines) {
        const m = parseMetricsLine(line);
        if (m === undefined) continue;
        if (this.history.length > 0 && m.step <= this.history.at(-1)!.step) return false;
        this.push(m);
      }
    }
    return true;
  }

  async #readState(metricsPath: string): Promise<void> {
    const configPath = join(this.dir, "config.json");
    const configMtime = await mtime(configPath);
    if (configMtime !== undefined && configMtime !== this.#configMtime) {
      try {
        this.#config = JSON.parse(await Deno.readTextFile(configPath));
        this.#configMtime = configMtime;
      } catch {
        // written atomically by the trainer; a half-visible file is read again next time
      }
    }
    const stateMtime = await mtime(join(this.dir, "state.json"));
    const metricsMtime = await mtime(metricsPath);
    const finished = stateMtime !== undefined && (metricsMtime === undefined || stateMtime >= metricsMtime);
    const state: RunState = finished ? "finished" : "running";
    if (finished && this.#finalStep === null) this.#finalStep = await this.#savedStep();
    if (!finished) this.#finalStep = null;
    if (state !== this.#state) {
      this.#state = state;
      this.emit({ type: "status", status: this.describe() });
    }
  }

  async #savedStep(): Promise<number | null> {
    try {
      const step = JSON.parse(await Deno.readTextFile(join(this.dir, "state.json"))).step;
      return typeof step === "number" ? step : null;
    } catch {
      return null;
    }
  }

  #reset(): void {
    this.clearHistory();
    this.#offset = 0;
    this.#partial = "";
    this.#decoder = new TextDecoder();
    this.#head = undefined;
    this.emit({ type: "reset" });
  }
}
