import assert from "node:assert/strict";
import { learningRate } from "@inheritune/core";

Deno.test("learning rate warms up linearly, then decays by cosine to the floor", () => {
  const s = { lr: 1e-3, warmup: 10, steps: 111, minLrFraction: 0.1 };
  assert.equal(learningRate(0, s), 1e-4);
  assert.ok(Math.abs(learningRate(9, s) - 1e-3) < 1e-15);
  assert.ok(Math.abs(learningRate(10, s) - 1e-3) < 1e-15);
  assert.ok(Math.abs(learningRate(60, s) - 0.55e-3) < 1e-6, "half way is the mean of peak and floor");
  assert.ok(Math.abs(learningRate(110, s) - 1e-4) < 1e-12);
  for (let i = 11; i < 111; i++) assert.ok(learningRate(i, s) <= learningRate(i - 1, s));
});
