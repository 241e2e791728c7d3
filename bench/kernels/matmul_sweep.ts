/**
 * GFLOP/s of `matmul` at square sizes for several blockings side by side, on random operands:
 * the adapter's default, the register-blocked kernel without workgroup tiles (the GPU default
 * before `tileK`), other tile shapes, and texture operands on a CPU adapter. Each figure is the
 * median of three timings of launches submitted back to back with one wait, enough launches for
 * at least 0.2 s, so the ~10 ms queue wait of Deno's WebGPU is a small part on a fast GPU.
 *
 *   deno run -A bench/kernels/matmul_sweep.ts [--sizes 1024,4096] [--blockings default,8x8/16x16,...]
 *
 * A blocking is written `ROWSxCOLS/WXxWY[/kTILE[/sSPLIT][/p]]` (no `/s`: K split as `matmul`
 * picks; `/p`: prefetching), or `default`, or `texture`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  createView,
  getGpu,
  type Gpu,
  matmul,
  type MatmulArgs,
  type MatmulBlocking,
  matmulBlocking,
  Recorder,
  upload,
  type View,
} from "@inheritune/kernels";
import { Rng } from "@inheritune/data";
import { intFlag, UsageError } from "../../cli/_flags.ts";
import { runCommand } from "../../cli/_run.ts";

/** What {@linkcode matmulGflops} times: a product's shape and how to run it. */
export type MatmulCase = Pick<MatmulArgs, "M" | "N" | "K" | "transA" | "transB" | "blocking" | "operands">;

function randomView(gpu: Gpu, n: number, seed: number): View {
  return upload(gpu, new Rng(seed).normal(new Float32Array(n), 1));
}

/** Times `matmul` on `c` with random operands and returns its GFLOP/s (median of three timings). */
export async function matmulGflops(gpu: Gpu, c: MatmulCase): Promise<number> {
  const { M, N, K } = c;
  const args: MatmulArgs = {
    ...c,
    out: createView(gpu, M * N),
    a: randomView(gpu, M * K, 1),
    b: randomView(gpu, K * N, 2),
  };
  const time = async (reps: number): Promise<number> => {
    const rec = new Recorder(gpu);
    for (let i = 0; i < reps; i++) matmul(rec, args);
    const t0 = performance.now();
    rec.submit();
    await gpu.device.queue.onSubmittedWorkDone();
    rec.destroy();
    return (performance.now() - t0) / 1000;
  };
  await time(1); // compiles the pipeline
  // Double the launches per submission until one lasts 0.2 s, so the wait is a small part.
  let reps = 1;
  while (reps < 4096 && (await time(reps)) < 0.2) reps *= 2;
  const rates: number[] = [];
  for (let i = 0; i < 3; i++) rates.push((2 * M * N * K * reps) / (await time(reps)) / 1e9);
  for (const v of [args.out, args.a, args.b]) v.buffer.destroy();
  return rates.sort((x, y) => x - y)[1];
}

/** Parses `ROWSxCOLS/WXxWY[/kTILE[/sSPLIT][/p]]`. */
export function parseBlocking(text: string): MatmulBlocking {
  const m = text.match(/^(\d+)x(\d+)\/(\d+)x(\d+)(?:\/k(\d+)(?:\/s(\d+))?(\/p)?)?$/);
  if (!m) {
    throw new UsageError(
      `blocking "${text}": expected ROWSxCOLS/WXxWY[/kTILE[/sSPLIT][/p]], e.g. 8x8/16x16/k8/s1/p`,
    );
  }
  const [rows, cols, wx, wy, tileK, splitK] = m.slice(1, 7).map(Number);
  return {
    rows,
    cols,
    workgroup: [wx, wy],
    ...(tileK ? { tileK } : {}),
    ...(splitK ? { splitK } : {}),
    ...(m[7] ? { prefetch: true } : {}),
  };
}

function describe(b: MatmulBlocking): string {
  const tile = b.tileK ? `/k${b.tileK}${b.splitK ? `/s${b.splitK}` : ""}${b.prefetch ? "/p" : ""}` : "";
  return `${b.rows}x${b.cols}/${b.workgroup.join("x")}${tile}`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      sizes: { type: "string", default: "1024,4096" },
      blockings: { type: "string", default: "default,8x8/16x16,8x8/16x16/k8/s1,8x8/16x16/k16" },
    },
  });
  const sizes = values.sizes.split(",").map((n) => intFlag(n, "sizes", { min: 1 }));
  const specs = values.blockings.split(",");
  const blockings = specs.map((spec) =>
    spec === "default" || spec === "texture" ? spec : parseBlocking(spec)
  );
  const gpu = await getGpu();
  console.log(`matmul GFLOP/s on ${gpu.description}, C = A·B, random f32 operands\n`);
  console.log(`| blocking | ${sizes.map((n) => `${n}³`).join(" | ")} |`);
  console.log(`| --- | ${sizes.map(() => "---").join(" | ")} |`);
  for (const b of blockings) {
    let c: Omit<MatmulCase, "M" | "N" | "K"> = {};
    let label = gpu.isFallback ? "default (texture operands)" : `default (${describe(matmulBlocking(gpu))})`;
    if (b === "texture") [c, label] = [{ operands: "texture" }, "texture operands"];
    else if (b !== "default") [c, label] = [{ operands: "buffer", blocking: b }, describe(b)];
    const cells: string[] = [];
    for (const n of sizes) cells.push((await matmulGflops(gpu, { ...c, M: n, N: n, K: n })).toFixed(1));
    console.log(`| ${label} | ${cells.join(" | ")} |`);
  }
}

if (import.meta.main) Deno.exit(await runCommand("matmul_sweep", main));
