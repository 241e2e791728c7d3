import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type Checkpoint,
  CheckpointError,
  decodeFloats,
  encodeFloats,
  GPT2_BLOCK_TENSORS,
  type GPT2Config,
  LLMC_MAGIC,
  loadModel,
  type ParamMap,
  paramSpecs,
  readSafetensors,
  saveModel,
  type TensorData,
  writeSafetensors,
} from "@inheritune/core";
import { assertRejects } from "../_assert.ts";
import { rand, withTempDir } from "../_util.ts";

const CONFIG: GPT2Config = {
  n_layer: 2,
  n_head: 2,
  n_embd: 8,
  vocab_size: 11,
  n_positions: 5,
  layer_norm_epsilon: 1e-5,
  tokenizer: "bytes",
};

/** Every tensor distinct and non-trivial, so a swapped or transposed tensor shows. */
function tinyModel(config = CONFIG): Checkpoint {
  const params: ParamMap = new Map();
  paramSpecs(config).forEach((s, i) => params.set(s.name, rand(s.shape.reduce((a, b) => a * b, 1), 100 + i)));
  return { config, params };
}

function assertSameParams(actual: ParamMap, expected: ParamMap): void {
  assert.deepEqual([...actual.keys()], [...expected.keys()]);
  for (const [name, data] of expected) assert.deepEqual(actual.get(name), data, name);
}

function round(dtype: "F16" | "BF16", params: ParamMap): ParamMap {
  return new Map([...params].map(([k, v]) => [k, decodeFloats(dtype, encodeFloats(dtype, v)).slice()]));
}

/** The folder's files, sorted. */
function listing(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

/** Rewrites `dir/model.safetensors` with the checkpoint's tensors renamed, dropped or added by `edit`. */
async function rewriteWeights(
  dir: string,
  { config, params }: Checkpoint,
  edit: (tensors: Map<string, TensorData>) => Map<string, TensorData>,
): Promise<void> {
  const tensors = new Map(
    paramSpecs(config).map((s) => [s.name, { shape: s.shape, data: params.get(s.name)! }]),
  );
  await writeSafetensors(join(dir, "model.safetensors"), edit(tensors));
}

async function patchConfig(dir: string, patch: Record<string, unknown>): Promise<void> {
  const path = join(dir, "config.json");
  const c = JSON.parse(await Deno.readTextFile(path));
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) delete c[k];
    else c[k] = v;
  }
  await Deno.writeTextFile(path, JSON.stringify(c));
}

Deno.test("saveModel then loadModel round-trips bit-exact with a Hugging Face config.json", async () => {
  await withTempDir(async (dir) => {
    const model = tinyModel();
    const folder = join(dir, "nested", "model");
    await saveModel(folder, model);
    assert.deepEqual(listing(folder), ["config.json", "model.safetensors"]);
    const json = JSON.parse(await Deno.readTextFile(join(folder, "config.json")));
    assert.equal(json.model_type, "gpt2");
    assert.deepEqual(json.architectures, ["GPT2LMHeadModel"]);
    assert.equal(json.n_ctx, 5);
    assert.equal(json.tokenizer, "bytes");
    const { tensors, metadata } = await readSafetensors(join(folder, "model.safetensors"));
    assert.equal(metadata.format, "pt");
    assert.deepEqual([...tensors.keys()], paramSpecs(CONFIG).map((s) => s.name));
    assert.deepEqual(tensors.get("h.1.mlp.c_fc.weight")!.shape, [8, 32]);
    for (const path of [folder, join(folder, "model.safetensors")]) {
      const loaded = await loadModel(path);
      assert.deepEqual(loaded.config, CONFIG);
      assertSameParams(loaded.params, model.params);
    }
    await saveModel(folder, tinyModel({ ...CONFIG, n_layer: 1, vocab_size: 3 }));
    assert.equal((await loadModel(folder)).config.n_layer, 1, "a save replaces the previous checkpoint");
    assert.deepEqual(listing(folder), ["config.json", "model.safetensors"]);
  });
});

Deno.test("loadModel reads F16 and BF16 weights as their rounded f32 values", async () => {
  await withTempDir(async (dir) => {
    const model = tinyModel();
    for (const dtype of ["F16", "BF16"] as const) {
      await saveModel(dir, model, { dtype });
      const { tensors } = await readSafetensors(join(dir, "model.safetensors"));
      assert.equal(tensors.get("wte.weight")!.dtype, dtype);
      assertSameParams((await loadModel(dir)).params, round(dtype, model.params));
    }
  });
});

