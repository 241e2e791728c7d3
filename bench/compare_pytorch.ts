/**
 * This project against PyTorch on the same machine, in one run: tokens/s and peak memory of a
 * whole GPT-2 training step (bench/core/train_step.ts vs bench/torch_step.py), and matmul GFLOP/s.
 * Each side runs in its own process, so each peak memory is that process's own.
 *
 *   deno run -A bench/compare_pytorch.ts [--configs tiny,124m] [--matmul 1024,4096] [--device cpu|cuda]
 *
 * PyTorch is Debian's `/usr/bin/python3` (OpenBLAS) on CPU, or CUDA PyTorch with `--device cuda`
 * (then measured with TF32 off and on).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { createView, getGpu, matmul, Recorder } from "@inheritune/kernels";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    configs: { type: "string", default: "tiny" },
    matmul: { type: "string", default: "1024" },
    device: { type: "string", default: "cpu" },
    python: { type: "string", default: "/usr/bin/python3" },
  },
});
const here = new URL(".", import.meta.url).pathname;

async function runJson(cmd: string, args: string[]): Promise<Record<string, number | string>> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "inherit" }).output();
  const text = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1) ?? "";
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")} failed`);
  return JSON.parse(text);
}

async function ourMatmulGflops(n: number): Promise<number> {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  matmul(rec, {
    out: createView(gpu, n * n),
    a: createView(gpu, n * n),
    b: createView(gpu, n * n),
    M: n,
    N: n,
    K: n,
  });
  rec.submit();
  await gpu.device.queue.onSubmittedWorkDone();
  let reps = 0;
  const t0 = performance.now();
  while (reps < 2 || performance.now() - t0 < 1000) {
    rec.submit();
    await gpu.device.queue.onSubmittedWorkDone();
    reps++;
  }
  return (2 * n ** 3 * reps) / ((performance.now() - t0) * 1e6);
}

const torchVariants = values.device === "cuda" ? [[], ["--tf32"]] : [[]];
const mib = (b: number | string) => `${(Number(b) / 2 ** 20).toFixed(0)} MiB`;
console.log(
  `| config | this project tokens/s | PyTorch (${values.device}) tokens/s | ratio | peak memory (ours / PyTorch) |`,
);
console.log("| --- | --- | --- | --- | --- |");
for (const name of values.configs.split(",")) {
  const ours = await runJson(Deno.execPath(), [
    "run",
    "-A",
    `${here}core/train_step.ts`,
    name,
    "--json",
    "--steps",
    "2",
  ]);
  for (const extra of torchVariants) {
    const torch = await runJson(values.python, [
      `${here}torch_step.py`,
      "step",
      name,
      "--device",
      values.device,
      ...extra,
    ]);
    const label = `${name} B=${ours.B} T=${ours.T}${extra.length ? " (TF32)" : ""}`;
    const ratio = Number(ours.tokens_per_s) / Number(torch.tokens_per_s);
    console.log(
      `| ${label} | ${Number(ours.tokens_per_s).toFixed(0)} | ${Number(torch.tokens_per_s).toFixed(0)} | ` +
        `${ratio.toFixed(3)}x | ${mib(ours.peak_bytes)} / ${mib(torch.peak_bytes)} |`,
    );
  }
}
console.log("\n| matmul | this project GFLOP/s | PyTorch GFLOP/s | ratio |");
console.log("| --- | --- | --- | --- |");
for (const n of values.matmul.split(",").map(Number)) {
  const ours = await ourMatmulGflops(n);
  for (const extra of torchVariants) {
    const torch = await runJson(values.python, [
      `${here}torch_step.py`,
      "matmul",
      String(n),
      "--device",
      values.device,
      ...extra,
    ]);
    console.log(
      `| ${n}³${extra.length ? " (TF32)" : ""} | ${ours.toFixed(2)} | ${Number(torch.gflops).toFixed(2)} | ` +
        `${(ours / Number(torch.gflops)).toFixed(3)}x |`,
    );
  }
}
console.log(`\ndevice: ${(await getGpu()).description}`);
