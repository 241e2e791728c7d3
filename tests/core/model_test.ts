/**
 * `createModel` (core/model.ts) with parameters that do not fit the configuration's table: a
 * caller's bug, refused before anything is allocated with the same one-line problem `saveModel`
 * gives, and not as a `GpuError` (an error users cause, printed as one line and exit 2).
 */
import assert from "node:assert/strict";
import { getGpu, GpuError } from "@inheritune/kernels";
import { createModel, type GPT2Config, initParams, type ParamMap } from "@inheritune/core";
import { UserError } from "@inheritune/data";

const CONFIG: GPT2Config = {
  n_layer: 1,
  n_head: 2,
  n_embd: 8,
  vocab_size: 16,
  n_positions: 8,
  layer_norm_epsilon: 1e-5,
};

const CASES: [string, (p: ParamMap) => void, RegExp][] = [
  ["missing", (p) => p.delete("wpe.weight"), /^createModel: parameter wpe\.weight is missing$/],
  [
    "of the wrong size",
    (p) => p.set("ln_f.bias", new Float32Array(3)),
    /^createModel: parameter ln_f\.bias has 3 values, shape \[8\] needs 8$/,
  ],
  [
    "not in the table",
    (p) => p.set("h.1.ln_1.weight", new Float32Array(8)),
    /^createModel: parameter h\.1\.ln_1\.weight is not part of the configured model$/,
  ],
];

for (const [what, spoil, message] of CASES) {
  Deno.test(`createModel refuses a parameter ${what} as a programming error, not a GpuError`, async () => {
    const gpu = await getGpu();
    const params = initParams(CONFIG, 1);
    spoil(params);
    assert.throws(() => createModel(gpu, CONFIG, params, { B: 1, T: 4 }), (e: Error) => {
      assert.ok(!(e instanceof GpuError) && !(e instanceof UserError), `${e.name} is a user error`);
      assert.match(e.message, message);
      return true;
    });
  });
}
