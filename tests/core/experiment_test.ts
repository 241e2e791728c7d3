import assert from "node:assert/strict";
import { join } from "node:path";
import { getGpu } from "@inheritune/kernels";
import {
  appendBlocks,
  type ExperimentSummary,
  type GPT2Config,
  grow,
  inherit,
  initParams,
  lossCurvesSvg,
  runExperiment,
  type VariantResult,
} from "@inheritune/core";
import { arraySource, BatchSampler } from "@inheritune/data";
import { withTempDir } from "../_util.ts";

const REF: GPT2Config = {
  n_layer: 4,
  n_head: 2,
  n_embd: 16,
  vocab_size: 32,
  n_positions: 8,
  layer_norm_epsilon: 1e-5,
  tokenizer: "bytes",
};
const reference = { config: REF, params: initParams(REF, 11) };
const tokens = (n: number, seed: number) =>
  arraySource(Array.from({ length: n }, (_, i) => (i * seed + (i >> 3)) % 32));

Deno.test("the experiment trains each variant and writes summary.json, report.md and curves.svg", async () => {
  const gpu = await getGpu();
  await withTempDir(async (out) => {
    const summary: ExperimentSummary = await runExperiment({
      gpu,
      reference,
      train: tokens(2000, 5),
      val: tokens(300, 7),
      out,
      steps: 4,
      B: 2,
      evalEvery: 2,
    });
    const inherited = summary.inherited as VariantResult;
    const scratch = summary.scratch as VariantResult;
    assert.equal(inherited.n_layer, 2);
    assert.deepEqual(inherited.blocks, [0, 1]);
    assert.equal(scratch.n_layer, 2);
    assert.equal(scratch.blocks, undefined);
    assert.deepEqual(inherited.curve!.map((p) => p[0]), [2, 4]);
    assert.equal(summary.settings.train_windows, Math.round(0.1 * Math.floor((2000 - 1) / 8)));
    const written = JSON.parse(await Deno.readTextFile(join(out, "summary.json")));
    assert.deepEqual(Object.keys(written).sort(), ["inherited", "reference", "scratch", "settings"]);
    assert.equal(written.reference.val_loss, summary.reference.val_loss);
    const report = await Deno.readTextFile(join(out, "report.md"));
    assert.match(report, /\| inherited \| 2 \|.*\| reference blocks 0,1 \|/);
    assert.match(report, /\| scratch \| 2 \|.*\| fresh init \|/);
    assert.match(
      await Deno.readTextFile(join(out, "curves.svg")),
      /^<svg[^>]*>[\s\S]*inherited[\s\S]*scratch[\s\S]*<\/svg>\n$/,
    );
    for (const variant of ["inherited", "scratch"]) await Deno.stat(join(out, variant, "model.safetensors"));
  });
});

Deno.test("appendBlocks keeps the trained blocks and adds the reference's next ones", () => {
  const trained = inherit(reference, { layers: 1 });
  trained.params.get("h.0.mlp.c_fc.weight")![0] = 42;
  const grown = appendBlocks(trained, reference, 3);
  assert.equal(grown.config.n_layer, 3);
  assert.equal(grown.params.get("h.0.mlp.c_fc.weight")![0], 42);
  assert.deepEqual(
    grown.params.get("h.2.attn.c_attn.weight"),
    reference.params.get("h.2.attn.c_attn.weight"),
  );
  assert.deepEqual(grown.params.get("wte.weight"), trained.params.get("wte.weight"));
});

Deno.test("grow adds blocks until the target matches the reference or reaches its depth", async () => {
  const gpu = await getGpu();
  const common = { gpu, reference, val: tokens(200, 3), steps: 2, B: 2, T: 8, start: 1, increment: 2 };
  const batches = () => new BatchSampler(tokens(1000, 5), { B: 2, T: 8 });
  await withTempDir(async (out) => {
    const never = await grow({ ...common, batches: batches(), out, tolerance: -1 });
    assert.deepEqual(never.stages.map((s) => s.layers), [1, 3, 4]);
    assert.ok(never.stages.every((s) => !s.matched));
    const once = await grow({ ...common, batches: batches(), out: join(out, "b"), tolerance: 100 });
    assert.deepEqual(once.stages.map((s) => [s.layers, s.matched]), [[1, true]]);
    const saved = JSON.parse(await Deno.readTextFile(join(out, "b", "grow.json")));
    assert.equal(saved.stages.length, 1);
  });
});

Deno.test("lossCurvesSvg draws one path per curve and the reference line", () => {
  const svg = lossCurvesSvg([{ name: "a", points: [[1, 3], [2, 2]] }, { name: "b<c", points: [[1, 3.5]] }], {
    reference: 2.5,
  });
  assert.equal(svg.match(/<path /g)?.length, 2);
  assert.match(svg, /stroke-dasharray/);
  assert.match(svg, /b&lt;c/);
});
