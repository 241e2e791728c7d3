/**
 * Where a GPT-2 training step's time goes: records one step (zero grads, forward, backward,
 * AdamW) of a configuration of `train_step.ts`, then times every recorded command alone, `reps`
 * times back to back with one wait, less the time of an empty submission, and sums the times by
 * the function that recorded the command (`matmul`, `layernormBackward`, ...). Repeated
 * commands compute on garbage (gradients accumulate, AdamW moves the weights), which changes no
 * kernel's work.
 *
 *   deno run -A bench/core/step_profile.ts tiny|124m [--batch B] [--reps N]
 *
 * The parts add up to somewhat more than a whole step, whose launches overlap. Each part is also
 * given in CPU time (of every thread of this process: on a CPU adapter, the kernels' work), which
 * other processes on the machine disturb less than the wall time.
 *
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { type DispatchArgs, getGpu, type Gpu, Recorder, type View } from "@inheritune/kernels";
import { recordTrainStep } from "./train_step.ts";
import { intFlag } from "../../cli/_flags.ts";
import { runCommand } from "../../cli/_run.ts";

/** A recorder that also keeps each command, repeated `reps` times, in a recorder of its own. */
class ProfilingRecorder extends Recorder {
  readonly parts: { label: string; rec: Recorder }[] = [];
  #reps: number;

  constructor(gpu: Gpu, reps: number) {
    super(gpu);
    this.#reps = reps;
  }

  #keep(label: string, record: (rec: Recorder) => void): void {
    const rec = new Recorder(this.gpu);
    for (let i = 0; i < this.#reps; i++) record(rec);
    this.parts.push({ label, rec });
  }

  /** The name of the function that called a method of this recorder. */
  #caller(): string {
    // Frames below this method and the overridden one; the kernels' shared helpers and builtins skipped.
    const frames = (new Error().stack?.split("\n") ?? []).slice(3).map((f) => f.trim());
    const helper = /\/kernels\/(device|elementwise|scratch)\.ts|<anonymous>/;
    const frame = frames.find((f) => !helper.test(f)) ?? "at ?";
    return frame.split(" ")[1].replace(/^file:.*\//, ""); // an anonymous function: its file and line
  }

  override dispatch(args: DispatchArgs): void {
    super.dispatch(args);
    this.#keep(this.#caller(), (rec) => rec.dispatch(args));
  }

  override clear(view: View): void {
    super.clear(view);
    this.#keep(`clear (${this.#caller()})`, (rec) => rec.clear(view));
  }

  override copyFlatToTexture(view: View, texture: GPUTexture): void {
    super.copyFlatToTexture(view, texture);
    this.#keep(`copyToTexture (${this.#caller()})`, (rec) => rec.copyFlatToTexture(view, texture));
  }

  override copyToTexture(view: View, texture: GPUTexture): void {
    super.copyToTexture(view, texture);
    this.#keep(`copyToTexture (${this.#caller()})`, (rec) => rec.copyToTexture(view, texture));
  }
}

/** Wall and CPU seconds of a submission until its work is done. */
async function seconds(gpu: Gpu, submit: () => void): Promise<{ wall: number; cpu: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  submit();
  await gpu.device.queue.onSubmittedWorkDone();
  const c = process.cpuUsage(c0);
  return { wall: (performance.now() - t0) / 1000, cpu: (c.user + c.system) / 1e6 };
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: { batch: { type: "string" }, reps: { type: "string" } },
    allowPositionals: true,
  });
  const name = positionals[0] ?? "tiny";
  const batch = values.batch === undefined ? undefined : intFlag(values.batch, "batch", { min: 1 });
  const gpu = await getGpu();
  const reps = intFlag(values.reps, "reps", { min: 1, fallback: gpu.isFallback ? 1 : 10 });
  const rec = new ProfilingRecorder(gpu, reps);
  const { opt, B, T } = recordTrainStep(rec, { name, B: batch });
  opt.prepare(1e-4);
  await seconds(gpu, () => rec.submit()); // compiles every pipeline
  const step = await seconds(gpu, () => rec.submit());
  const empty = { wall: Infinity, cpu: Infinity };
  for (let i = 0; i < 5; i++) {
    const e = await seconds(gpu, () => gpu.device.queue.submit([]));
    empty.wall = Math.min(empty.wall, e.wall);
    empty.cpu = Math.min(empty.cpu, e.cpu);
  }
  const totals = new Map<string, { ms: number; cpu: number; count: number }>();
  for (const { label, rec: part } of rec.parts) {
    const s = await seconds(gpu, () => part.submit());
    const t = totals.get(label) ?? { ms: 0, cpu: 0, count: 0 };
    totals.set(label, {
      ms: t.ms + (Math.max(0, s.wall - empty.wall) / reps) * 1000,
      cpu: t.cpu + (Math.max(0, s.cpu - empty.cpu) / reps) * 1000,
      count: t.count + 1,
    });
  }
  const sum = [...totals.values()].reduce((a, t) => a + t.ms, 0);
  const cpuSum = [...totals.values()].reduce((a, t) => a + t.cpu, 0);
  console.log(
    `${name} B=${B} T=${T} on ${gpu.description}: whole step ${(step.wall * 1000).toFixed(1)} ms ` +
      `(CPU ${(step.cpu * 1000).toFixed(1)} ms), parts ${sum.toFixed(1)} ms (CPU ${cpuSum.toFixed(1)} ms; ` +
      `each timed ${reps}x, less an empty submission's ${(empty.wall * 1000).toFixed(1)} ms)\n`,
  );
  console.log("| recorded by | commands | ms per step | share | CPU ms per step | CPU share |");
  console.log("| --- | --- | --- | --- | --- | --- |");
  for (const [label, t] of [...totals].sort((a, b) => b[1].cpu - a[1].cpu)) {
    console.log(
      `| ${label} | ${t.count} | ${t.ms.toFixed(2)} | ${((100 * t.ms) / sum).toFixed(1)}% | ` +
        `${t.cpu.toFixed(2)} | ${((100 * t.cpu) / cpuSum).toFixed(1)}% |`,
    );
  }
}

if (import.meta.main) Deno.exit(await runCommand("step_profile", main));
