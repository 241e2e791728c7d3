/**
 * GGUF out: the writer (every metadata type, tensor data aligned, an existing file untouched when
 * writing fails) and `exportGguf` against the GGUF files of the family fixtures, which
 * `scripts/family_fixtures.py` wrote with llama.cpp's `gguf` package in its converter's layout;
 * every fixture written and read back to the same model, in each type; tokenizers as llama.cpp's
 * vocabulary files hold them and encoding as before.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type Checkpoint,
  CheckpointError,
  type DecoderConfig,
  dequantize,
  exportGguf,
  ggmlTypeNamed,
  GGUF_EXPORT_TYPES,
  GGUF_TYPE,
  type GgufEntry,
  type GgufExportType,
  type GgufFile,
  type GPT2Config,
  initParams,
  isDecoder,
  loadModel,
  loadModelTokenizer,
  openGguf,
  ownTokenizer,
  paramSpecs,
  quantize,
  writeGguf,
} from "@inheritune/core";
import { jsonTokenizer, loadTokenizer, type Tokenizer } from "@inheritune/data";
import { assertCloseNorm, gunzip, maxNormRelError, withTempDir } from "../_util.ts";
import { tinyLlama } from "./_model_files.ts";
import { FAMILY_FIXTURES, fixture, FIXTURES, forwardBackward } from "./_fixtures.ts";

/** Every tensor of a GGUF file as f32, by name. */
async function tensorsOf(gguf: GgufFile): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const t of gguf.tensors.values()) out.set(t.name, await gguf.read(t));
  return out;
}

/** `fn` with the GGUF file at `path` open. */
async function withGguf<T>(path: string, fn: (gguf: GgufFile) => T | Promise<T>): Promise<T> {
  const gguf = await openGguf(path);
  try {
    return await fn(gguf);
  } finally {
    gguf.close();
  }
}

Deno.test("writeGguf writes what openGguf reads: every metadata type, tensors of several types, aligned", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "all.gguf");
    const entries: [string, GgufEntry][] = [
      ["a.u8", [GGUF_TYPE.UINT8, 200]],
      ["a.i8", [GGUF_TYPE.INT8, -100]],
      ["a.u16", [GGUF_TYPE.UINT16, 60000]],
      ["a.i16", [GGUF_TYPE.INT16, -30000]],
      ["a.u32", [GGUF_TYPE.UINT32, 4_000_000_000]],
      ["a.i32", [GGUF_TYPE.INT32, -2_000_000_000]],
      ["a.f32", [GGUF_TYPE.FLOAT32, 1e-5]],
      ["a.bool", [GGUF_TYPE.BOOL, true]],
      ["a.string", [GGUF_TYPE.STRING, "ünïcode ▁text"]],
      ["a.u64", [GGUF_TYPE.UINT64, 2n ** 40n]],
      ["a.i64", [GGUF_TYPE.INT64, -(2n ** 40n)]],
      ["a.f64", [GGUF_TYPE.FLOAT64, Math.PI]],
      ["a.strings", [GGUF_TYPE.ARRAY, ["x", "", "y z"], GGUF_TYPE.STRING]],
      ["a.flags", [GGUF_TYPE.ARRAY, [true, false], GGUF_TYPE.BOOL]],
      ["a.ints", [GGUF_TYPE.ARRAY, [-1, 2, 3], GGUF_TYPE.INT32]],
    ];
    const x = Float32Array.from({ length: 3 * 64 }, (_, i) => Math.sin(i));
    const tensors = [
      { name: "odd.weight", shape: [7], type: 0, data: () => quantize("F32", x.subarray(0, 7)) },
      { name: "m.weight", shape: [3, 64], type: 1, data: () => quantize("F16", x) },
      { name: "q.weight", shape: [3, 64], type: 8, data: () => quantize("Q8_0", x, { rowLength: 64 }) },
    ];
    await writeGguf(path, new Map(entries), tensors);
    await withGguf(path, async (gguf) => {
      assert.equal(gguf.version, 3);
      assert.deepEqual([...gguf.metadata], entries.map(([k, [, v]]) => [k, v]));
      const read = await tensorsOf(gguf);
      assert.deepEqual(read.get("odd.weight"), x.subarray(0, 7));
      assert.deepEqual(read.get("m.weight"), x.map(Math.f16round));
      assert.deepEqual(read.get("q.weight"), dequantize(ggmlTypeNamed("Q8_0")!, tensors[2].data(), x.length));
      for (const t of gguf.tensors.values()) assert.equal(t.offset % 32, 0, t.name);
    });
  });
});

