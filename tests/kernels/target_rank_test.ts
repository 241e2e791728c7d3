/** The greedy-rank kernel against its CPU reference. */
import assert from "node:assert/strict";
import {
  createView,
  getGpu,
  IGNORE_INDEX,
  read,
  Recorder,
  targetRank,
  targetRankCpu,
  upload,
} from "@inheritune/kernels";
import { rand } from "../_util.ts";

Deno.test("targetRank counts the logits above the target's, -1 where ignored, as its CPU reference", async () => {
  const gpu = await getGpu();
  for (const [BT, C, V] of [[1, 3, 5], [5, 7, 67], [9, 16, 130]]) {
    const inp = rand(BT * C, 11 + BT, 1);
    const wte = rand(V * C, 23 + V, 1);
    const targets = Uint32Array.from({ length: BT }, (_, r) => (r % 4 === 3 ? IGNORE_INDEX : (r * 37) % V));
    const out = createView(gpu, BT);
    const rec = new Recorder(gpu);
    targetRank(rec, {
      out,
      inp: upload(gpu, inp),
      wte: upload(gpu, wte),
      targets: upload(gpu, targets),
      BT,
      C,
      V,
    });
    rec.submit();
    const got = await read(gpu, out);
    assert.deepEqual([...got], [...targetRankCpu(inp, wte, targets, { BT, C, V })], `BT=${BT} C=${C} V=${V}`);
  }
});
