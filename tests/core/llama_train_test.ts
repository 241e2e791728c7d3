/**
 * The method on a real pretrained LLaMA: inherit stories260K's first 2 blocks, train 50 steps on
 * held-out TinyStories text, and the validation loss falls; the diagnostics run on the result.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  checkpointTokenizer,
  createModel,
  inherit,
  loadModel,
  train,
  validationLoss,
} from "@inheritune/core";
import { BatchSampler, openDataset, prepare } from "@inheritune/data";
import { analyzeModel } from "@inheritune/eval";
import { getGpu } from "@inheritune/kernels";
import { withTempDir } from "../_util.ts";

const STORIES = new URL("../../models/stories260K/model.gguf", import.meta.url).pathname;
const TEXT = new URL("../../corpora/tinystories/valid_head.txt", import.meta.url).pathname;

Deno.test("stories260K's first 2 blocks, trained 50 steps on TinyStories, lower their validation loss; analyze runs on them", async () => {
  await withTempDir(async (dir) => {
    const reference = await loadModel(STORIES);
    const tokenizer = await checkpointTokenizer(reference, STORIES);
    const text = join(dir, "stories.txt");
    await Deno.writeTextFile(text, (await Deno.readTextFile(TEXT)).slice(0, 120_000));
    await prepare({
      inputs: [text],
      out: join(dir, "data"),
      tokenizer,
      documents: "paragraphs",
      valFraction: 0.2,
    });
    using data = await openDataset(join(dir, "data"));
    const val = data.split("val");
    const target = inherit(reference, { layers: 2 });
    const gpu = await getGpu();
    const [B, T] = [4, 64];
    const before = createModel(gpu, target.config, target.params, { B, T });
    const initial = (await validationLoss(before, val)).loss;
    before.destroy();
    const result = await train({
      gpu,
      config: target.config,
      params: target.params,
      tokenizerFiles: target.tokenizerFiles,
      batches: new BatchSampler(data.split("train"), { B, T, shuffle: true, seed: 1 }),
      val,
      out: join(dir, "run"),
      steps: 50,
      B,
      T,
      lr: 2e-3,
      warmup: 5,
    });
    assert.ok(result.valLoss! < initial - 0.3, `val loss ${initial} → ${result.valLoss}`);
    const analysis = await analyzeModel({ config: target.config, params: result.params }, val, {
      T: 32,
      windows: 2,
    });
    assert.equal(analysis.blocks.length, 2);
    assert.deepEqual([...analysis.ranking].sort(), [0, 1]);
    for (const head of analysis.blocks[0].heads) {
      assert.ok(head.rank90 >= 1 && head.rank90 <= 32, `rank90 ${head.rank90}`);
      assert.ok(head.rankOne > 0 && head.rankOne <= 1 + 1e-9);
    }
    assert.equal(analysis.blocks[0].heads.length, 8);
  });
});