Deno.test("writeGguf leaves an existing file as it was when writing fails, and no temporary file", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "model.gguf");
    await Deno.writeTextFile(path, "the old file");
    const failing = {
      name: "b.weight",
      shape: [4],
      type: 0,
      data: (): Uint8Array => {
        throw new Error("disk on fire");
      },
    };
    const first = { name: "a.weight", shape: [4], type: 0, data: () => new Uint8Array(16) };
    await assert.rejects(writeGguf(path, new Map(), [first, failing]), /disk on fire/);
    assert.equal(await Deno.readTextFile(path), "the old file");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["model.gguf"]);
    // Data of the wrong size is a programming error, caught before anything is renamed.
    const short = { ...first, data: () => new Uint8Array(12) };
    await assert.rejects(writeGguf(path, new Map(), [short]), RangeError);
    assert.equal(await Deno.readTextFile(path), "the old file");
  });
});

/** Keys the export adds to a fixture's GGUF: a vocabulary-less model's, as llama.cpp reads one. */
const NO_VOCAB_KEYS = ["tokenizer.ggml.model"];

for (const c of FAMILY_FIXTURES.filter((c) => c.family !== "mistral")) {
  Deno.test(`${c.name}: exported as f32, the keys and tensors of its llama.cpp-layout GGUF`, async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, "out.gguf");
      await exportGguf(await loadModel(join(FIXTURES, c.name)), path, { type: "f32", name: c.name });
      await withGguf(join(FIXTURES, c.name, "model.gguf"), async (want) => {
        await withGguf(path, async (got) => {
          const arch = want.metadata.get("general.architecture");
          const added = [...NO_VOCAB_KEYS, ...(arch === "llama" ? [] : [`${arch}.vocab_size`])];
          assert.deepEqual(
            [...got.metadata.keys()].filter((k) => !want.metadata.has(k)).sort(),
            added.sort(),
            "keys beyond the fixture's",
          );
          for (const [key, v] of want.metadata) assert.deepEqual(got.metadata.get(key), v, key);
          const [a, b] = [await tensorsOf(got), await tensorsOf(want)];
          assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
          for (const [name, t] of b) {
            assert.deepEqual(got.tensors.get(name)!.shape, want.tensors.get(name)!.shape, name);
            assert.deepEqual(a.get(name), t, name);
          }
        });
      });
    });
  });
}

/** What the configuration of `model` reads back as from its GGUF file. */
function expectedConfig(model: Checkpoint): Checkpoint["config"] {
  const config = { ...model.config };
  if (!isDecoder(config)) {
    delete config.tokenizer; // a GGUF states the vocabulary, not the tokenizer's name
    return config;
  }
  if (config.family === "mistral") {
    // Written as llama, which has no sliding window.
    const { layer_types: _l, sliding_window: _s, ...rest } = config;
    return { ...rest, family: "llama" };
  }
  return config;
}

/** The norm-wise error of a matrix read back from each type (vectors stay F32). */
const MATRIX_TOLERANCE: Record<string, number> = {
  f32: 0,
  f16: 1e-3,
  q8_0: 1e-2,
  q6_k: 3e-2,
  q4_k: 0.1,
  q4_0: 0.15,
};

for (const name of [...FAMILY_FIXTURES.map((c) => c.name), "gpt2_tiny"]) {
  Deno.test(`${name}: written in every type and read back to the same model`, async () => {
    const model = await loadModel(join(FIXTURES, name));
    await withTempDir(async (dir) => {
      for (const type of GGUF_EXPORT_TYPES) {
        const path = join(dir, `${type}.gguf`);
        await exportGguf(model, path, { type });
        const back = await loadModel(path);
        const config = expectedConfig(model) as DecoderConfig;
        if (config.rope_scaling?.rope_type === "llama3") {
          // llama.cpp states Llama 3's scaling as per-frequency divisors, which the reader keeps.
          const { rope_scaling: _r, ...rest } = config;
          assert.deepEqual({ ...back.config, rope_freq_factors: undefined }, {
            ...rest,
            rope_freq_factors: undefined,
          });
          assert.equal((back.config as DecoderConfig).rope_freq_factors?.length, 4);
        } else {
          assert.deepEqual(back.config, config, `${type}: config`);
        }
        assert.deepEqual([...back.params.keys()], [...model.params.keys()], `${type}: names`);
        for (const spec of paramSpecs(model.config)) {
          const want = model.params.get(spec.name)!, got = back.params.get(spec.name)!, p = spec.name;
          if (type === "f32" || spec.shape.length < 2) {
            // Vectors are F32; Gemma's norms round once through 1 + w.
            assertCloseNorm(got, want, name.startsWith("gemma3") ? 1e-6 : 0, `${type} ${p}`);
          } else if (type === "f16") {
            assert.deepEqual(got, want.map(Math.f16round), `${type} ${p}`);
          } else {
            assertCloseNorm(got, want, MATRIX_TOLERANCE[type], `${type} ${p}`);
          }
        }
      }
    });
  });
}

