/**
 * Causal attention forward and backward at the shapes of the project's small models. Each timed
 * call submits one launch sequence and waits once for the queue, so the time is GPU time plus one
 * ~10 ms wait. Effective GFLOP/s counts the causal half only: 4·hs flops per (query, key ≤ query)
 * pair forward (q·k and p·v), 10·hs backward (recomputed q·k, dout·v, and the dq, dk, dv products).
 * The best iteration of every case is printed as a table when the run ends.
 */
import {
  attentionBackward,
  attentionForward,
  createAttentionScratch,
  createView,
  getGpu,
  type Gpu,
  Recorder,
} from "@inheritune/kernels";

// Then Gemma 3's head size 256, and one shape without and with a sliding window of 64 (the loops
// skip the keys it masks).
const SHAPES: { B: number; T: number; C: number; NH: number; window?: number }[] = [
  { B: 8, T: 64, C: 64, NH: 2 },
  { B: 8, T: 128, C: 128, NH: 4 },
  { B: 2, T: 128, C: 512, NH: 2 },
  { B: 2, T: 512, C: 128, NH: 4 },
  { B: 2, T: 512, C: 128, NH: 4, window: 64 },
];

const gpu: Gpu = await getGpu();
const best = new Map<string, { ms: number; gflops: number }>();

for (const shape of SHAPES) {
  const { B, T, C, NH } = shape;
  const views = {
    qkv: createView(gpu, B * T * 3 * C),
    out: createView(gpu, B * T * C),
    lse: createView(gpu, B * NH * T),
    dout: createView(gpu, B * T * C),
    dqkv: createView(gpu, B * T * 3 * C),
    delta: createAttentionScratch(gpu, shape),
  };
  const { window = T } = shape;
  // Query i sees min(i + 1, window) keys.
  const pairs = Array.from({ length: T }, (_, i) => Math.min(i + 1, window)).reduce((a, b) => a + b, 0);
  const pairFlops = B * NH * (C / NH) * pairs;
  const forward = new Recorder(gpu);
  attentionForward(forward, { ...views, ...shape });
  const backward = new Recorder(gpu);
  attentionBackward(backward, { ...views, ...shape });
  const name = `B=${B} T=${T} C=${C} NH=${NH}${shape.window ? ` window=${shape.window}` : ""}`;
  for (
    const [pass, rec, flop] of [["forward", forward, 4 * pairFlops], [
      "backward",
      backward,
      10 * pairFlops,
    ]] as const
  ) {
    const label = `${pass} ${name}`;
    Deno.bench({ name: label, group: name, n: 5, warmup: 1 }, async () => {
      const t0 = performance.now();
      rec.submit();
      await gpu.device.queue.onSubmittedWorkDone();
      const ms = performance.now() - t0;
      const prev = best.get(label);
      if (!prev || ms < prev.ms) best.set(label, { ms, gflops: flop / (ms * 1e6) });
    });
  }
}

globalThis.addEventListener("unload", () => {
  console.log(`\nattention on ${gpu.description} (best iteration, including one queue wait):`);
  console.table(
    Object.fromEntries(
      [...best].map(([k, v]) => [k, { ms: Number(v.ms.toFixed(1)), "GFLOP/s": Number(v.gflops.toFixed(2)) }]),
    ),
  );
});
