import assert from "node:assert/strict";
import { join } from "node:path";
import {
  builtinByteLevelModel,
  byteLevelBpeJson,
  byteLevelBpeTokenizer,
  CORPORA,
  DataError,
  jsonTokenizer,
  loadTokenizer,
  parseSentencePieceModel,
  prepare,
  sentencePieceToJson,
} from "@inheritune/data";
import { assertRejects } from "../_assert.ts";
import { withTempDir } from "../_util.ts";
import { readSplit } from "./_fixtures.ts";
import { mismatches, tinyStoriesIds, tinyStoriesParagraphs, TOK512, tok512Cases } from "./_tok512.ts";
import { byteLevelBpeEncoder } from "../../data/_byte_level_bpe.ts";

const EDGE = [
  "Héllo, wörld! 你好 🙂\n\n  tabs\tand <|endoftext|> stays text.  x   \n",
  "digits 1234567890, contractions I'm you're they'll we've, CAPS and    spaces\r\n",
  "",
];

Deno.test("byte-fallback BPE tokenizer.json (tok512 converted Llama-2 style) gives sentencepiece's ids", async () => {
  const { paragraphs, ids } = await tinyStoriesIds();
  const fixture = await tok512Cases();
  const model = parseSentencePieceModel(await Deno.readFile(TOK512));
  const t = jsonTokenizer(sentencePieceToJson(model));
  assert.deepEqual([t.vocabSize, t.eotToken, t.bosToken, t.eosToken], [512, 1, 1, 2]);
  const bad = mismatches(paragraphs.map((p) => t.encode(p)), ids);
  assert.deepEqual(bad, [], `${bad.length} of ${paragraphs.length} paragraphs differ`);
  // Known difference: Tokenizers.js still prepends "▁" to text that normalizes to nothing.
  const badCases = mismatches(fixture.cases.map((c) => t.encode(c)), fixture.ids.tok512);
  assert.deepEqual(badCases.map((i) => fixture.cases[i]), [" ", "   "]);
  assert.deepEqual(t.encode(" "), [model.pieces.indexOf("\u2581")]);
  for (let i = 0; i < 200; i++) assert.equal(t.decode([1, ...ids[i]]), paragraphs[i].replace(/ {2,}/g, " "));
});

Deno.test("byte-level BPE from GPT-2's vocabulary and merges gives gpt-tokenizer's ids", async () => {
  const gpt2 = await loadTokenizer("gpt2");
  const t = byteLevelBpeTokenizer((await builtinByteLevelModel("gpt2"))!);
  assert.deepEqual([t.vocabSize, t.eotToken, t.eosToken, t.bosToken], [50257, 50256, 50256, undefined]);
  const { paragraphs } = await tinyStoriesIds();
  const brown = CORPORA.brown;
  const files = (await brown.files()).slice(0, 40);
  const texts = [
    ...paragraphs,
    ...await Promise.all(files.map(async (f) => brown.toText(await Deno.readTextFile(f.path)))),
    ...EDGE,
  ];
  const bad = mismatches(texts.map((p) => t.encode(p)), texts.map((p) => gpt2.encode(p)));
  assert.deepEqual(bad, [], `${bad.length} of ${texts.length} texts differ`);
  for (const text of EDGE) assert.equal(t.decode(t.encode(text)), text);
  assert.ok(!t.encode(EDGE[0]).includes(50256), "a literal <|endoftext|> is plain text");
  assert.equal(t.splitsAtSpaces, true);
});

Deno.test("tokenizer.json files and folders load; prepare copies the definition, with the same hash", async () => {
  const json = sentencePieceToJson(parseSentencePieceModel(await Deno.readFile(TOK512)));
  await withTempDir(async (dir) => {
    const model = join(dir, "model");
    await Deno.mkdir(model);
    await Deno.writeTextFile(join(model, "tokenizer.json"), JSON.stringify(json));
    const fromFile = await loadTokenizer(join(model, "tokenizer.json"));
    const fromFolder = await loadTokenizer(model);
    assert.equal(fromFile.hash, fromFolder.hash);
    assert.equal(fromFile.name, "tokenizer.json");
    await Deno.writeTextFile(join(dir, "a.txt"), "Once upon a time, Lily ran.\n\nShe was   happy.\n");
    const out = join(dir, "data");
    const meta = await prepare({
      inputs: [join(dir, "a.txt")],
      out,
      tokenizer: model,
      valFraction: 0,
      chunkBytes: 8,
    });
    assert.equal(meta.tokenizerFile, "tokenizer.json");
    assert.equal(meta.documentRule, "files");
    assert.equal((await loadTokenizer(out)).hash, fromFile.hash);
    assert.deepEqual(await readSplit(out, "train"), [
      1,
      ...fromFile.encode("Once upon a time, Lily ran.\n\nShe was   happy.\n"),
    ]);
  });
});

