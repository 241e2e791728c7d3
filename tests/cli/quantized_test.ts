/**
 * A quantized GGUF through the command line: `prepare` takes its tokenizer and `eval` its
 * weights, dequantized at load, as from any other model file.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type GgufEntry, type GgufValue, openGguf } from "@inheritune/core";
import { llamaGguf, tinyLlama } from "../core/_model_files.ts";
import { runCli, withTempDir } from "../_util.ts";

/** stories260K's `tokenizer.ggml.*` keys (512-token SentencePiece) as test-writer entries. */
async function stories260KTokenizer(): Promise<Record<string, GgufEntry>> {
  const gguf = await openGguf("models/stories260K/model.gguf");
  gguf.close();
  const entry = (key: string, v: GgufValue): GgufEntry => {
    if (typeof v === "string") return [8, v];
    if (!Array.isArray(v)) return [4, Number(v)];
    if (typeof v[0] === "string") return [9, v as string[], 8];
    return [9, v as number[], key.endsWith("token_type") ? 5 : 6];
  };
  return Object.fromEntries(
    [...gguf.metadata].filter(([k]) => k.startsWith("tokenizer.")).map(([k, v]) => [k, entry(k, v)]),
  );
}

Deno.test("prepare and eval run on a Q4_K_M-style GGUF (Q4_K and Q6_K matrices, C = 256)", async () => {
  await withTempDir(async (dir) => {
    const model = tinyLlama({
      n_layer: 1,
      n_embd: 256,
      n_head: 4,
      n_kv_head: 2,
      n_hidden: 512,
      vocab_size: 512,
      tie_embeddings: false,
    });
    const path = join(dir, "q4_k_m.gguf");
    const mix = (name: string) =>
      name.endsWith("norm.weight") ? undefined : /^output\.|attn_v|ffn_down/.test(name) ? "Q6_K" : "Q4_K";
    await Deno.writeFile(path, llamaGguf(model, { mix, metadata: await stories260KTokenizer() }));
    const data = join(dir, "data");
    const prepared = await runCli([
      "prepare",
      "--input",
      "corpora/tinystories/valid_head.txt",
      "--out",
      data,
      "--tokenizer",
      path,
      "--max-tokens",
      "4000",
    ]);
    assert.equal(prepared.code, 0, prepared.stderr);
    const r = await runCli([
      "eval",
      "--model",
      path,
      "--data",
      data,
      "--tasks",
      "none",
      "--ctx",
      "32",
      "--max-tokens",
      "128",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const { loss } = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
    // Random weights (uniform ±1), so a loss far above ln 512, but computed from the dequantized tensors.
    assert.ok(Number.isFinite(loss) && loss > 0, r.stdout);
  });
});
