import assert from "node:assert/strict";
import { join } from "node:path";
import { getGpu } from "@inheritune/kernels";
import {
  appendBlocks,
  type Checkpoint,
  createModel,
  type ExperimentSummary,
  type GPT2Config,
  grow,
  inherit,
  initParams,
  lossCurvesSvg,
  niceTicks,
  runExperiment,
  validationLoss,
  type VariantResult,
} from "@inheritune/core";
import { arraySource, BatchSampler } from "@inheritune/data";
import { assertClose, rand, withTempDir } from "../_util.ts";

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
  const val = tokens(300, 7);
  await withTempDir(async (out) => {
    const summary: ExperimentSummary = await runExperiment({
      gpu,
      reference,
      train: tokens(2000, 5),
      val,
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
    assert.deepEqual(inherited.curve!.map((p) => p[0]), [0, 2, 4]);
    // Step 0 is each target's loss before training: the inherited blocks, or a fresh init.
    const before = async (target: Checkpoint): Promise<number> => {
      const model = createModel(gpu, target.config, target.params, { B: 2, T: REF.n_positions });
      try {
        return (await validationLoss(model, val)).loss;
      } finally {
        model.destroy();
      }
    };
    const fresh = { config: { ...REF, n_layer: 2 }, params: initParams({ ...REF, n_layer: 2 }, 1337) };
    assertClose(
      [inherited.curve![0][1]],
      [await before(inherit(reference, { layers: 2 }))],
      1e-6,
      "inherited",
    );
    assertClose([scratch.curve![0][1]], [await before(fresh)], 1e-6, "scratch at step 0");
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

Deno.test("niceTicks steps by 1, 2 or 5 times a power of ten and spans the data", () => {
  assert.deepEqual(niceTicks(3.26, 5.143), { values: [3, 3.5, 4, 4.5, 5, 5.5], decimals: 1 });
  assert.deepEqual(niceTicks(0, 60), { values: [0, 20, 40, 60], decimals: 0 });
  assert.deepEqual(niceTicks(0, 300), { values: [0, 100, 200, 300], decimals: 0 });
  assert.deepEqual(niceTicks(0.012, 0.049), { values: [0.01, 0.02, 0.03, 0.04, 0.05], decimals: 2 });
  assert.deepEqual(niceTicks(2, 2).values, [1.4, 1.6, 1.8, 2, 2.2, 2.4, 2.6]);
  const bounds = rand(200, 17, 50);
  for (let i = 0; i < bounds.length; i += 2) {
    const [min, max] = [Math.min(bounds[i], bounds[i + 1]), Math.max(bounds[i], bounds[i + 1])];
    const { values, decimals } = niceTicks(min, max);
    const step = values[1] - values[0];
    const mantissa = Number((step / 10 ** Math.floor(Math.log10(step) + 1e-9)).toFixed(6));
    assert.ok([1, 2, 5].includes(mantissa), `step ${step} for [${min}, ${max}]`);
    assert.ok(
      values[0] <= min && values.at(-1)! >= max,
      `[${values[0]}, ${values.at(-1)}] ⊇ [${min}, ${max}]`,
    );
    assert.ok(values.length >= 3 && values.length <= 13, `${values.length} ticks`);
    for (const v of values) assert.equal(Number(v.toFixed(decimals)), v);
  }
});

/** The y axis's tick labels of a chart, bottom up, and its reference label with its y. */
function yAxis(svg: string): { ticks: string[]; reference?: { text: string; y: number } } {
  const ticks = [...svg.matchAll(/<text x="54" y="[\d.]+" text-anchor="end">([^<]*)<\/text>/g)].map((m) =>
    m[1]
  );
  const ref = svg.match(/<text class="reference-value" x="54" y="([\d.]+)"[^>]*>([^<]*)<\/text>/);
  return { ticks, reference: ref ? { text: ref[2], y: Number(ref[1]) } : undefined };
}

Deno.test("lossCurvesSvg puts round ticks on both axes, step 0 on the y axis and the reference's value on it", () => {
  const curves = [
    { name: "inherited", points: [[0, 3.9], [25, 3.5], [50, 3.26]] as [number, number][] },
    { name: "scratch", points: [[0, 5.143], [25, 4.2], [50, 3.6]] as [number, number][] },
  ];
  const svg = lossCurvesSvg(curves, { reference: 3.3 });
  const axis = yAxis(svg);
  assert.deepEqual(axis.ticks, ["3.0", "3.5", "4.0", "4.5", "5.0", "5.5"]);
  const dashed = svg.match(/<line x1="60" y1="([\d.]+)" x2="490" y2="\1" stroke="#555" stroke-dasharray/);
  assert.ok(dashed, "a dashed reference line across the plot");
  assert.deepEqual(axis.reference, { text: "3.300", y: Number(dashed[1]) + 4 });
  const xLabels = [...svg.matchAll(/<text x="[\d.]+" y="366" text-anchor="middle">([^<]*)<\/text>/g)];
  assert.deepEqual(xLabels.map((m) => m[1]), ["0", "10", "20", "30", "40", "50"]);
  for (const path of svg.matchAll(/<path d="M([\d.]+),/g)) {
    assert.equal(path[1], "60.0", "a curve starts on the y axis");
  }
  // A reference on a tick takes that tick's label.
  const onTick = yAxis(lossCurvesSvg(curves, { reference: 3.5 }));
  assert.deepEqual(onTick.ticks, ["3.0", "4.0", "4.5", "5.0", "5.5"]);
  assert.equal(yAxis(lossCurvesSvg(curves)).reference, undefined);
});
