import assert from "node:assert/strict";
import { join } from "node:path";
import { type GPT2Config, initParams, loadModel, saveModel } from "@inheritune/core";
import { runCli, withTempDir } from "../_util.ts";

const REF: GPT2Config = {
  n_layer: 4,
  n_head: 2,
  n_embd: 8,
  vocab_size: 16,
  n_positions: 4,
  layer_norm_epsilon: 1e-5,
  tokenizer: "bytes",
};

Deno.test("deno task inherit writes the derived model folder", async () => {
  await withTempDir(async (dir) => {
    await saveModel(join(dir, "ref"), { config: REF, params: initParams(REF, 1) });
    const r = await runCli([
      "inherit",
      "--reference",
      join(dir, "ref"),
      "--layers",
      "2",
      "--select",
      "last",
      "--out",
      join(dir, "t"),
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /blocks 2,3 of/);
    const target = await loadModel(join(dir, "t"));
    assert.equal(target.config.n_layer, 2);
  });
});

Deno.test("nonsensical inheritance flags fail with one line and exit code 2", async () => {
  await withTempDir(async (dir) => {
    const ref = join(dir, "ref");
    await saveModel(ref, { config: REF, params: initParams(REF, 1) });
    const out = join(dir, "t");
    const cases: [string[], RegExp][] = [
      [["--layers", "0"], /at least 1, got 0/],
      [["--layers", "5"], /cannot inherit 5 blocks from a reference with 4/],
      [["--select", "list", "--blocks", "1,7"], /block 7 does not exist/],
      [["--blocks", "1,x"], /--blocks must list block indices/],
      [["--layers", "2", "--select", "middle"], /unknown selection "middle"/],
      [["--layers", "2", "--only", "ffn"], /unknown --only "ffn"/],
      [["--layers", "two"], /--layers must be an integer/],
    ];
    for (const [flags, pattern] of cases) {
      const r = await runCli(["inherit", "--reference", ref, "--out", out, ...flags]);
      assert.equal(r.code, 2, `${flags.join(" ")}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.match(r.stderr, pattern);
    }
    const missing = await runCli([
      "inherit",
      "--reference",
      join(dir, "nope"),
      "--layers",
      "1",
      "--out",
      out,
    ]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /nope/);
    await assert.rejects(Deno.stat(out), "no model was written by a failed call");
  });
});
