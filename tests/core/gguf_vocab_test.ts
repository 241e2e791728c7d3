/**
 * GGUF vocabularies tokenize as llama.cpp does: its own vocabulary-only files and test vectors
 * (`tests/fixtures/gguf_vocab/`) for every pre-tokenizer supported here and for SentencePiece;
 * the `qwen2` and `llama-bpe` vectors with the real Qwen2 (and, where `INHERITUNE_LLAMA3_TOKENIZER`
 * names a copy, Llama 3) vocabularies as their GGUF files carry them; and one line naming the file for a
 * vocabulary or pre-tokenizer that is not supported.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadModelTokenizer } from "@inheritune/core";
import { byteLevelBpeTokenizer, DataError, PieceType, type Tokenizer } from "@inheritune/data";
import { assertRejects } from "../_assert.ts";
import { gunzip, withTempDir } from "../_util.ts";
import { HAS_LLAMA3, LLAMA3 } from "../data/_llama3.ts";
import { ggufBytes } from "./_model_files.ts";

const VOCAB = new URL("../fixtures/gguf_vocab/", import.meta.url);
const SEPARATOR = "\n__ggml_vocab_test__\n";

/** llama.cpp's test strings of `name` and its ids for each. */
async function vectors(name: string): Promise<{ text: string; ids: number[] }[]> {
  const inp = await Deno.readTextFile(new URL(`ggml-vocab-${name}.gguf.inp`, VOCAB));
  const out = await Deno.readTextFile(new URL(`ggml-vocab-${name}.gguf.out`, VOCAB));
  // Both files end with a separator (a newline): the last piece is empty and no case.
  const texts = inp.split(SEPARATOR);
  assert.equal(texts.pop(), "");
  const lines = out.split("\n");
  assert.equal(lines.pop(), "");
  assert.equal(texts.length, lines.length, name);
  return texts.map((text, i) => ({
    text,
    ids: lines[i].trim() === "" ? [] : lines[i].trim().split(/\s+/).map(Number),
  }));
}

/** Checks that `t` gives llama.cpp's ids for every test string of `name`. */
async function assertVectors(t: Tokenizer, name: string): Promise<void> {
  const cases = await vectors(name);
  assert.ok(cases.length >= 40, name);
  const bad = cases.filter((c) => JSON.stringify(t.encode(c.text)) !== JSON.stringify(c.ids));
  assert.deepEqual(bad.map((c) => c.text), [], `${name}: ${bad.length} of ${cases.length} cases differ`);
}

/** The GGUF fixture `name` unpacked into `dir`. */
async function unpacked(dir: string, name: string): Promise<string> {
  const path = join(dir, `ggml-vocab-${name}.gguf`);
  await Deno.writeFile(path, await gunzip(new URL(`ggml-vocab-${name}.gguf.gz`, VOCAB)));
  return path;
}

const FILES: [string, string][] = [
  ["gpt-2", "tokenizer.json"],
  ["mpt", "tokenizer.json"],
  ["starcoder", "tokenizer.json"],
  ["refact", "tokenizer.json"],
  ["falcon", "tokenizer.json"],
  ["deepseek-coder", "tokenizer.json"],
  ["deepseek-llm", "tokenizer.json"],
  ["llama-spm", "sentencepiece"],
  ["phi-3", "sentencepiece"],
];

for (const [name, kind] of FILES) {
  Deno.test(`llama.cpp's ggml-vocab-${name}.gguf gives llama.cpp's ids on every test string`, async () => {
    await withTempDir(async (dir) => {
      const t = await loadModelTokenizer(await unpacked(dir, name));
      assert.equal(t.kind, kind);
      await assertVectors(t, name);
    });
  });
}

/**
 * A Hugging Face `tokenizer.json`'s byte-level BPE vocabulary as llama.cpp's converter writes it
 * into a GGUF file (tokens by id, merges as "left right", added tokens as control or user-defined),
 * run with the pre-tokenizer `pre`.
 */
function asGguf(json: string, pre: string): Tokenizer {
  const { model, added_tokens: added } = JSON.parse(json) as {
    model: { vocab: Record<string, number>; merges: (string | [string, string])[] };
    added_tokens: { id: number; content: string; special: boolean }[];
  };
  const tokens: string[] = [];
  const types: number[] = [];
  for (const [token, id] of Object.entries(model.vocab)) [tokens[id], types[id]] = [token, PieceType.normal];
  for (const t of added) {
    [tokens[t.id], types[t.id]] = [t.content, t.special ? PieceType.control : PieceType.userDefined];
  }
  const merges = model.merges.map((m) => (typeof m === "string" ? m : m.join(" ")));
  return byteLevelBpeTokenizer({ tokens, merges, types, pre });
}

Deno.test("the qwen2 pre-tokenizer on Qwen2's vocabulary gives llama.cpp's ids on every test string", async () => {
  const json = new TextDecoder().decode(
    await gunzip(new URL("../fixtures/tokenizers/qwen2/tokenizer.json.gz", import.meta.url)),
  );
  await assertVectors(asGguf(json, "qwen2"), "qwen2");
});

Deno.test({
  name:
    "the llama-bpe pre-tokenizer on Llama 3's vocabulary (when INHERITUNE_LLAMA3_TOKENIZER names it) gives llama.cpp's ids",
  ignore: !HAS_LLAMA3,
  fn: async () => await assertVectors(asGguf(await Deno.readTextFile(LLAMA3!), "llama-bpe"), "llama-bpe"),
});

Deno.test("a vocabulary or pre-tokenizer llama.cpp has and this project does not is one line naming the file", async () => {
  await withTempDir(async (dir) => {
    const bert = await unpacked(dir, "bert-bge");
    const e = await assertRejects(
      () => loadModelTokenizer(bert),
      /ggml-vocab-bert-bge\.gguf: tokenizer\.ggml\.model "bert" is not supported/,
    );
    assert.ok(e instanceof DataError && !e.message.includes("\n"));
    const tokens = ["a", "b", "ab"];
    for (const pre of ["qwen35", "command-r", "gemma4"]) {
      const path = join(dir, `${pre}.gguf`);
      await Deno.writeFile(
        path,
        ggufBytes({
          "tokenizer.ggml.model": [8, "gpt2"],
          "tokenizer.ggml.pre": [8, pre],
          "tokenizer.ggml.tokens": [9, tokens, 8],
          "tokenizer.ggml.merges": [9, ["a b"], 8],
        }, {}),
      );
      const e = await assertRejects(
        () => loadModelTokenizer(path),
        new RegExp(
          `${pre}\\.gguf: tokenizer\\.ggml\\.pre: byte-level BPE pre-tokenizer "${pre}" is not supported \\(supported: default, gpt-2, `,
        ),
      );
      assert.ok(e instanceof DataError && !e.message.includes("\n"));
    }
  });
});

Deno.test("a GGUF string that starts with U+FEFF keeps it: llama-spm's token 30143 is the BOM character", async () => {
  await withTempDir(async (dir) => {
    const t = await loadModelTokenizer(await unpacked(dir, "llama-spm"));
    assert.equal(t.token(30143), "\ufeff");
    assert.deepEqual(t.encode("\ufeff").includes(30143), true);
  });
});
