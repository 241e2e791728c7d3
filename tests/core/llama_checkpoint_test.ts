/**
 * LLaMA checkpoints: Hugging Face Llama folders (single and sharded safetensors, tied heads stored
 * under either name), GGUF files (the real stories260K, and tiny ones written here in F32, F16,
 * BF16 and Q8_0), llama2.c exports (legacy, version 1, version 2), and their bad inputs.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type Checkpoint,
  CheckpointError,
  checkpointTokenizer,
  createModel,
  decodeFloats,
  encodeFloats,
  loadModel,
  type ParamMap,
  paramSpecs,
  saveModel,
  type TensorData,
  writeSafetensors,
} from "@inheritune/core";
import { parseSentencePieceModel, sentencePieceTokenizer } from "@inheritune/data";
import { getGpu, read, Recorder, write } from "@inheritune/kernels";
import { assertRejects, assertRejectsNaming } from "../_assert.ts";
import { rand, withTempDir } from "../_util.ts";
import { ggufBytes, llama2cFile, llamaGguf, tinyLlama } from "./_model_files.ts";

const STORIES = new URL("../../models/stories260K/model.gguf", import.meta.url).pathname;

function assertSameParams(actual: ParamMap, expected: ParamMap): void {
  assert.deepEqual([...actual.keys()], [...expected.keys()]);
  for (const [name, data] of expected) assert.deepEqual(actual.get(name), data, name);
}

/** The (B,T,V) logits of `model` for a fixed batch, read back from the GPU. */
async function logitsOf(model: Checkpoint, tokens: Uint32Array, T: number): Promise<Float32Array> {
  const gpu = await getGpu();
  const net = createModel(gpu, model.config, model.params, { B: tokens.length / T, T });
  const { createView } = await import("@inheritune/kernels");
  const out = createView(gpu, tokens.length * model.config.vocab_size);
  write(gpu, net.tokens, tokens);
  const rec = new Recorder(gpu);
  net.recordForward(rec);
  net.recordLogits(rec, out);
  rec.submit();
  const logits = await read(gpu, out);
  net.destroy();
  return logits;
}

Deno.test("stories260K.gguf loads as a tied GQA LLaMA with its SentencePiece tokenizer", async () => {
  const model = await loadModel(STORIES);
  assert.deepEqual(model.config, {
    family: "llama",
    n_layer: 5,
    n_head: 8,
    n_embd: 64,
    n_kv_head: 4,
    n_hidden: 172,
    vocab_size: 512,
    n_positions: 2048,
    norm_eps: 1e-5,
    rope_theta: 10000,
    tie_embeddings: true,
    bos_token_id: 1,
    eos_token_id: 2,
  });
  assert.deepEqual([...model.tokenizerFiles!.keys()], ["tokenizer.model"]);
  const tokenizer = await checkpointTokenizer(model, STORIES);
  // llama.cpp keeps runs of spaces for a GGUF that does not say otherwise; tok512.model collapses them.
  const tok512 = parseSentencePieceModel(await Deno.readFile(join(STORIES, "..", "tokenizer.model")));
  const shipped = sentencePieceTokenizer({ ...tok512, removeExtraWhitespaces: false });
  assert.equal(tokenizer.hash, shipped.hash, "the GGUF vocabulary is tok512's");
  assert.deepEqual(tokenizer.encode("Once upon a time"), shipped.encode("Once upon a time"));
});

