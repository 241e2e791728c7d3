/**
 * The LLaMA-like families on the one decoder, against transformers 5.18 (`scripts/family_fixtures.py`,
 * `tests/fixtures/FAMILIES.md`): each tiny model with every feature of its family on. Its
 * `config.json` in v4 and v5 form, its GGUF file and the folder we write all give the same model;
 * where the kernels run every feature, the logits, loss, every gradient, two AdamW steps and the
 * greedy ids equal transformers'.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  ConfigError,
  createModel,
  type DecoderConfig,
  generate,
  inherit,
  loadModel,
  paramSpecs,
  readSafetensors,
  saveModel,
  train,
} from "@inheritune/core";
import { arraySource, BatchSampler } from "@inheritune/data";
import { getGpu } from "@inheritune/kernels";
import { assertClose, assertCloseNorm, runCli, withTempDir } from "../_util.ts";
import { llamaGguf, tinyLlama } from "./_model_files.ts";
import {
  assertPassMatches,
  assertStepsMatch,
  FAMILY_FIXTURES,
  fixture,
  FIXTURES,
  forwardBackward,
  twoSteps,
} from "./_fixtures.ts";

/** A copy of fixture `name`'s folder with `config_v5.json` as its `config.json`. */
async function v5Folder(dir: string, name: string): Promise<string> {
  const src = join(FIXTURES, name);
  await Deno.copyFile(join(src, "config_v5.json"), join(dir, "config.json"));
  await Deno.copyFile(join(src, "model.safetensors"), join(dir, "model.safetensors"));
  return dir;
}

for (const c of FAMILY_FIXTURES) {
  Deno.test(`${c.name}: config.json in v4 and in v5 form give the same ${c.family} configuration`, async () => {
    await withTempDir(async (dir) => {
      const v4 = await loadModel(join(FIXTURES, c.name));
      const v5 = await loadModel(await v5Folder(dir, c.name));
      assert.equal(v4.config.family, c.family);
      assert.deepEqual(v5.config, v4.config);
    });
  });

  Deno.test(`${c.name}: the folder we write loads back as the same model, in the family's layout`, async () => {
    await withTempDir(async (dir) => {
      const model = await loadModel(join(FIXTURES, c.name));
      await saveModel(dir, model);
      const back = await loadModel(dir);
      assert.deepEqual(back.config, model.config);
      assert.deepEqual([...back.params.keys()], [...model.params.keys()]);
      for (const [name, p] of model.params) assert.deepEqual(back.params.get(name), p, name);
      const json = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
      assert.equal(json.model_type, c.family);
      // The stored tensors are the ones transformers' own files hold, by name and shape.
      const ours = (await readSafetensors(join(dir, "model.safetensors"))).tensors;
      const theirs = (await readSafetensors(join(FIXTURES, c.name, "model.safetensors"))).tensors;
      assert.deepEqual(
        new Map([...ours].map(([k, t]) => [k, t.shape])),
        new Map([...theirs].map(([k, t]) => [k, t.shape])),
      );
    });
  });

  if (c.runs) {
    Deno.test(`${c.name}: logits, loss and every gradient equal transformers'`, async () => {
      const fx = await fixture(c.name);
      assertPassMatches(fx, await forwardBackward(fx));
    });

    Deno.test(`${c.name}: two AdamW steps with clipping equal transformers'`, async () => {
      const fx = await fixture(c.name);
      assertStepsMatch(fx, await twoSteps(fx));
    });

    Deno.test(`${c.name}: 2 inherited blocks trained 20 steps lower the loss`, async () => {
      const reference = await loadModel(join(FIXTURES, c.name));
      const target = inherit(reference, { layers: 2 });
      // A cycle of 37 ids, learnable in 20 steps of 4 windows of 16.
      const V = reference.config.vocab_size;
      const ids = Uint32Array.from({ length: 2000 }, (_, i) => ((i % 37) * 17 + 3) % V);
      await withTempDir(async (dir) => {
        const { history } = await train({
          gpu: await getGpu(),
          config: target.config,
          params: target.params,
          batches: new BatchSampler(arraySource(ids), { B: 4, T: 16, shuffle: true, seed: 1 }),
          out: dir,
          steps: 20,
          B: 4,
          T: 16,
          lr: 3e-3,
          warmup: 2,
          logEvery: 1,
        });
        const losses = history.map((m) => m.loss);
        const last = losses.slice(-5).reduce((a, b) => a + b) / 5;
        assert.equal(losses.length, 20);
        assert.ok(last < losses[0] - 0.5, `losses ${losses.map((l) => l.toFixed(3)).join(" ")}`);
      });
    });

    Deno.test(`${c.name}: greedy decoding gives transformers' ids`, async () => {
      const fx = await fixture(c.name);
      const ids = await generate(await getGpu(), fx, {
        prompt: [...fx.get("greedy_prompt")],
        maxNewTokens: fx.get("greedy").length,
      });
      assert.deepEqual(ids, [...fx.get("greedy")]);
    });
  }

  if (c.gguf) {
    Deno.test(`${c.name}: its GGUF file loads as the same model`, async () => {
      const hf = await loadModel(join(FIXTURES, c.name));
      const gguf = await loadModel(join(FIXTURES, c.name, "model.gguf"));
      assert.deepEqual({ ...gguf.config }, { ...hf.config });
      assert.deepEqual([...gguf.params.keys()], [...hf.params.keys()]);
      // Exact, but for Gemma's norms stored as 1 + w: one f32 rounding of 1 + w.
      for (const [name, p] of hf.params) assertCloseNorm(gguf.params.get(name)!, p, 1e-6, name);
    });
  }
}