Deno.test("loadModel strips transformer., skips attention-mask buffers and accepts a tied lm_head", async () => {
  await withTempDir(async (dir) => {
    const model = tinyModel();
    await saveModel(dir, model);
    await rewriteWeights(dir, model, (t) => {
      const out = new Map([...t].map(([k, v]) => [`transformer.${k}`, v]));
      out.set("lm_head.weight", t.get("wte.weight")!);
      out.set("transformer.h.0.attn.bias", { shape: [1, 1, 5, 5], data: new Float32Array(25) });
      out.set("transformer.h.1.attn.masked_bias", { shape: [], data: Float32Array.of(-1e4) });
      return out;
    });
    assertSameParams((await loadModel(dir)).params, model.params);

    await rewriteWeights(dir, model, (t) => {
      t.set("lm_head.weight", { shape: [11, 8], data: rand(88, 9) });
      return t;
    });
    await assertRejects(() => loadModel(dir), /lm_head\.weight differs from wte\.weight/);
  });
});

Deno.test("loadModel fills only the Hugging Face defaults a config.json may omit", async () => {
  await withTempDir(async (dir) => {
    const model = tinyModel();
    await saveModel(dir, model);
    await patchConfig(dir, { n_positions: undefined, layer_norm_epsilon: undefined, tokenizer: undefined });
    const { config } = await loadModel(dir);
    assert.deepEqual(config, { ...CONFIG, tokenizer: "gpt2", n_positions: 5, layer_norm_epsilon: 1e-5 });
  });
});

Deno.test("loadModel rejects bad folders with one line naming the file and tensor", async () => {
  const cases: [string, (dir: string, model: Checkpoint) => Promise<void>, RegExp][] = [
    [
      "bad JSON",
      (d) => Deno.writeTextFile(join(d, "config.json"), "{ n_layer: 2"),
      /config\.json: cannot read the configuration/,
    ],
    [
      "missing config",
      (d) => Deno.remove(join(d, "config.json")),
      /config\.json: cannot read the configuration/,
    ],
    ["missing field", (d) => patchConfig(d, { n_head: undefined }), /config\.json: n_head is missing/],
    [
      "string field",
      (d) => patchConfig(d, { n_embd: "8" }),
      /config\.json: n_embd must be a number, got "8"/,
    ],
    [
      "invalid config",
      (d) => patchConfig(d, { n_head: 3 }),
      /config\.json: config n_embd 8 is not divisible by n_head 3/,
    ],
    [
      "other model",
      (d) => patchConfig(d, { model_type: "bert" }),
      /config\.json: model_type "bert" is not supported \(gpt2, llama, qwen2, qwen3, mistral, phi3, gemma3_text\)/,
    ],
    [
      "another family's config",
      (d) => patchConfig(d, { model_type: "llama" }),
      /config\.json: num_hidden_layers is missing/,
    ],
    [
      "other GELU",
      (d) => patchConfig(d, { activation_function: "relu" }),
      /activation_function relu is not gelu_new/,
    ],
    ["missing weights", (d) => Deno.remove(join(d, "model.safetensors")), /model\.safetensors: cannot open/],
    [
      "truncated weights",
      async (d) => {
        const path = join(d, "model.safetensors");
        const bytes = await Deno.readFile(path);
        await Deno.writeFile(path, bytes.subarray(0, bytes.length - 10));
      },
      /model\.safetensors: tensor ln_f\.bias data \[\d+, \d+\) runs past the \d+ data bytes: file truncated/,
    ],
    [
      "shape contradicting the config",
      (d) => patchConfig(d, { vocab_size: 12 }),
      /model\.safetensors: tensor wte\.weight has shape \[11,8\], the configuration needs \[12,8\]/,
    ],
    [
      "mislabelled tensor",
      (d, m) =>
        rewriteWeights(
          d,
          m,
          (t) => new Map([...t].map(([k, v]) => [k.replace("h.1.ln_2.bias", "h.1.ln_3.bias"), v])),
        ),
      /model\.safetensors: tensor h\.1\.ln_3\.bias is not part of a GPT-2 model of this configuration/,
    ],
    [
      "missing tensor",
      (d, m) =>
        rewriteWeights(d, m, (t) => {
          t.delete("h.0.attn.c_proj.bias");
          return t;
        }),
      /model\.safetensors: tensor h\.0\.attn\.c_proj\.bias is missing/,
    ],
    [
      "duplicate tensor",
      (d, m) =>
        rewriteWeights(d, m, (t) => {
          t.set("transformer.wpe.weight", t.get("wpe.weight")!);
          return t;
        }),
      /model\.safetensors: tensor wpe\.weight is stored twice/,
    ],
    [
      "deeper model",
      (d) => patchConfig(d, { n_layer: 3 }),
      /model\.safetensors: tensor h\.2\.ln_1\.weight is missing/,
    ],
  ];
  for (const [what, damage, pattern] of cases) {
    await withTempDir(async (dir) => {
      const model = tinyModel();
      await saveModel(dir, model);
      await damage(dir, model);
      const e = await assertRejects(() => loadModel(dir), pattern);
      assert.ok(e instanceof CheckpointError, what);
      assert.ok(e.message.startsWith(dir), `${what}: message names the file`);
      assert.ok(!e.message.includes("\n"), `${what}: one line`);
    });
  }
  await assertRejects(() => loadModel("/nonexistent/model"), /\/nonexistent\/model: cannot read/);
});

