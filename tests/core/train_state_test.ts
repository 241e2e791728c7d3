/**
 * A damaged training state is a user error (CheckpointError, DataError: exit 2 with one line), not
 * a crash: state.json that is not the state's object, an optimizer file that is truncated or
 * lacks a moment, a sampler position that is not one. A run's checkpoint folders: the newest K
 * kept, unfinished saves removed, damaged ones set aside, a failed save leaving the previous one.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  AdamW,
  CheckpointError,
  checkpointFolder,
  CHECKPOINTS_DIR,
  createModel,
  latestRunCheckpoint,
  loadModel,
  loadTrainingState,
  MANIFEST_FILE,
  METRICS_FILE,
  OPTIMIZER_FILE,
  type RunCheckpointData,
  saveRunCheckpoint,
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

/** A run's checkpoint at `step` of the tiny fixture model, its moments all `step`. */
async function checkpointAt(step: number): Promise<RunCheckpointData> {
  const model = await loadModel(FIXTURES + "gpt2_tiny");
  const moments = new Map([...model.params].map(([name, p]) => [`m.${name}`, p.map(() => step)]));
  const metrics = Array.from({ length: step }, (_, i) => JSON.stringify({ step: i + 1 }) + "\n").join("");
  return {
    model,
    state: { step, moments, batches: { epoch: 0, offset: step }, tokens: 32 * step, elapsed_s: step / 10 },
    metrics: new TextEncoder().encode(metrics),
  };
}

Deno.test("saveRunCheckpoint keeps the newest K and links the newest model into the run folder", async () => {
  await withTempDir(async (out) => {
    for (const step of [1, 2, 3]) await saveRunCheckpoint(out, await checkpointAt(step), { keep: 2 });
    const names = (await Array.fromAsync(Deno.readDir(join(out, CHECKPOINTS_DIR)))).map((e) => e.name).sort();
    assert.deepEqual(names, ["step-00000002", "step-00000003"]);
    const newest = checkpointFolder(out, 3);
    for (const file of [MANIFEST_FILE, METRICS_FILE, OPTIMIZER_FILE, STATE_FILE, "model.safetensors"]) {
      await Deno.stat(join(newest, file));
    }
    const [top, saved] = [
      await Deno.stat(join(out, "model.safetensors")),
      await Deno.stat(join(newest, "model.safetensors")),
    ];
    assert.equal(top.ino, saved.ino, "the run folder's model is a link to the newest checkpoint's");
    const state = await loadTrainingState(newest);
    assert.deepEqual([state.step, state.tokens, state.elapsed_s], [3, 96, 0.3]);
    assert.ok([...(await Array.fromAsync(Deno.readDir(out)))].every((e) => !e.name.startsWith(".")));
  });
});

Deno.test("latestRunCheckpoint removes unfinished saves, sets a damaged newest aside and takes the one before", async () => {
  await withTempDir(async (out) => {
    assert.deepEqual(await latestRunCheckpoint(out), { notes: [] }, "no checkpoints: none, no notes");
    for (const step of [4, 8]) await saveRunCheckpoint(out, await checkpointAt(step));
    // a save killed midway: its temporary folder, and a file of the run folder half-written
    const unfinished = join(out, CHECKPOINTS_DIR, ".step-00000012.0badcafe.tmp");
    await Deno.mkdir(unfinished);
    await Deno.writeTextFile(join(unfinished, "config.json"), "{");
    await Deno.writeTextFile(join(out, ".metrics.jsonl.0badcafe.tmp"), "{");
    // the newest checkpoint cut short afterwards
    const weights = join(checkpointFolder(out, 8), OPTIMIZER_FILE);
    const bytes = await Deno.readFile(weights);
    await Deno.writeFile(weights, bytes.subarray(0, bytes.length - 4));
    const { checkpoint, notes } = await latestRunCheckpoint(out);
    assert.deepEqual(checkpoint, { dir: checkpointFolder(out, 4), step: 4 });
    assert.equal(notes.length, 3, notes.join("\n"));
    assert.match(
      notes.join("\n"),
      /\.metrics\.jsonl\.0badcafe\.tmp: a file whose write did not finish; removed/,
    );
    assert.match(notes.join("\n"), /step-00000012\.0badcafe\.tmp: a save that did not finish; removed/);
    assert.match(
      notes.join("\n"),
      new RegExp(
        `step-00000008: ${OPTIMIZER_FILE} has ${bytes.length - 4} bytes, not ${bytes.length}; set aside`,
      ),
    );
    const names = (await Array.fromAsync(Deno.readDir(join(out, CHECKPOINTS_DIR)))).map((e) => e.name).sort();
    assert.deepEqual(names, ["step-00000004", "step-00000008.damaged"]);
    // a file that still has its size but other bytes fails the hash
    const state = join(checkpointFolder(out, 4), STATE_FILE);
    const text = await Deno.readTextFile(state);
    await Deno.writeTextFile(state, text.replace('"offset": 4', '"offset": 5'));
    const second = await latestRunCheckpoint(out);
    assert.equal(second.checkpoint, undefined);
    assert.match(second.notes[0], /step-00000004: state\.json does not match its SHA-256; set aside/);
  });
});