Deno.test("a head longer than the attention kernels take is refused with one line when the model is created", async () => {
  const fx = await fixture("gemma3_text_tiny");
  const gpu = await getGpu();
  const config = { ...fx.config, head_dim: 512 } as DecoderConfig;
  assert.throws(
    () => createModel(gpu, config, fx.params, { B: fx.B, T: fx.T }),
    (e) =>
      e instanceof ConfigError &&
      e.message === "gemma3_text: head size 512 exceeds the attention kernels' 256",
  );
});

Deno.test("llama3_tiny's GGUF states Llama 3's scaling as rope_freqs: the HF folder's weights and logits", async () => {
  const hf = await loadModel(join(FIXTURES, "llama3_tiny"));
  const fx = await fixture("llama3_tiny");
  for (const file of ["model.gguf", "model_f16.gguf"]) {
    const gguf = await loadModel(join(FIXTURES, "llama3_tiny", file));
    const config = gguf.config as DecoderConfig;
    // llama.cpp's divisors [1, 3.5685, 8, 8] stand for rope_scaling llama3 (FAMILIES.md).
    assertClose(config.rope_freq_factors!, [1, 3.5685329633, 8, 8], 1e-7, `${file} rope_freq_factors`);
    const { rope_freq_factors: _, ...rest } = config;
    const { rope_scaling: __, ...hfRest } = hf.config as DecoderConfig;
    assert.deepEqual(rest, hfRest, file);
    const exact = file === "model.gguf";
    for (const [name, p] of hf.params) {
      if (exact) assert.deepEqual(gguf.params.get(name), p, name);
    }
    // The same model: the folder's logits (the F16 file's rounded weights: their own, near them).
    const ours = await forwardBackward({ ...fx, config, params: exact ? fx.params : gguf.params });
    if (exact) assertPassMatches(fx, ours);
    else assertCloseNorm(ours.logits, fx.get("logits"), 1e-3, `${file} logits`);
  }
});

Deno.test("per-frequency RoPE divisors are written as transformers' longrope with one list and read back", async () => {
  await withTempDir(async (dir) => {
    const gguf = await loadModel(join(FIXTURES, "llama3_tiny", "model.gguf"));
    await saveModel(dir, gguf);
    const json = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
    const factors = (gguf.config as DecoderConfig).rope_freq_factors;
    assert.deepEqual(json.rope_scaling, {
      rope_type: "longrope",
      short_factor: factors,
      long_factor: factors,
      attention_factor: 1,
      factor: 1,
      original_max_position_embeddings: 1024,
    });
    assert.deepEqual((await loadModel(dir)).config, gguf.config);
    // Any other longrope (Phi-3's two lists) is refused with one line.
    json.rope_scaling.long_factor = [1, 1, 1, 1];
    await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(json));
    await assert.rejects(() => loadModel(dir), (e: Error) => {
      assert.match(
        e.message,
        /config\.json: rope_scaling: rope_type "longrope" is supported only as per-frequency divisors \(short_factor equal to long_factor, attention_factor 1\)$/,
      );
      return true;
    });
  });
});

