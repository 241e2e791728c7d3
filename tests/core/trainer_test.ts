import assert from "node:assert/strict";
import { join } from "node:path";
import { getGpu } from "@inheritune/kernels";
import {
  GPT2,
  type GPT2Config,
  initParams,
  latestRunCheckpoint,
  loadModel,
  train,
  validationLoss,
} from "@inheritune/core";
import { arraySource, BatchSampler } from "@inheritune/data";
import { rand, withTempDir } from "../_util.ts";

const TINY: GPT2Config = {
  n_layer: 1,
  n_head: 2,
  n_embd: 32,
  vocab_size: 64,
  n_positions: 16,
  layer_norm_epsilon: 1e-5,
  tokenizer: "bytes",
};

/** A token stream with structure (a noisy repeating pattern) so that a model can learn it. */
function stream(n: number, seed: number): Uint32Array {
  const noise = rand(n, seed);
  return Uint32Array.from(
    { length: n },
    (_, i) => (noise[i] > 0.8 ? Math.floor((noise[i] + 1) * 31) : (i * 7) % 23),
  );
}

Deno.test("training on one repeated batch drives the loss below 0.1", async () => {
  const gpu = await getGpu();
  const B = 2, T = 16;
  const tokens = Uint32Array.from(rand(B * (T + 1), 5), (x) => Math.floor((x + 1) * 32));
  const batch = {
    inputs: Uint32Array.from({ length: B * T }, (_, i) => tokens[Math.floor(i / T) * (T + 1) + (i % T)]),
    targets: Uint32Array.from({ length: B * T }, (_, i) => tokens[Math.floor(i / T) * (T + 1) + (i % T) + 1]),
    epoch: 0,
  };
  await withTempDir(async (out) => {
    const result = await train({
      gpu,
      config: TINY,
      params: initParams(TINY, 1),
      batches: { next: () => batch, state: () => null, restore: () => {} },
      out,
      steps: 150,
      B,
      T,
      lr: 1e-2,
      logEvery: 25,
      adamw: { weightDecay: 0 },
    });
    assert.ok(result.loss < 0.1, `final loss ${result.loss}`);
    assert.ok(result.loss < result.history[0].loss);
    const lines = (await Deno.readTextFile(join(out, "metrics.jsonl"))).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assert.deepEqual(lines.map((m) => m.step), [25, 50, 75, 100, 125, 150]);
    for (const m of lines) assert.ok(m.tokens_per_s > 0 && m.lr > 0 && Number.isFinite(m.loss));
  });
});

Deno.test("a run stopped and resumed ends with the same parameters as an uninterrupted run", async () => {
  const gpu = await getGpu();
  const data = arraySource(stream(4000, 3));
  const val = arraySource(stream(600, 4));
  const common = {
    gpu,
    config: TINY,
    B: 2,
    T: 16,
    steps: 8,
    lr: 3e-3,
    warmup: 2,
    logEvery: 1,
    val,
    evalEvery: 4,
  };
  const sampler = () => new BatchSampler(data, { B: 2, T: 16, shuffle: true, seed: 9 });
  await withTempDir(async (dir) => {
    const straight = await train({
      ...common,
      params: initParams(TINY, 2),
      batches: sampler(),
      out: join(dir, "a"),
    });
    const stop = new AbortController();
    const first = await train({
      ...common,
      params: initParams(TINY, 2),
      batches: sampler(),
      out: join(dir, "b"),
      signal: stop.signal,
      onMetrics: (m) => m.step === 3 && stop.abort(),
    });
    // metrics arrive asynchronously, so the step already submitted when the stop came still runs
    assert.ok(first.step === 3 || first.step === 4, `stopped at step ${first.step}`);
    assert.ok(first.stopped);
    const { checkpoint } = await latestRunCheckpoint(join(dir, "b"));
    assert.equal(checkpoint?.step, first.step);
    const saved = await loadModel(checkpoint!.dir);
    const resumed = await train({
      ...common,
      params: saved.params,
      batches: sampler(),
      out: join(dir, "b"),
      resume: checkpoint!.dir,
    });
    assert.equal(resumed.step, 8);
    assert.equal(resumed.stopped, false);
    for (const [name, p] of straight.params) assert.deepEqual(resumed.params.get(name), p, name);
    assert.equal(resumed.valLoss, straight.valLoss);
    const lines = async (run: string) =>
      (await Deno.readTextFile(join(dir, run, "metrics.jsonl"))).trim().split("\n").map((l) => JSON.parse(l));
    const [a, b] = [await lines("a"), await lines("b")];
    assert.deepEqual(b.map((m) => m.step), [1, 2, 3, 4, 5, 6, 7, 8]);
    // tokens and losses continue as if never stopped; elapsed_s goes on from the checkpoint's
    const exact = (m: Record<string, number>) => [m.step, m.loss, m.lr, m.tokens, m.val_loss, m.epoch];
    assert.deepEqual(b.map(exact), a.map(exact));
    assert.ok(b.every((m, i) => i === 0 || m.elapsed_s >= b[i - 1].elapsed_s), "elapsed_s never goes back");
  });
});

Deno.test("validation loss scores every complete window once, whatever the batch size", async () => {
  const gpu = await getGpu();
  const params = initParams(TINY, 6);
  const data = arraySource(stream(16 * 5 + 3, 8)); // 5 complete windows of T+1, the rest dropped
  const results = [];
  for (const B of [1, 2, 5]) {
    const model = GPT2.create(gpu, TINY, params, { B, T: 16 });
    results.push(await validationLoss(model, data));
    model.destroy();
  }
  for (const r of results) {
    assert.equal(r.tokens, 80);
    assert.ok(Math.abs(r.loss - results[0].loss) < 1e-6, `${r.loss} vs ${results[0].loss}`);
    assert.ok(Math.abs(r.perplexity - Math.exp(r.loss)) < 1e-9);
  }
  const limited = await validationLoss(GPT2.create(gpu, TINY, params, { B: 2, T: 16 }), data, {
    maxTokens: 40,
  });
  assert.equal(limited.tokens, 32);
});