Deno.test("stories260K saved as a Hugging Face Llama folder gives the GGUF's logits, bit for bit", async () => {
  await withTempDir(async (dir) => {
    const gguf = await loadModel(STORIES);
    await saveModel(dir, gguf);
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(names, [
      "config.json",
      "generation_config.json",
      "model.safetensors",
      "special_tokens_map.json",
      "tokenizer.json",
      "tokenizer.model",
      "tokenizer_config.json",
    ]);
    const json = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
    assert.equal(json.model_type, "llama");
    assert.deepEqual(json.architectures, ["LlamaForCausalLM"]);
    assert.equal(json.num_key_value_heads, 4);
    assert.equal(json.tie_word_embeddings, true);
    const folder = await loadModel(dir);
    assert.deepEqual(folder.config, gguf.config);
    assertSameParams(folder.params, gguf.params);
    const tokens = Uint32Array.from({ length: 2 * 24 }, (_, i) => (i * 37 + 11) % 512);
    assert.deepEqual(await logitsOf(folder, tokens, 24), await logitsOf(gguf, tokens, 24));
    // The tokenizer.json written for transformers from tokenizer.model leaves the .model defining it.
    const [a, b] = [await checkpointTokenizer(folder, dir), await checkpointTokenizer(gguf, STORIES)];
    assert.equal(a.hash, b.hash);
  });
});

Deno.test("a Llama folder loads from shards and an index, and a tied head stored under either name", async () => {
  await withTempDir(async (dir) => {
    const model = tinyLlama();
    await saveModel(dir, model);
    await Deno.remove(join(dir, "model.safetensors"));
    const specs = paramSpecs(model.config);
    const shards = [specs.slice(0, 7), specs.slice(7)];
    const weightMap: Record<string, string> = {};
    for (const [i, part] of shards.entries()) {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      const tensors = new Map<string, TensorData>();
      for (const s of part) {
        // The tied matrix stored as the head only, as some exporters do.
        const name = s.name === "model.embed_tokens.weight" ? "lm_head.weight" : s.name;
        tensors.set(name, { shape: s.shape, data: model.params.get(s.name)! });
        weightMap[name] = file;
      }
      await writeSafetensors(join(dir, file), tensors);
    }
    await Deno.writeTextFile(
      join(dir, "model.safetensors.index.json"),
      JSON.stringify({ weight_map: weightMap }),
    );
    assertSameParams((await loadModel(dir)).params, model.params);

    await Deno.remove(join(dir, "model-00002-of-00002.safetensors"));
    const e = await assertRejects(
      () => loadModel(dir),
      /model\.safetensors\.index\.json: shard model-00002-of-00002\.safetensors is missing/,
    );
    assert.ok(e instanceof CheckpointError && !e.message.includes("\n"));
  });
});

Deno.test("an untied Llama round-trips, and a tied one rejects a head that differs from its embedding", async () => {
  await withTempDir(async (dir) => {
    const untied = tinyLlama({ tie_embeddings: false, n_kv_head: 4 });
    await saveModel(dir, untied);
    const loaded = await loadModel(dir);
    assert.deepEqual(loaded.config, untied.config);
    assertSameParams(loaded.params, untied.params);

    const tied = tinyLlama();
    await saveModel(dir, tied);
    const tensors = new Map(
      paramSpecs(tied.config).map((s) => [s.name, { shape: s.shape, data: tied.params.get(s.name)! }]),
    );
    tensors.set("lm_head.weight", { shape: [13, 16], data: rand(13 * 16, 5) });
    await writeSafetensors(join(dir, "model.safetensors"), tensors);
    await assertRejects(
      () => loadModel(dir),
      /lm_head\.weight differs from model\.embed_tokens\.weight; the configuration ties them/,
    );
  });
});