// ---------------------------------------------------------------------------------------------
// llm.c

/** An llm.c model file of `model`: weights transposed to (out, in), the token table padded to `Vp` rows. */
function llmcFile(
  { config, params }: Checkpoint,
  { Vp, version = 3, magic = LLMC_MAGIC }: { Vp: number; version?: number; magic?: number },
): Uint8Array {
  const { n_layer: L, n_embd: C, vocab_size: V } = config;
  const header = new Int32Array(256);
  header.set([magic, version, config.n_positions, V, L, config.n_head, C, Vp]);
  const chunks: Float32Array[] = [];
  const wte = rand(Vp * C, 77, 100); // padding rows are garbage that must be dropped
  wte.set(params.get("wte.weight")!.subarray(0, wte.length));
  chunks.push(wte, params.get("wpe.weight")!);
  const transposed = (w: Float32Array, rows: number, cols: number): Float32Array => {
    const out = new Float32Array(w.length);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = w[r * cols + c];
    return out;
  };
  const sizes: Record<string, [number, number]> = {
    "attn.c_attn.weight": [C, 3 * C],
    "attn.c_proj.weight": [C, C],
    "mlp.c_fc.weight": [C, 4 * C],
    "mlp.c_proj.weight": [4 * C, C],
  };
  for (const t of GPT2_BLOCK_TENSORS) {
    for (let l = 0; l < L; l++) {
      const w = params.get(`h.${l}.${t}`)!;
      chunks.push(t in sizes ? transposed(w, ...sizes[t]) : w);
    }
  }
  chunks.push(params.get("ln_f.weight")!, params.get("ln_f.bias")!);
  const body = chunks.map((c) => encodeFloats(version === 5 ? "BF16" : "F32", c));
  const out = new Uint8Array(1024 + body.reduce((s, b) => s + b.length, 0));
  out.set(new Uint8Array(header.buffer));
  let offset = 1024;
  for (const b of body) {
    out.set(b, offset);
    offset += b.length;
  }
  return out;
}

Deno.test("loadModel reads an llm.c file: padded vocabulary dropped, (out, in) weights transposed", async () => {
  await withTempDir(async (dir) => {
    const model = tinyModel();
    const path = join(dir, "gpt2_tiny.bin");
    await Deno.writeFile(path, llmcFile(model, { Vp: 16 }));
    const loaded = await loadModel(path);
    assert.deepEqual(loaded.config, { ...CONFIG, tokenizer: "gpt2" });
    assertSameParams(loaded.params, model.params);

    await Deno.writeFile(path, llmcFile(model, { Vp: 16, version: 5 }));
    assertSameParams((await loadModel(path)).params, round("BF16", model.params));
  });
});