Deno.test("a GGUF's rope_freqs of the wrong size, or Phi-3's long-context factors, are refused with one line", async () => {
  await withTempDir(async (dir) => {
    const model = tinyLlama(); // head size 4: 2 frequencies
    const cases: [Record<string, Float32Array>, RegExp][] = [
      [
        { "rope_freqs.weight": new Float32Array([1, 2, 3]) },
        /tensor rope_freqs\.weight has shape \[3\], the head size 4 needs \[2\]$/,
      ],
      [
        { "rope_freqs.weight": new Float32Array([1, 0]) },
        /rope_freq_factors must be 2 positive numbers/,
      ],
      [
        { "rope_factors_long.weight": new Float32Array(2) },
        /tensor rope_factors_long\.weight \(per-frequency RoPE factors\) is not supported$/,
      ],
    ];
    for (const [extra, pattern] of cases) {
      const path = join(dir, "m.gguf");
      await Deno.writeFile(path, llamaGguf(model, { extra }));
      await assert.rejects(() => loadModel(path), (e: Error) => {
        assert.match(e.message, pattern);
        assert.ok(!e.message.includes("\n"));
        return true;
      });
    }
  });
});

Deno.test("inheriting blocks of Gemma 3 keeps each block's window and RoPE base; its norms belong to their sub-blocks", async () => {
  const ref = await loadModel(join(FIXTURES, "gemma3_text_tiny"));
  const config = ref.config as DecoderConfig;
  assert.deepEqual(config.layer_types, ["sliding_attention", "full_attention", "sliding_attention"]);
  const even = inherit(ref, { layers: 2, select: "even" }); // blocks 0 and 2
  assert.deepEqual(even.blocks, [0, 2]);
  assert.deepEqual((even.config as DecoderConfig).layer_types, ["sliding_attention", "sliding_attention"]);
  const last = inherit(ref, { layers: 2, select: "last" }); // blocks 1 and 2
  assert.deepEqual((last.config as DecoderConfig).layer_types, ["full_attention", "sliding_attention"]);
  const part = new Map(paramSpecs(config).filter((s) => s.layer === 0).map((s) => [s.key, s.part]));
  assert.deepEqual(Object.fromEntries(part), {
    "input_layernorm.weight": "attn",
    "self_attn.q_proj.weight": "attn",
    "self_attn.k_proj.weight": "attn",
    "self_attn.v_proj.weight": "attn",
    "self_attn.q_norm.weight": "attn",
    "self_attn.k_norm.weight": "attn",
    "self_attn.o_proj.weight": "attn",
    "post_attention_layernorm.weight": "attn",
    "pre_feedforward_layernorm.weight": "mlp",
    "mlp.gate_proj.weight": "mlp",
    "mlp.up_proj.weight": "mlp",
    "mlp.down_proj.weight": "mlp",
    "post_feedforward_layernorm.weight": "mlp",
  });
  // --only mlp keeps the MLP's norms, not the attention's.
  const mlp = inherit(ref, { layers: 1, only: "mlp" });
  const same = (name: string): boolean =>
    mlp.params.get(name)!.every((v, i) => v === ref.params.get(name)![i]);
  assert.ok(same("model.layers.0.post_feedforward_layernorm.weight"));
  assert.ok(!same("model.layers.0.self_attn.q_norm.weight"));
});

Deno.test("deno task inherit on a folder with an unknown RoPE type: one line, exit 2", async () => {
  await withTempDir(async (dir) => {
    const src = join(FIXTURES, "qwen3_tiny");
    const json = JSON.parse(await Deno.readTextFile(join(src, "config.json")));
    json.rope_scaling = { rope_type: "yarn", factor: 4 };
    await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(json));
    await Deno.copyFile(join(src, "model.safetensors"), join(dir, "model.safetensors"));
    const r = await runCli(["inherit", "--reference", dir, "--layers", "1", "--out", join(dir, "t")]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr.trim(),
      /config\.json: rope_scaling: rope_type "yarn" is not supported \(default, linear, llama3\)$/,
    );
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  });
});