Deno.test("a Llama config.json contradicting its tensors or asking for what is unsupported is one line naming the file", async () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    [
      "hidden size",
      { hidden_size: 24, head_dim: null },
      /model\.safetensors: tensor model\.embed_tokens\.weight has shape \[13,16\], the configuration needs \[13,24\]/,
    ],
    ["kv heads", { num_key_value_heads: 3 }, /config\.json: config n_kv_head 3 does not divide n_head 4/],
    ["activation", { hidden_act: "gelu" }, /config\.json: hidden_act "gelu" is not supported \(silu only\)/],
    [
      "rope type",
      { rope_scaling: { rope_type: "yarn", factor: 2 } },
      /config\.json: rope_scaling: rope_type "yarn" is not supported \(default, linear, llama3\)/,
    ],
    [
      "v5 rope type",
      { rope_parameters: { rope_type: "dynamic", rope_theta: 10000, factor: 2 } },
      /config\.json: rope_parameters: rope_type "dynamic" is not supported/,
    ],
    [
      "unknown flag",
      { use_sliding_window: true },
      /config\.json: use_sliding_window true is not understood for Llama \(it may change the model\)/,
    ],
    [
      "head_dim",
      { head_dim: 8 },
      /model\.safetensors: tensor model\.layers\.0\.self_attn\.q_proj\.weight has shape \[16,16\], the configuration needs \[32,16\]/,
    ],
    [
      "untied without a head",
      { tie_word_embeddings: false },
      /model\.safetensors: tensor lm_head\.weight is missing/,
    ],
  ];
  for (const [what, patch, pattern] of cases) {
    await withTempDir(async (dir) => {
      await saveModel(dir, tinyLlama());
      const path = join(dir, "config.json");
      await Deno.writeTextFile(
        path,
        JSON.stringify({ ...JSON.parse(await Deno.readTextFile(path)), ...patch }),
      );
      const e = await assertRejects(() => loadModel(dir), pattern);
      assert.ok(e instanceof CheckpointError && e.message.startsWith(dir) && !e.message.includes("\n"), what);
    });
  }
});

Deno.test("GGUF llama files load in F32, F16 and BF16, Q/K rows permuted to the engine's RoPE layout", async () => {
  await withTempDir(async (dir) => {
    const model = tinyLlama({ tie_embeddings: false });
    for (const [type, dtype] of [[0, "F32"], [1, "F16"], [30, "BF16"]] as const) {
      const path = join(dir, `tiny-${dtype}.gguf`);
      await Deno.writeFile(path, llamaGguf(model, { type }));
      const loaded = await loadModel(path);
      assert.deepEqual({ ...loaded.config }, { ...model.config });
      const rounded = new Map(
        [...model.params].map((
          [k, v],
        ) => [k, v.length > 16 ? decodeFloats(dtype, encodeFloats(dtype, v)).slice() : v]),
      );
      assertSameParams(loaded.params, rounded);
    }
  });
});

Deno.test("GGUF Q8_0 tensors are dequantised: blocks of 32 values with an f16 scale each", async () => {
  await withTempDir(async (dir) => {
    const model = tinyLlama({ n_embd: 32, vocab_size: 14 }); // token_embd: 14 rows of 32 values, 14 blocks
    const w = model.params.get("model.embed_tokens.weight")!;
    const blocks = new Uint8Array(14 * 34);
    const view = new DataView(blocks.buffer);
    const expected = new Float32Array(w.length);
    for (let b = 0; b < 14; b++) {
      view.setFloat16(b * 34, Math.max(...Array.from(w.subarray(b * 32, b * 32 + 32), Math.abs)) / 127, true);
      const d = view.getFloat16(b * 34, true);
      for (let i = 0; i < 32; i++) {
        view.setInt8(b * 34 + 2 + i, Math.round(w[b * 32 + i] / d));
        expected[b * 32 + i] = d * view.getInt8(b * 34 + 2 + i);
      }
    }
    const path = join(dir, "q8.gguf");
    await Deno.writeFile(
      path,
      llamaGguf(model, { replace: { name: "token_embd.weight", type: 8, bytes: blocks } }),
    );
    const loaded = await loadModel(path);
    assert.deepEqual(loaded.params.get("model.embed_tokens.weight"), expected);
    assert.deepEqual(loaded.params.get("model.norm.weight"), model.params.get("model.norm.weight"));
  });
});

