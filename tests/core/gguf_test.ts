/**
 * The GGUF reader refuses, before allocating, the headers llama.cpp's reader refuses: counts and
 * lengths the file cannot hold, impossible shapes and types, and tensor data that is not aligned
 * or not laid out one tensor after another.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  CheckpointError,
  type DecoderParamSpec,
  dequantize,
  fromInterleavedRope,
  ggmlTypeName,
  ggmlTypeNamed,
  ggufTensorName,
  loadModel,
  openGguf,
  paramSpecs,
  quantize,
  toInterleavedRope,
} from "@inheritune/core";
import { assertRejects, assertRejectsNaming } from "../_assert.ts";
import { assertCloseNorm, withTempDir } from "../_util.ts";
import { ggufBytes, type GgufTensorData, llamaGguf, tinyLlama } from "./_model_files.ts";

const f32 = (n: number): GgufTensorData => ({ shape: [n], type: 0, bytes: new Uint8Array(4 * n) });

/** `bytes` with the u64 at `at` set to `value`. */
function withU64(bytes: Uint8Array, at: number, value: bigint): Uint8Array {
  const out = bytes.slice();
  new DataView(out.buffer).setBigUint64(at, value, true);
  return out;
}

/** Where ASCII `text` first occurs in `bytes`. */
function indexOf(bytes: Uint8Array, text: string): number {
  return new TextDecoder("latin1").decode(bytes).indexOf(text);
}

Deno.test("GGUF headers whose sizes or layout cannot be trusted are one line naming the file and field", async () => {
  const vocab = ggufBytes({ "tokenizer.ggml.tokens": [9, ["a", "b", "c"], 8] }, { "a.weight": f32(8) });
  const two = ggufBytes({}, { "a.weight": f32(8), "b.weight": f32(8) });
  const cases: [string, Uint8Array, RegExp][] = [
    [
      "tensor count",
      withU64(two, 8, 1n << 40n),
      /tensor count: a count or offset of 1099511627776 is larger/,
    ],
    [
      "tensor count 100",
      withU64(two, 8, 100n),
      /tensor count: 100 tensors cannot fit in the \d+ bytes left/,
    ],
    ["metadata count", withU64(vocab, 16, 100n), /metadata count: 100 metadata entries cannot fit/],
    [
      "vocabulary",
      withU64(vocab, indexOf(vocab, "tokens") + 6 + 4 + 4, 100n),
      /metadata tokenizer\.ggml\.tokens: 100 array items cannot fit in the \d+ bytes left/,
    ],
    [
      "overflow",
      ggufBytes({}, { "a.weight": { shape: [2 ** 32, 2 ** 32], type: 0, bytes: new Uint8Array(4) } }),
      /tensor a\.weight: shape \[4294967296,4294967296\] of F32 needs 73786976294838206464 bytes, more than the file/,
    ],
    [
      "alignment",
      ggufBytes({ "general.alignment": [4, 48] }, { "a.weight": f32(8) }),
      /metadata general\.alignment: 48 is not a power of two \(a u32\)/,
    ],
    [
      "ggml type",
      ggufBytes({}, { "a.weight": { shape: [8], type: 99, bytes: new Uint8Array(32) } }),
      /tensor a\.weight: ggml type 99 does not exist/,
    ],
    [
      "whole blocks",
      ggufBytes({}, { "a.weight": { shape: [2, 16], type: 12, bytes: new Uint8Array(288) } }),
      /tensor a\.weight: rows of 16 Q4_K elements are not whole blocks of 256/,
    ],
    [
      "order",
      withU64(two, indexOf(two, "b.weight") + 8 + 4 + 8 + 4, 0n),
      /tensor b\.weight: data offset 0 is not 32, where the previous tensor's data ends/,
    ],
  ];
  await withTempDir(async (dir) => {
    for (const [what, bytes, pattern] of cases) {
      const path = join(dir, `${what}.gguf`);
      await Deno.writeFile(path, bytes);
      const e = await assertRejectsNaming(() => openGguf(path), path, pattern);
      assert.ok(e instanceof CheckpointError, what);
    }
    // The same key twice: the second entry's key renamed to the first's.
    const twice = ggufBytes({ "x.y": [4, 1], "x.z": [4, 2] }, {});
    twice[indexOf(twice, "x.z") + 2] = "y".charCodeAt(0);
    await Deno.writeFile(join(dir, "twice.gguf"), twice);
    await assertRejects(() => openGguf(join(dir, "twice.gguf")), /metadata x\.y: the key appears twice/);
  });
});

/** llama.cpp's Q4_K_M choice, roughly: Q6_K for the head, attn_v and ffn_down, Q4_K for the other matrices. */
function q4KM(name: string): string | undefined {
  if (name.endsWith("norm.weight")) return undefined;
  return /^output\.|attn_v|ffn_down/.test(name) ? "Q6_K" : "Q4_K";
}

Deno.test("a Q4_K_M-style GGUF loads: every tensor exactly as its type dequantizes, near the f32 weights", async () => {
  const model = tinyLlama({
    n_embd: 256,
    n_head: 4,
    n_kv_head: 2,
    n_hidden: 512,
    vocab_size: 24,
    tie_embeddings: false,
  });
  const { config } = model;
  await withTempDir(async (dir) => {
    const path = join(dir, "q4_k_m.gguf");
    await Deno.writeFile(path, llamaGguf(model, { mix: q4KM }));
    const gguf = await openGguf(path);
    const types = [...gguf.tensors.values()].map((t) => ggmlTypeName(t.type));
    gguf.close();
    assert.deepEqual([...new Set(types)].sort(), ["F32", "Q4_K", "Q6_K"]);
    const loaded = await loadModel(path);
    const hs = config.n_embd / config.n_head;
    for (const spec of paramSpecs(config)) {
      const name = ggufTensorName(spec as DecoderParamSpec), type = q4KM(name);
      const want = model.params.get(spec.name)!;
      const got = loaded.params.get(spec.name)!;
      if (!type) {
        assert.deepEqual(got, want, name);
        continue;
      }
      // What llama.cpp stores and reads back, in its interleaved RoPE rows for Q and K.
      const heads = spec.key === "self_attn.q_proj.weight"
        ? config.n_head
        : spec.key === "self_attn.k_proj.weight"
        ? config.n_kv_head
        : 0;
      const stored = heads ? toInterleavedRope(want, { heads, hs }) : want;
      let expected = dequantize(ggmlTypeNamed(type)!, quantize(type, stored), stored.length);
      if (heads) expected = fromInterleavedRope(expected, { heads, hs });
      assert.deepEqual(got, expected, name);
      assertCloseNorm(got, want, type === "Q6_K" ? 0.03 : 0.15, name);
    }
  });
});
