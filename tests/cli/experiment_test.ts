/** The embedded default experiment: its reference is the shipped pretrained model, and a short run end to end. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { inherit, loadModel } from "@inheritune/core";
import { EXPERIMENTS } from "../../cli/experiment.ts";
import { runCli, withTempDir } from "../_util.ts";

// models/stories260K/README.md
const STORIES_SHA256 = "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d";

Deno.test("the default experiment's reference is the shipped stories260K, and its target starts as the reference's first blocks", async () => {
  const d = EXPERIMENTS.stories;
  const bytes = await Deno.readFile(d.reference);
  assert.equal(createHash("sha256").update(bytes).digest("hex"), STORIES_SHA256);
  const reference = await loadModel(d.reference);
  assert.equal(reference.config.n_layer, 5);
  const target = inherit(reference, { layers: d.layers });
  assert.equal(target.config.n_layer, d.layers);
  assert.deepEqual(target.blocks, [0, 1]);
  for (const [name, data] of target.params) {
    // The first n blocks keep their names, so every target tensor is the reference's own, unchanged.
    assert.deepEqual(data, reference.params.get(name), name);
    assert.notEqual(data, reference.params.get(name), `${name} is a copy`);
  }
  assert.ok(
    [...reference.params.keys()].some((n) => n.startsWith("model.layers.4.")) &&
      ![...target.params.keys()].some((n) => n.startsWith("model.layers.2.")),
  );
});

Deno.test("deno task train --experiment runs the stories default end to end: report, samples, curves", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "run");
    const r = await runCli(["train", "--experiment", "--steps", "4", "--out", out]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "");
    const summary = JSON.parse(await Deno.readTextFile(join(out, "summary.json")));
    assert.deepEqual(Object.keys(summary).sort(), ["inherited", "reference", "scratch", "settings"]);
    assert.equal(summary.reference.n_layer, 5);
    assert.equal(summary.inherited.n_layer, 2);
    assert.equal(summary.inherited.tokens_trained, 4 * 8 * 256);
    assert.match(summary.reference.sample, /^Once upon a time, there was a little girl named Lily/);
    for (const name of ["inherited", "scratch"]) {
      assert.match(summary[name].sample, /^Once upon a time/, name);
      assert.ok(
        summary[name].val_loss > summary.reference.val_loss,
        `${name} is worse than the reference after 4 steps`,
      );
    }
    assert.ok(summary.inherited.val_loss < summary.scratch.val_loss, "inheriting beats a fresh start");
    const report = await Deno.readTextFile(join(out, "report.md"));
    assert.match(report, /\| inherited \| 2 \| 123,712 \| reference blocks 0,1 \| 8,192 \|/);
    assert.match(report, /## Greedy samples/);
    assert.match(await Deno.readTextFile(join(out, "curves.svg")), /^<svg /);
    // The trained models carry the reference's tokenizer.
    assert.ok((await loadModel(join(out, "inherited"))).tokenizerFiles?.has("tokenizer.model"));
  });
});
