/**
 * `deno task export`: stories260K as Q8_0 generates stories260K's greedy text; a fixture without a
 * tokenizer still generates transformers' ids from its GGUF; bad input is one line, exit 2, and
 * leaves an existing file as it was.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type DecoderConfig, loadModel, readSafetensors, saveModel } from "@inheritune/core";
import { runCli, withTempDir } from "../_util.ts";
import { FIXTURES } from "../core/_fixtures.ts";

const STORIES = "models/stories260K/model.gguf";

/** The last line of `generate --json` on `model` with `args`. */
async function generated(model: string, args: string[]): Promise<{ ids: number[]; text: string | null }> {
  const r = await runCli(["generate", "--model", model, "--temperature", "0", "--json", ...args]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!);
}

Deno.test("stories260K exported as Q8_0 and read back generates the same greedy text", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "stories-q8_0.gguf");
    const r = await runCli(["export", "--model", STORIES, "--out", out, "--type", "q8_0"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /^wrote .*stories-q8_0\.gguf: llama, 47 tensors \(31 Q8_0, 11 F32, 5 F16\), \d+ keys, /,
    );
    assert.match(
      r.stdout,
      /^note: 5 tensors \(blk\.0\.ffn_down\.weight, \.\.\.\): rows of 172 are not whole Q8_0/m,
    );
    const [want, got] = [
      await generated(STORIES, ["--max-new-tokens", "30"]),
      await generated(out, ["--max-new-tokens", "30"]),
    ];
    assert.equal(got.ids.length, 31);
    assert.deepEqual(got, want);
    assert.match(got.text!, /^Once upon a time, there was a little girl named Lily\./);
  });
});

Deno.test("qwen2_tiny, which has no tokenizer, exported as f32: transformers' greedy ids from --prompt-ids", async () => {
  const { tensors } = await readSafetensors(join(FIXTURES, "qwen2_tiny_expected.safetensors"));
  const prompt = [...tensors.get("greedy_prompt")!.data], greedy = [...tensors.get("greedy")!.data];
  await withTempDir(async (dir) => {
    const out = join(dir, "qwen2.gguf");
    const r = await runCli([
      "export",
      "--model",
      join(FIXTURES, "qwen2_tiny"),
      "--out",
      out,
      "--type",
      "f32",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const json = await generated(out, [
      "--prompt-ids",
      prompt.join(","),
      "--max-new-tokens",
      String(greedy.length),
    ]);
    assert.deepEqual(json, { ids: [...prompt, ...greedy], text: null });
  });
});

Deno.test("export rejects bad input with one line and exit code 2, an existing file left as it was", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "kept.gguf");
    await Deno.writeTextFile(out, "an older export");
    // A Qwen2 with Llama 3's RoPE scaling: llama.cpp's qwen2 has no per-frequency divisors.
    const qwen = await loadModel(join(FIXTURES, "qwen2_tiny"));
    const scaled = join(dir, "qwen2-llama3-rope");
    const rope_scaling = {
      rope_type: "llama3",
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 64,
    } as const;
    await saveModel(scaled, { ...qwen, config: { ...qwen.config, rope_scaling } as DecoderConfig });
    const cases: [string[], RegExp][] = [
      [
        ["--model", STORIES, "--out", out, "--type", "q5_k"],
        /--type must be one of f32, f16, q8_0, q4_0, q4_k, q6_k, got "q5_k"$/,
      ],
      [
        ["--model", STORIES, "--out", join(dir, "model.bin")],
        /--out must name a \.gguf file, got ".*model\.bin"$/,
      ],
      [["--model", STORIES, "--out", join(dir, "nope", "x.gguf")], /--out: folder .*nope does not exist$/],
      [["--model", join(dir, "missing"), "--out", out], /missing: cannot read/],
      [["--model", STORIES], /--out is required$/],
      [
        ["--model", scaled, "--out", out],
        /kept\.gguf: qwen2's RoPE scaling as per-frequency divisors \(rope_freqs, Llama 3's\) has no form/,
      ],
    ];
    for (const [args, pattern] of cases) {
      const r = await runCli(["export", ...args]);
      assert.equal(r.code, 2, `${args}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.ok(r.stderr.startsWith("inheritune export: "), r.stderr);
      assert.match(r.stderr.trim(), pattern);
    }
    assert.equal(await Deno.readTextFile(out), "an older export");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
      "kept.gguf",
      "qwen2-llama3-rope",
    ]);
  });
});
