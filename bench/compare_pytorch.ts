/**
 * This project against PyTorch on the same machine, in one run: tokens/s, peak memory and the
 * hours 1B training tokens would take, of a whole training step (bench/core/train_step.ts vs
 * bench/torch_step.py), and matmul GFLOP/s. Each side runs in its own process, so each peak
 * memory is that process's own.
 *
 *   deno run -A bench/compare_pytorch.ts [--configs tiny,124m,vocab,vocab64,stories,seed,seed-small] [--matmul 1024,4096] [--device cpu|cuda] [--rounds N] [--threads N]
 *
 * `stories` is the default experiment's target (`deno task train`: 2 LLaMA blocks of stories260K's
 * shape), `vocab64` GPT-2's vocabulary at width 64. `--rounds N` alternates the two sides N times
 * per configuration, one row per round, so that a machine whose speed drifts shows the drift on
 * both sides alike (read the rows' range). `--threads N` gives both sides N CPU threads (lavapipe's
 * `LP_NUM_THREADS`, PyTorch's `set_num_threads`; default every core): with 1, the comparison of the
 * work each does holds on a machine other processes load, where PyTorch's threads, waiting on each
 * other, lose far more than lavapipe's.
 *
 * `seed` is the paper's 1.5B model (13 of OpenLLaMA-3B's blocks, context 2048), for a GPU;
 * `seed-small` a narrower one, for a CPU adapter. PyTorch is Debian's
 * `/usr/bin/python3` (OpenBLAS) on CPU, or with `--device cuda` the `python3` on PATH with CUDA
 * PyTorch (then measured in fp32 with TF32 off, with TF32 on, and under bf16 autocast); `--python`
 * names another.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { getGpu } from "@inheritune/kernels";
import { matmulGflops } from "./kernels/matmul_sweep.ts";
import { benchConfig } from "./core/train_step.ts";
import { intFlag, UsageError } from "../cli/_flags.ts";
import { runCommand } from "../cli/_run.ts";

const here = new URL(".", import.meta.url).pathname;

async function runJson(cmd: string, args: string[]): Promise<Record<string, number | string>> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "inherit" }).output();
  const text = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1) ?? "";
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")} failed`);
  return JSON.parse(text);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      configs: { type: "string", default: "tiny" },
      matmul: { type: "string", default: "1024" },
      device: { type: "string", default: "cpu" },
      python: { type: "string" },
      rounds: { type: "string", default: "1" },
      threads: { type: "string" },
    },
  });
  const rounds = intFlag(values.rounds, "rounds", { min: 1 });
  const threads = values.threads === undefined
    ? []
    : ["--threads", String(intFlag(values.threads, "threads", { min: 1 }))];
  if (threads.length) Deno.env.set("LP_NUM_THREADS", threads[1]); // for our child processes
  if (values.device !== "cpu" && values.device !== "cuda") {
    throw new UsageError(`--device must be cpu or cuda, got ${JSON.stringify(values.device)}`);
  }
  const configs = values.configs.split(",");
  configs.forEach(benchConfig);
  const sizes = values.matmul.split(",").map((n) => intFlag(n, "matmul", { min: 1 }));
  const cuda = values.device === "cuda";
  const python = values.python ?? (cuda ? "python3" : "/usr/bin/python3");
  const stepVariants = cuda ? [[], ["--tf32"], ["--bf16"]] : [[]];
  const matmulVariants = cuda ? [[], ["--tf32"]] : [[]];
  // The issue's batch sizes (124M: B=4 on a CPU, 16 on a GPU), and enough steps that a fast GPU's
  // step time is not lost in the ~10 ms queue wait.
  const batch: Record<string, number> = cuda ? { "124m": 16 } : {};
  const steps: Record<string, number> = cuda
    ? { tiny: 50, "124m": 5, vocab: 50, seed: 3 }
    : { tiny: 3, "124m": 2, stories: 5, vocab64: 3 };
  const mib = (b: number | string) => `${(Number(b) / 2 ** 20).toFixed(0)} MiB`;
  const hours = (tokensPerS: number | string): string => (1e9 / Number(tokensPerS) / 3600).toFixed(1);
  console.log(
    `| config | this project tokens/s | PyTorch (${values.device}) tokens/s | ratio | peak memory (ours / PyTorch) | ` +
      "hours per 1B tokens (ours / PyTorch) |",
  );
  console.log("| --- | --- | --- | --- | --- | --- |");
  for (const name of configs) {
    for (let round = 1; round <= rounds; round++) {
      const shape = [
        "--steps",
        String(steps[name] ?? 2),
        ...(batch[name] ? ["--batch", String(batch[name])] : []),
      ];
      const ours = await runJson(Deno.execPath(), [
        "run",
        "-A",
        `${here}core/train_step.ts`,
        name,
        "--json",
        ...shape,
      ]);
      for (const extra of stepVariants) {
        const torch = await runJson(python, [
          `${here}torch_step.py`,
          "step",
          name,
          "--device",
          values.device,
          ...shape,
          ...extra,
          ...threads,
        ]);
        const label = `${name} B=${ours.B} T=${ours.T}${
          extra.length ? ` (${extra[0].slice(2).toUpperCase()})` : ""
        }${rounds > 1 ? `, round ${round}` : ""}`;
        const ratio = Number(ours.tokens_per_s) / Number(torch.tokens_per_s);
        // On a GPU our tensors are GPU buffers (created bytes) against PyTorch's max_memory_allocated;
        // on a CPU adapter both are process peak resident memory.
        const ourPeak = cuda ? ours.gpu_bytes : ours.peak_bytes;
        console.log(
          `| ${label} | ${Number(ours.tokens_per_s).toFixed(0)} | ${
            Number(torch.tokens_per_s).toFixed(0)
          } | ` +
            `${ratio.toFixed(3)}x | ${mib(ourPeak)} / ${mib(torch.peak_bytes)} | ${
              hours(ours.tokens_per_s)
            } / ` +
            `${hours(torch.tokens_per_s)} |`,
        );
      }
    }
  }
  console.log("\n| matmul | this project GFLOP/s | PyTorch GFLOP/s | ratio |");
  console.log("| --- | --- | --- | --- |");
  for (const n of sizes) {
    const ours = await matmulGflops(await getGpu(), { M: n, N: n, K: n });
    for (const extra of matmulVariants) {
      const torch = await runJson(python, [
        `${here}torch_step.py`,
        "matmul",
        String(n),
        "--device",
        values.device,
        ...extra,
        ...threads,
      ]);
      console.log(
        `| ${n}³${extra.length ? " (TF32)" : ""} | ${ours.toFixed(2)} | ${
          Number(torch.gflops).toFixed(2)
        } | ` +
          `${(ours / Number(torch.gflops)).toFixed(3)}x |`,
      );
    }
  }
  console.log(
    `\ndevice: ${(await getGpu()).description}${threads.length ? `; ${threads[1]} thread(s) each side` : ""}`,
  );
}

if (import.meta.main) Deno.exit(await runCommand("compare_pytorch", main));