Deno.test("corrupt or unusable tokenizer.json files are one-line DataErrors naming the file", async () => {
  await withTempDir(async (dir) => {
    const cases: [string, RegExp][] = [
      ["{not json", /bad\.json: not valid JSON/],
      ["[1, 2]", /bad\.json: not a tokenizer\.json: no model object/],
      [
        JSON.stringify({ model: { type: "Nonsense" } }),
        /bad\.json: not a usable tokenizer\.json \(Nonsense\)/,
      ],
    ];
    for (const [text, pattern] of cases) {
      const path = join(dir, "bad.json");
      await Deno.writeTextFile(path, text);
      const e = await assertRejects(() => loadTokenizer(path), pattern);
      assert.ok(e instanceof DataError && !e.message.includes("\n"));
    }
  });
});

Deno.test("byte-level BPE pre-tokenizers: Llama 3's regex splits digits in threes; unknown names are refused", async () => {
  const vocab = { ...(await builtinByteLevelModel("gpt2"))!, pre: undefined };
  const llama3 = byteLevelBpeTokenizer({ ...vocab, pre: "llama-bpe" });
  const gpt2 = byteLevelBpeTokenizer({ ...vocab, pre: "gpt-2" });
  const digits = (t: typeof gpt2): string[] => t.encode("1234567").map((id) => t.decode([id]));
  assert.deepEqual(digits(llama3), ["123", "456", "7"]);
  assert.notDeepEqual(digits(gpt2), digits(llama3));
  assert.throws(
    () => byteLevelBpeJson({ ...vocab, pre: "mystery" }),
    /pre-tokenizer "mystery" is not supported/,
  );
  const bos = byteLevelBpeTokenizer({ ...vocab, pre: "gpt-2", bosId: 50256, addBos: true });
  assert.equal(bos.bosToken, 50256);
  // llama.cpp's "default", for a file that names none, cuts punctuation runs off first.
  const fallback = byteLevelBpeTokenizer(vocab);
  assert.deepEqual(fallback.encode("don't").map((id) => fallback.token(id)), ["don", "'", "t"]);
  assert.deepEqual(gpt2.encode("don't").map((id) => gpt2.token(id)), ["don", "'t"]);
});

Deno.test("the fast byte-level BPE encoder merges the lowest rank first, leftmost on ties, and drops bytes without a token", () => {
  const vocab = new Map(["a", "b", "c", "ab", "bc", "abc", "aa", "aaa"].map((t, i) => [t, i]));
  const spec = {
    vocab,
    merges: [["b", "c"], ["a", "b"], ["a", "a"], ["a", "bc"], ["aa", "a"]] as [string, string][],
    splits: [/ ?[a-z]+|\s+/gu],
    nfc: false,
    ignoreMerges: false,
  };
  const encode = byteLevelBpeEncoder(spec)!;
  const tokens = (text: string): string[] => encode(text).map((id) => [...vocab.keys()][id]);
  assert.deepEqual(tokens("abc"), ["abc"], "b c (rank 0) before a b (rank 1)");
  assert.deepEqual(tokens("aaaa"), ["aa", "aa"], "a a leftmost first, then a a again");
  assert.deepEqual(tokens("aaa"), ["aaa"]);
  assert.deepEqual(
    tokens("axb"),
    ["ab"],
    "x has no token: dropped before merging, as the Rust library does",
  );
  assert.equal(byteLevelBpeEncoder({ ...spec, merges: [["a", "x"]] }), undefined, "a merge of a non-token");
});

Deno.test("GPT-2's vocabulary gives the same ids on the fast encoder and on Tokenizers.js", async () => {
  const json = byteLevelBpeJson((await builtinByteLevelModel("gpt2"))!);
  const fast = jsonTokenizer(json);
  // Tokenizers.js runs every definition with a normalizer other than NFC.
  const slow = jsonTokenizer({ ...json, normalizer: { type: "Sequence", normalizers: [] } });
  const texts = [...await tinyStoriesParagraphs(), ...EDGE, "controls \u0004\u0006 and \u{40000}"];
  const bad = mismatches(texts.map((t) => fast.encode(t)), texts.map((t) => slow.encode(t)));
  assert.deepEqual(bad, [], `${bad.length} of ${texts.length} texts differ`);
});