Deno.test("bad GGUF files are one line naming the file and the problem", async () => {
  await withTempDir(async (dir) => {
    const model = tinyLlama();
    const good = llamaGguf(model);
    const named = ggufBytes(
      { "general.architecture": [8, "llama"], "general.name": [8, "x".repeat(40)] },
      {},
    );
    const cases: [string, Uint8Array, RegExp][] = [
      [
        "architecture",
        llamaGguf(model, { architecture: "mamba" }),
        /general\.architecture "mamba" is not supported \(gpt2, llama, qwen2, qwen3, phi3, gemma3\)/,
      ],
      [
        "tensor type",
        llamaGguf(model, { replace: { name: "blk.0.attn_q.weight", type: 26, bytes: new Uint8Array(1024) } }),
        /tensor blk\.0\.attn_q\.weight has type I32; the types that can be read are F32, F16, Q4_0, .*, IQ4_XS/,
      ],
      ["truncated", good.subarray(0, good.length - 100), /runs past the \d+-byte file: truncated/],
      [
        "header",
        good.subarray(0, 200),
        /: tensor count: 20 tensors cannot fit in the 176 bytes left of the file/,
      ],
      [
        "name",
        named.subarray(0, new TextDecoder().decode(named).indexOf("x") + 20),
        /: metadata general\.name: the file ends inside it \(truncated\?\)/,
      ],
      [
        "version",
        Uint8Array.from([...new TextEncoder().encode("GGUF"), 9, 0, 0, 0, ...new Uint8Array(24)]),
        /GGUF version 9 is not supported/,
      ],
      [
        "missing tensor",
        ggufBytes({ "general.architecture": [8, "llama"] }, {}),
        /tensor token_embd\.weight is missing/,
      ],
    ];
    for (const [what, bytes, pattern] of cases) {
      const path = join(dir, `${what}.gguf`);
      await Deno.writeFile(path, bytes);
      const e = await assertRejectsNaming(() => loadModel(path), path, pattern);
      assert.ok(e instanceof CheckpointError, what);
    }
  });
});

Deno.test("llama2.c exports load: legacy, version 1 (f32) and version 2 (Q8_0), tied and untied", async () => {
  await withTempDir(async (dir) => {
    for (const tie_embeddings of [true, false]) {
      const model = tinyLlama({ tie_embeddings });
      for (const version of [0, 1] as const) {
        const path = join(dir, `v${version}.bin`);
        await Deno.writeFile(path, llama2cFile(model, { version }));
        const loaded = await loadModel(path);
        assert.deepEqual(loaded.config, { ...model.config, n_positions: 32 });
        assertSameParams(loaded.params, model.params);
      }
      const path = join(dir, "v2.bin");
      await Deno.writeFile(path, llama2cFile(model, { version: 2, groupSize: 8 }));
      const loaded = await loadModel(path);
      for (const [name, want] of model.params) {
        const got = loaded.params.get(name)!;
        if (want.length <= 16) {
          assert.deepEqual(got, want, `${name} is kept in f32`);
          continue;
        }
        // Within half a quantisation step of its group (max |w| / 127 / 2).
        for (let g = 0; g < want.length / 8; g++) {
          const step = Math.max(...Array.from(want.subarray(g * 8, g * 8 + 8), Math.abs)) / 127;
          for (let i = g * 8; i < g * 8 + 8; i++) {
            assert.ok(Math.abs(got[i] - want[i]) <= step / 2 + 1e-7, `${name}[${i}]`);
          }
        }
      }
    }
    const good = llama2cFile(tinyLlama(), { version: 1 });
    const truncated = join(dir, "truncated.bin");
    await Deno.writeFile(truncated, good.subarray(0, good.length - 4));
    await assertRejects(
      () => loadModel(truncated),
      /truncated\.bin: \d+ bytes, the header's model needs \d+/,
    );
    const other = join(dir, "other.bin");
    await Deno.writeFile(other, new Uint8Array(4096).fill(7));
    await assertRejects(
      () => loadModel(other),
      /other\.bin: magic \d+ is not llm\.c's model magic 20240326 nor llama2\.c's "ak42"/,
    );
  });
});
