/**
 * `matmul` reading its operands from textures (the default on a CPU adapter) and from the storage
 * buffers directly (register-blocked; the default on a GPU), against the one-thread-per-output
 * `matmulNaive`, on square shapes and the GPT-2-small MLP shape. The buffer kernel is the
 * baseline, so `deno bench` prints the texture path's speed-up over it. Each timed call submits `REPEAT` launches and waits once for
 * the queue, so the time is GPU time plus one ~10 ms wait. GFLOP/s of every case (best of its
 * iterations) is printed as a table when the run ends.
 */
import { createView, getGpu, type Gpu, matmul, type MatmulArgs, Recorder } from "@inheritune/kernels";
import { matmulNaive } from "./_matmul_variants.ts";

const REPEAT = 2;
const SHAPES: { name: string; M: number; N: number; K: number }[] = [
  { name: "256³", M: 256, N: 256, K: 256 },
  { name: "512³", M: 512, N: 512, K: 512 },
  { name: "1024³", M: 1024, N: 1024, K: 1024 },
  { name: "MLP M=1024 K=768 N=3072", M: 1024, N: 3072, K: 768 },
];
const KERNELS: Record<string, (rec: Recorder, args: MatmulArgs) => void> = {
  texture: (rec, args) => matmul(rec, { ...args, operands: "texture" }),
  buffer: (rec, args) => matmul(rec, { ...args, operands: "buffer" }),
  naive: matmulNaive,
};

const gpu: Gpu = await getGpu();
const best = new Map<string, number>();

for (const { name, M, N, K } of SHAPES) {
  const args: MatmulArgs = {
    out: createView(gpu, M * N),
    a: createView(gpu, M * K),
    b: createView(gpu, K * N),
    M,
    N,
    K,
  };
  for (const [kernel, record] of Object.entries(KERNELS)) {
    // The naive kernel takes seconds per launch at 1024³ on a CPU adapter: one sample suffices.
    const slow = kernel === "naive" && M * N * K > 2 ** 27;
    const repeat = slow ? 1 : REPEAT;
    const flop = 2 * M * N * K * repeat;
    const rec = new Recorder(gpu);
    for (let i = 0; i < repeat; i++) record(rec, args);
    const label = `${kernel} ${name} (${(flop / 1e9).toFixed(2)} GFLOP per iter)`;
    const opts = {
      name: label,
      group: name,
      baseline: kernel === "buffer",
      n: slow ? 1 : 5,
      warmup: slow ? 0 : 1,
    };
    Deno.bench(opts, async () => {
      const t0 = performance.now();
      rec.submit();
      await gpu.device.queue.onSubmittedWorkDone();
      const gflops = flop / ((performance.now() - t0) * 1e6);
      best.set(label, Math.max(best.get(label) ?? 0, gflops));
    });
  }
}

globalThis.addEventListener("unload", () => {
  console.log(`\nGFLOP/s on ${gpu.description} (best iteration):`);
  console.table(Object.fromEntries([...best].map(([k, v]) => [k, Number(v.toFixed(2))])));
});
