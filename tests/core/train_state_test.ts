/**
 * A damaged training state is a user error (CheckpointError, DataError: exit 2 with one line), not
 * a crash: state.json that is not the state's object, an optimizer file that is truncated or
 * lacks a moment, a sampler position that is not one.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  AdamW,
  CheckpointError,
  createModel,
  loadModel,
  loadTrainingState,
  OPTIMIZER_FILE,
  saveTrainingState,
  STATE_FILE,
} from "@inheritune/core";
import { arraySource, BatchSampler, DataError } from "@inheritune/data";
import { getGpu } from "@inheritune/kernels";
import { runCli, withTempDir } from "../_util.ts";
import { FIXTURES } from "./_fixtures.ts";

/** Writes a valid training state of two moments at step 3 into `dir`. */
async function saveState(dir: string): Promise<void> {
  const moments = new Map([["m.w", new Float32Array(8)], ["v.w", new Float32Array(8)]]);
  await saveTrainingState(dir, { step: 3, moments, batches: { epoch: 0, offset: 1 } });
}

Deno.test("loadTrainingState rejects a damaged state.json or optimizer file with a CheckpointError naming it", async () => {
  const damages: [string, (dir: string) => Promise<void>, RegExp][] = [
    [
      "state.json not JSON",
      (d) => Deno.writeTextFile(join(d, STATE_FILE), '{"step": 3'),
      /state\.json: cannot resume/,
    ],
    ["state.json null", (d) => Deno.writeTextFile(join(d, STATE_FILE), "null"), /state\.json: cannot resume/],
    ["no step", (d) => Deno.writeTextFile(join(d, STATE_FILE), '{"batches": {}}'), /state\.json: no step/],
    ["negative step", (d) => Deno.writeTextFile(join(d, STATE_FILE), '{"step": -1}'), /state\.json: no step/],
    ["truncated optimizer file", async (d) => {
      const bytes = await Deno.readFile(join(d, OPTIMIZER_FILE));
      await Deno.writeFile(join(d, OPTIMIZER_FILE), bytes.subarray(0, 40));
    }, /optimizer\.safetensors/],
    [
      "steps disagree",
      (d) => Deno.writeTextFile(join(d, STATE_FILE), '{"step": 4}'),
      /from step 3, state\.json from 4/,
    ],
  ];
  for (const [what, damage, message] of damages) {
    await withTempDir(async (dir) => {
      await saveState(dir);
      await damage(dir);
      await assert.rejects(loadTrainingState(dir), (e: Error) => {
        assert.ok(e instanceof CheckpointError, `${what}: ${e.name} ${e.message}`);
        assert.match(e.message, message, what);
        return true;
      });
    });
  }
});

Deno.test("AdamW.restore rejects moments that are missing or of another size with a CheckpointError", async () => {
  const gpu = await getGpu();
  const { config, params } = await loadModel(FIXTURES + "gpt2_tiny");
  const model = createModel(gpu, config, params, { B: 1, T: 4, training: true });
  try {
    const opt = new AdamW(model);
    const full = await opt.download();
    const missing = new Map(full);
    missing.delete("v.wte.weight");
    assert.throws(() => opt.restore(missing, 1), /optimizer\.safetensors: v\.wte\.weight is missing/);
    const short = new Map(full).set("m.wpe.weight", new Float32Array(3));
    assert.throws(() => opt.restore(short, 1), CheckpointError);
    opt.restore(full, 5);
    assert.equal(opt.step, 5);
  } finally {
    model.destroy();
  }
});

Deno.test("BatchSampler.restore rejects a missing position with a DataError", () => {
  const sampler = new BatchSampler(arraySource(new Uint32Array(100)), { B: 2, T: 4 });
  for (const state of [null, undefined, 5]) {
    assert.throws(() => sampler.restore(state as never), DataError);
  }
});

Deno.test("train --resume from a damaged training state exits 2 with one line", async () => {
  await withTempDir(async (dir) => {
    const text = Array.from({ length: 40 }, (_, i) => `paragraph ${i}: the cat sat on the mat.`).join("\n\n");
    await Deno.writeTextFile(join(dir, "a.txt"), text);
    const data = join(dir, "data"), out = join(dir, "run");
    const prepared = await runCli([
      "prepare",
      "--input",
      join(dir, "a.txt"),
      "--out",
      data,
      "--tokenizer",
      "bytes",
    ]);
    assert.equal(prepared.code, 0, prepared.stderr);
    const train = [
      "train",
      "--data",
      data,
      "--out",
      out,
      "--n-layer",
      "1",
      "--n-head",
      "2",
      "--n-embd",
      "32",
    ];
    const trained = await runCli([...train, "--steps", "2", "--batch", "2", "--ctx", "16"]);
    assert.equal(trained.code, 0, trained.stderr);
    const good = await Deno.readFile(join(out, OPTIMIZER_FILE));
    const state = await Deno.readTextFile(join(out, STATE_FILE));
    const damages: [string, () => Promise<void>, RegExp][] = [
      [
        "truncated optimizer file",
        () => Deno.writeFile(join(out, OPTIMIZER_FILE), good.subarray(0, 100)),
        /optimizer\.safetensors/,
      ],
      [
        "state.json null",
        () => Deno.writeTextFile(join(out, STATE_FILE), "null"),
        /state\.json: cannot resume/,
      ],
      ["no sampler position", async () => {
        await Deno.writeTextFile(
          join(out, STATE_FILE),
          JSON.stringify({ ...JSON.parse(state), batches: null }),
        );
      }, /sampler state is null/],
    ];
    for (const [what, damage, message] of damages) {
      await damage();
      const resumed = await runCli([...train, "--steps", "4", "--batch", "2", "--ctx", "16", "--resume"]);
      assert.equal(resumed.code, 2, `${what}: ${resumed.stderr}`);
      const lines = resumed.stderr.trim().split("\n");
      assert.equal(lines.length, 1, `${what}: ${resumed.stderr}`);
      assert.match(lines[0], message, what);
      await Deno.writeFile(join(out, OPTIMIZER_FILE), good);
      await Deno.writeTextFile(join(out, STATE_FILE), state);
    }
  });
});
