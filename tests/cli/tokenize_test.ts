/** `deno task tokenize`: ids and tokens of a text under each kind of tokenizer SPEC, and bad input. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { gunzip, runCli, withTempDir } from "../_util.ts";

const GPT2_VOCAB = new URL("../fixtures/gguf_vocab/ggml-vocab-gpt-2.gguf.gz", import.meta.url);

Deno.test("tokenize prints one id and JSON-quoted token per line, and a count on stderr", async () => {
  const r = await runCli(["tokenize", "--tokenizer", "gpt2", "--text", "Hello world\n🙂"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '15496\t"Hello"\n995\t"Ġworld"\n198\t"Ċ"\n8582\t"ðŁ"\n25081\t"ĻĤ"\n');
  assert.match(r.stderr, /^5 tokens from 16 bytes \(gpt2, 50257 ids, hash [0-9a-f]{12}\)\n$/);
});

Deno.test("tokenize --json reads a .gguf, a .model and a file's text alike", async () => {
  await withTempDir(async (dir) => {
    const gguf = join(dir, "gpt-2.gguf");
    await Deno.writeFile(gguf, await gunzip(GPT2_VOCAB));
    const text = join(dir, "t.txt");
    await Deno.writeTextFile(text, "Hello world");
    for (const source of [["--text", "Hello world"], ["--input", text]]) {
      const r = await runCli(["tokenize", "--tokenizer", gguf, ...source, "--json"]);
      assert.equal(r.code, 0, r.stderr);
      const json = JSON.parse(r.stdout);
      // llama.cpp's ids for the string (its ggml-vocab-gpt-2.gguf.out).
      assert.deepEqual(json.ids, [15496, 995]);
      assert.deepEqual(json.tokens, ["Hello", "Ġworld"]);
      assert.equal(json.tokenizer.vocabSize, 50257);
      assert.equal(r.stderr, "");
    }
    const sp = await runCli([
      "tokenize",
      "--tokenizer",
      "models/stories260K/tokenizer.model",
      "--text",
      "Once upon a time",
      "--json",
    ]);
    assert.equal(sp.code, 0, sp.stderr);
    const json = JSON.parse(sp.stdout);
    assert.deepEqual(json.ids, [403, 407, 261, 378]);
    assert.deepEqual(json.tokens, ["▁Once", "▁upon", "▁a", "▁time"]);
    assert.deepEqual([json.tokenizer.name, json.tokenizer.bos, json.tokenizer.eos], ["sentencepiece", 1, 2]);
  });
});

Deno.test("tokenize's bad input is one line naming the flag or file, exit 2", async () => {
  await withTempDir(async (dir) => {
    const binary = join(dir, "b.txt");
    await Deno.writeFile(binary, Uint8Array.of(0x68, 0xc0));
    const cases: [string[], RegExp][] = [
      [["--text", "x"], /^inheritune tokenize: --tokenizer is required$/],
      [["--tokenizer", "gpt2"], /^inheritune tokenize: give the text with exactly one of --text or --input$/],
      [
        ["--tokenizer", "gpt2", "--text", "x", "--input", binary],
        /^inheritune tokenize: give the text with exactly one of --text or --input$/,
      ],
      [
        ["--tokenizer", "gpt2", "--input", join(dir, "none.txt")],
        /^inheritune tokenize: --input .*none\.txt: no such file$/,
      ],
      [["--tokenizer", "gpt2", "--input", binary], /^inheritune tokenize: --input .*b\.txt: not UTF-8 text$/],
      [
        ["--tokenizer", "llama", "--text", "x"],
        /^inheritune tokenize: --tokenizer: unknown tokenizer "llama"/,
      ],
      [["--tokenizer", join(dir, "x.gguf"), "--text", "x"], /^inheritune tokenize: .*x\.gguf: /],
    ];
    for (const [args, pattern] of cases) {
      const r = await runCli(["tokenize", ...args]);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr.trimEnd(), pattern, args.join(" "));
      assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
      assert.equal(r.stdout, "");
    }
  });
});