Deno.test("what has no GGUF form is refused with one line naming the file, nothing written", async () => {
  const qwen = await loadModel(join(FIXTURES, "qwen2_tiny"));
  const cases: [Partial<DecoderConfig>, RegExp][] = [
    [
      {
        rope_scaling: {
          rope_type: "llama3",
          factor: 8,
          low_freq_factor: 1,
          high_freq_factor: 4,
          original_max_position_embeddings: 64,
        },
      },
      /RoPE scaling as per-frequency divisors \(rope_freqs, Llama 3's\) has no form in llama\.cpp's qwen2$/,
    ],
  ];
  const phi = await loadModel(join(FIXTURES, "phi3_tiny"));
  await withTempDir(async (dir) => {
    const path = join(dir, "x.gguf");
    for (const [change, message] of cases) {
      const model = { ...qwen, config: { ...qwen.config, ...change } as DecoderConfig };
      await assert.rejects(
        exportGguf(model, path),
        (e) => e instanceof CheckpointError && message.test(e.message),
      );
    }
    const mixed = {
      ...phi,
      config: { ...phi.config, layer_types: ["sliding_attention", "full_attention"] } as DecoderConfig,
    };
    await assert.rejects(
      exportGguf(mixed, path),
      (e) =>
        e instanceof CheckpointError && e.message.startsWith(`${path}: phi3 slides in every block or none`),
    );
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  });
});

Deno.test("logits of a model read back: f32 bit-identical, f16 those of the f16-rounded weights", async () => {
  for (const name of ["qwen2_tiny", "qwen3_tiny", "phi3_tiny", "gemma3_text_tiny", "gpt2_tiny"]) {
    const fx = await fixture(name);
    const rounded = new Map(
      paramSpecs(fx.config).map((s) => {
        const w = fx.params.get(s.name)!;
        return [s.name, s.shape.length < 2 ? w : w.map(Math.f16round)];
      }),
    );
    const reference = {
      f32: (await forwardBackward(fx)).logits,
      f16: (await forwardBackward({ ...fx, params: rounded })).logits,
    };
    await withTempDir(async (dir) => {
      for (const type of ["f32", "f16"] as const) {
        const path = join(dir, `${type}.gguf`);
        await exportGguf(fx, path, { type });
        const { logits } = await forwardBackward({ ...fx, ...await loadModel(path) });
        assert.deepEqual(logits, reference[type], `${name} ${type}`);
      }
    });
  }
});

/** stories260K's logits on the first 64 tokens of a TinyStories text, from `model`. */
async function storiesLogits(model: Checkpoint, tokens: number[]): Promise<Float32Array> {
  const ids = Float32Array.from(tokens);
  const fx = { ...model, B: 1, T: ids.length, metadata: {}, get: () => ids };
  return (await forwardBackward(fx)).logits;
}

Deno.test("stories260K read back from each quantized type: logits within the type's error of f32's", async () => {
  const model = await loadModel("models/stories260K/model.gguf");
  const text = (await Deno.readTextFile("corpora/tinystories/valid_head.txt")).slice(0, 400);
  const tokens = [1, ...(await ownTokenizer(model, "stories260K"))!.encode(text)].slice(0, 65);
  const f32 = await storiesLogits(model, tokens);
  // Measured, norm-wise: q8_0 1.6e-2, q6_k the same (its rows of 64 and 172 fall back to Q8_0 and
  // F16), q4_k 0.10 (Q5_0 and F16 by the same fallback), q4_0 0.21.
  const tolerance: Record<string, number> = { q8_0: 0.03, q6_k: 0.03, q4_k: 0.2, q4_0: 0.3 };
  await withTempDir(async (dir) => {
    for (const [type, tol] of Object.entries(tolerance)) {
      const path = join(dir, `${type}.gguf`);
      await exportGguf(model, path, { type: type as GgufExportType });
      const err = maxNormRelError(await storiesLogits(await loadModel(path), tokens), f32);
      console.log(`stories260K ${type}: logits within ${err.toExponential(2)} of f32's (norm-wise)`);
      assert.ok(err < tol, `${type}: ${err}`);
    }
  });
});

Deno.test("stories260K exported: the vocabulary of the file it came from, and the same ids for a text", async () => {
  const source = "models/stories260K/model.gguf";
  await withTempDir(async (dir) => {
    const path = join(dir, "stories.gguf");
    await exportGguf(await loadModel(source), path, { type: "q8_0" });
    await withGguf(source, async (want) => {
      await withGguf(path, (got) => {
        for (
          const key of [
            "model",
            "tokens",
            "scores",
            "token_type",
            "bos_token_id",
            "eos_token_id",
            "unknown_token_id",
          ]
        ) {
          const k = `tokenizer.ggml.${key}`;
          assert.deepEqual(got.metadata.get(k), want.metadata.get(k), k);
        }
        assert.equal(got.metadata.get("tokenizer.ggml.pre"), "default");
      });
    });
    const text = await Deno.readTextFile("corpora/tinystories/valid_head.txt");
    const [a, b] = [await loadModelTokenizer(source), await loadModelTokenizer(path)];
    assert.deepEqual(b.encode(text.slice(0, 20_000)), a.encode(text.slice(0, 20_000)));
  });
});

/** What a GGUF file's tokenizer encodes a TinyStories text to. */
async function encodesLike(path: string, reference: Tokenizer): Promise<void> {
  const text = (await Deno.readTextFile("corpora/tinystories/valid_head.txt")).slice(0, 20_000) +
    " naïve 中文 🦙 12345  \n\n";
  assert.deepEqual((await loadModelTokenizer(path)).encode(text), reference.encode(text), path);
}

Deno.test("a GPT-2 with the built-in tokenizer: the tokenizer keys of llama.cpp's own GPT-2 vocabulary file", async () => {
  const config: GPT2Config = {
    n_layer: 1,
    n_head: 1,
    n_embd: 8,
    vocab_size: 50257,
    n_positions: 16,
    layer_norm_epsilon: 1e-5,
    tokenizer: "gpt2",
  };
  await withTempDir(async (dir) => {
    const path = join(dir, "gpt2.gguf"), vocab = join(dir, "vocab.gguf");
    await exportGguf({ config, params: initParams(config, 1) }, path);
    await Deno.writeFile(
      vocab,
      await gunzip(new URL("../fixtures/gguf_vocab/ggml-vocab-gpt-2.gguf.gz", import.meta.url)),
    );
    await withGguf(vocab, async (want) => {
      await withGguf(path, (got) => {
        const keys = [...want.metadata.keys()].filter((k) => k.startsWith("tokenizer."));
        assert.deepEqual(
          keys.sort(),
          [...got.metadata.keys()].filter((k) => k.startsWith("tokenizer.")).sort(),
        );
        for (const key of keys) assert.deepEqual(got.metadata.get(key), want.metadata.get(key), key);
      });
    });
    await encodesLike(path, await loadTokenizer("gpt2"));
  });
});

Deno.test("byte-level tokenizers written as GGUF's gpt2 vocabulary encode as they do: SmolLM2's tokenizer.json, bytes", async () => {
  const smollm = await gunzip(new URL("../fixtures/tokenizers/smollm2/tokenizer.json.gz", import.meta.url));
  await withTempDir(async (dir) => {
    const llama = tinyLlama({
      vocab_size: 49152,
      n_embd: 8,
      n_head: 2,
      n_kv_head: 1,
      n_hidden: 8,
      n_layer: 1,
    });
    const path = join(dir, "smollm.gguf");
    await exportGguf({ ...llama, tokenizerFiles: new Map([["tokenizer.json", smollm]]) }, path);
    await withGguf(path, (gguf) => {
      assert.equal(gguf.metadata.get("tokenizer.ggml.model"), "gpt2");
      assert.equal(gguf.metadata.get("tokenizer.ggml.pre"), "smollm");
      assert.equal((gguf.metadata.get("tokenizer.ggml.merges") as string[]).length, 48900);
    });
    await encodesLike(path, jsonTokenizer(JSON.parse(new TextDecoder().decode(smollm))));
    const bytes = join(dir, "bytes.gguf");
    await exportGguf(tinyLlama({ vocab_size: 260, tokenizer: "bytes" }), bytes);
    await withGguf(bytes, (gguf) => {
      const tokens = gguf.metadata.get("tokenizer.ggml.tokens") as string[];
      assert.deepEqual(tokens.slice(256), ["[PAD256]", "[PAD257]", "[PAD258]", "[PAD259]"]);
    });
    await encodesLike(bytes, await loadTokenizer("bytes"));
  });
});
