import assert from "node:assert/strict";
import { DataError, GPT2_EOT, loadTokenizer, TOKENIZER_NAMES } from "@inheritune/data";
import { assertRejects } from "../_assert.ts";

Deno.test("gpt2 tokenizer gives GPT-2's ids and vocabulary", async () => {
  const gpt2 = await loadTokenizer("gpt2");
  assert.equal(gpt2.vocabSize, 50257);
  assert.equal(gpt2.eotToken, 50256);
  assert.equal(GPT2_EOT, 50256);
  assert.deepEqual(gpt2.encode("Hello world"), [15496, 995]);
  assert.deepEqual(gpt2.encode(" the"), [262]);
  assert.equal(gpt2.decode([15496, 995]), "Hello world");
});

Deno.test("gpt2 tokenizer round-trips text and treats a literal <|endoftext|> as plain text", async () => {
  const gpt2 = await loadTokenizer("gpt2");
  const text = "Héllo, wörld! 你好 🙂\n\n  tabs\tand <|endoftext|> stays text.";
  const ids = gpt2.encode(text);
  assert.ok(!ids.includes(GPT2_EOT));
  assert.equal(gpt2.decode(ids), text);
});

Deno.test("bytes tokenizer is one token per UTF-8 byte", async () => {
  const bytes = await loadTokenizer("bytes");
  assert.equal(bytes.vocabSize, 256);
  assert.equal(bytes.eotToken, undefined);
  assert.deepEqual(bytes.encode("aé"), [0x61, 0xc3, 0xa9]);
  assert.equal(bytes.decode([0x61, 0xc3, 0xa9]), "aé");
  assert.equal(bytes.decode([0xff]), "\ufffd");
});

Deno.test("unknown tokenizer specs and .gguf files are a DataError saying what is accepted", async () => {
  assert.deepEqual([...TOKENIZER_NAMES].sort(), ["bytes", "gpt2"]);
  const e = await assertRejects(
    () => loadTokenizer("llama"),
    /^unknown tokenizer "llama": not gpt2, bytes, a SentencePiece \.model, a tokenizer\.json/,
  );
  assert.ok(e instanceof DataError);
  const g = await assertRejects(
    () => loadTokenizer("models/stories260K/model.gguf"),
    /GGUF tokenizers are resolved by/,
  );
  assert.ok(g instanceof DataError);
});

Deno.test("gpt2 decode calls are independent: a partial character never leaks into the next call", async () => {
  const t = await loadTokenizer("gpt2");
  const ids = t.encode("日本");
  assert.equal(t.decode(ids.slice(0, 1)), "\uFFFD");
  assert.equal(t.decode(ids.slice(1, 2)), "\uFFFD");
  assert.equal(t.decode(ids), "日本");
  assert.equal(t.decode([15496, 995]), "Hello world");
});