Deno.test("a failed save removes its temporary folder and leaves the previous checkpoint as it was", async () => {
  await withTempDir(async (out) => {
    await saveRunCheckpoint(out, await checkpointAt(1));
    // the moments of a parameter the model does not have cannot be written: a tensor name that is
    // not one makes writeSafetensors fail midway, after the model files
    const bad = await checkpointAt(2);
    bad.state.moments.set("__metadata__", new Float32Array(1));
    await assert.rejects(saveRunCheckpoint(out, bad), (e: Error) => {
      assert.ok(e instanceof CheckpointError);
      assert.match(
        e.message,
        /step-00000002\/optimizer\.safetensors: __metadata__ is not a valid tensor name/,
      );
      return true;
    });
    const names = (await Array.fromAsync(Deno.readDir(join(out, CHECKPOINTS_DIR)))).map((e) => e.name);
    assert.deepEqual(names, ["step-00000001"], "no temporary folder left");
    assert.deepEqual((await latestRunCheckpoint(out)).checkpoint?.step, 1);
  });
});

Deno.test("train --resume: a folder without a checkpoint is one line; a damaged one is set aside with a note", async () => {
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
    // deno-fmt-ignore
    const train = [
      "train", "--data", data, "--out", out, "--n-layer", "1", "--n-head", "2", "--n-embd", "32",
      "--batch", "2", "--ctx", "16", "--save-every", "1",
    ];
    const none = await runCli([...train, "--steps", "2", "--resume"]);
    assert.equal(none.code, 2, none.stderr);
    assert.deepEqual(none.stderr.trim().split("\n"), [
      `inheritune train: ${out}: no checkpoint to resume from`,
    ]);
    const trained = await runCli([...train, "--steps", "2"]);
    assert.equal(trained.code, 0, trained.stderr);
    const again = await runCli([...train, "--steps", "2"]);
    assert.equal(again.code, 2, "a new run does not overwrite a run's checkpoints");
    assert.match(again.stderr, /holds a run's checkpoints \(up to step 2\): add --resume/);
    const moments = join(checkpointFolder(out, 2), OPTIMIZER_FILE);
    await Deno.writeFile(moments, (await Deno.readFile(moments)).subarray(0, 100));
    const resumed = await runCli([...train, "--steps", "3", "--resume"]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stdout, /step-00000002: optimizer\.safetensors has 100 bytes, not \d+; set aside/);
    assert.match(resumed.stdout, /resuming from step 1 /);
    assert.match(resumed.stdout, /done: step 3/);
  });
});

Deno.test("a checkpoint whose state and moments disagree behind its manifest is refused, naming both", async () => {
  await withTempDir(async (out) => {
    await saveRunCheckpoint(out, await checkpointAt(3));
    const dir = checkpointFolder(out, 3);
    const state = JSON.parse(await Deno.readTextFile(join(dir, STATE_FILE)));
    await Deno.writeTextFile(join(dir, STATE_FILE), JSON.stringify({ ...state, step: 4 }));
    await assert.rejects(loadTrainingState(dir), /optimizer\.safetensors is from step 3, state\.json from 4/);
  });
});