Deno.test("loadModel rejects damaged llm.c files with one line naming the file", async () => {
  await withTempDir(async (dir) => {
    const model = tinyModel();
    const good = llmcFile(model, { Vp: 16 });
    const cases: [string, Uint8Array, RegExp][] = [
      [
        "magic",
        llmcFile(model, { Vp: 16, magic: 20240520 }),
        /magic 20240520 is not llm\.c's model magic 20240326/,
      ],
      [
        "version",
        llmcFile(model, { Vp: 16, version: 2 }),
        /llm\.c model version 2 is not 3 \(f32\) or 5 \(bf16\)/,
      ],
      ["padding", llmcFile(model, { Vp: 10 }), /padded vocabulary 10 is smaller than vocabulary 11/],
      ["truncated", good.subarray(0, good.length - 4), /\d+ bytes, the header's model needs \d+: truncated/],
      ["short", good.subarray(0, 100), /100 bytes, too short for an llm\.c header/],
    ];
    for (const [what, bytes, pattern] of cases) {
      const path = join(dir, `${what}.bin`);
      await Deno.writeFile(path, bytes);
      const e = await assertRejects(() => loadModel(path), pattern);
      assert.ok(e instanceof CheckpointError && e.message.startsWith(path), what);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Failed saves

Deno.test("a save that fails leaves the existing checkpoint untouched and no temporary files", async () => {
  await withTempDir(async (dir) => {
    const model = tinyModel();
    await saveModel(dir, model);
    const before = [
      await Deno.readFile(join(dir, "config.json")),
      await Deno.readFile(join(dir, "model.safetensors")),
    ];

    // Fails while writing the weights, after the config and earlier tensors were written.
    const other = tinyModel({ ...CONFIG, n_layer: 1 });
    const poisoned = other.params.get("ln_f.bias")!;
    Object.defineProperty(poisoned, "buffer", {
      get() {
        throw new Error("disk on fire");
      },
    });
    await assertRejects(() => saveModel(dir, other), /disk on fire/);

    const short = tinyModel();
    short.params.set("h.1.ln_2.bias", new Float32Array(3));
    await assertRejects(
      () => saveModel(dir, short),
      /parameter h\.1\.ln_2\.bias has 3 values, shape \[8\] needs 8/,
    );
    const missing = tinyModel();
    missing.params.delete("wpe.weight");
    await assertRejects(() => saveModel(dir, missing), /parameter wpe\.weight is missing/);
    const extra = tinyModel();
    extra.params.set("h.2.ln_1.weight", new Float32Array(8));
    await assertRejects(
      () => saveModel(dir, extra),
      /parameter h\.2\.ln_1\.weight is not part of the configured model/,
    );
    await assertRejects(
      () => saveModel(dir, { ...model, config: { ...CONFIG, n_head: 3 } }),
      /not divisible/,
    );

    assert.deepEqual(listing(dir), ["config.json", "model.safetensors"]);
    assert.deepEqual(await Deno.readFile(join(dir, "config.json")), before[0]);
    assert.deepEqual(await Deno.readFile(join(dir, "model.safetensors")), before[1]);
    assertSameParams((await loadModel(dir)).params, model.params);

    const file = join(dir, "config.json");
    const e = await assertRejects(
      () => saveModel(file, model),
      /config\.json: cannot create the model folder/,
    );
    assert.ok(e instanceof CheckpointError);
    assert.deepEqual(await Deno.readFile(file), before[0]);
    await assertRejects(() => saveModel(join(file, "sub"), model), /cannot create the model folder/);
  });
});

// ---------------------------------------------------------------------------------------------
// The PyTorch fixture (scripts/gpt2_fixtures.py)

const FIXTURES = fileURLToPath(new URL("../fixtures/", import.meta.url));

Deno.test("the PyTorch fixture model loads with its described configuration", async () => {
  const { config, params } = await loadModel(join(FIXTURES, "gpt2_tiny"));
  assert.deepEqual(config, {
    n_layer: 2,
    n_head: 2,
    n_embd: 32,
    vocab_size: 67,
    n_positions: 16,
    layer_norm_epsilon: 1e-5,
    tokenizer: "bytes",
  });
  assert.equal(params.size, 28);
  assert.ok(params.get("h.0.ln_1.bias")!.some((v) => v !== 0), "biases carry noise");
  assert.ok(params.get("h.1.ln_2.weight")!.some((v) => v !== 1), "LayerNorm weights carry noise");

  const { tensors, metadata } = await readSafetensors(join(FIXTURES, "gpt2_tiny_expected.safetensors"));
  assert.equal(metadata.clip, "1.0");
  assert.equal(metadata.lr, "0.001");
  const shape = (name: string): number[] => tensors.get(name)!.shape;
  assert.deepEqual(shape("tokens"), [3, 16]);
  assert.deepEqual(shape("targets"), [3, 16]);
  assert.deepEqual(shape("logits"), [3, 16, 67]);
  for (const scalar of ["loss", "loss2", "gradnorm1", "gradnorm2"]) {
    assert.deepEqual(shape(scalar), [], scalar);
  }
  const tokens = tensors.get("tokens")!.data;
  assert.ok(tokens.every((t) => Number.isInteger(t) && t >= 0 && t < 67));
  assert.deepEqual(
    tensors.get("targets")!.data.subarray(0, 15),
    tokens.subarray(1, 16),
    "targets are shifted inputs",
  );
  assert.ok(tensors.get("gradnorm1")!.data[0] > 1, "the clip at 1.0 triggers");
  for (const spec of paramSpecs(config)) {
    assert.deepEqual(shape(`grad.${spec.name}`), spec.shape, spec.name);
    assert.deepEqual(shape(`step2.${spec.name}`), spec.shape, spec.name);
  }
});
