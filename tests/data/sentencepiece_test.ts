import assert from "node:assert/strict";
import { join } from "node:path";
import {
  checkTokenizerMatch,
  DataError,
  encodeSentencePieceModel,
  loadTokenizer,
  parseSentencePieceModel,
  PieceType,
  prepare,
  sentencePieceTokenizer,
} from "@inheritune/data";
import { VARIANTS } from "../../scripts/sentencepiece_variants.ts";
import { assertRejects, assertThrows } from "../_assert.ts";
import { withTempDir } from "../_util.ts";
import { readSplit } from "./_fixtures.ts";
import { mismatches, TINYSTORIES, tinyStoriesIds, TOK512, tok512Cases } from "./_tok512.ts";

const tok512Bytes = await Deno.readFile(TOK512);
const tok512 = parseSentencePieceModel(tok512Bytes);

Deno.test("tok512.model parses to 512 pieces: byte fallback, BOS 1, EOS 2, unk 0, SentencePiece's flags", () => {
  assert.equal(tok512.pieces.length, 512);
  assert.deepEqual([tok512.unkId, tok512.bosId, tok512.eosId, tok512.padId], [0, 1, 2, -1]);
  assert.deepEqual(tok512.types.slice(0, 4), [
    PieceType.unknown,
    PieceType.control,
    PieceType.control,
    PieceType.byte,
  ]);
  assert.equal(tok512.pieces[3 + 0x0a], "<0x0A>");
  assert.deepEqual([tok512.pieces[260], tok512.scores[260]], ["he", -1]);
  assert.equal(tok512.byteFallback, true);
  assert.equal(tok512.addDummyPrefix, true);
  assert.equal(tok512.removeExtraWhitespaces, true);
  assert.equal(tok512.modelType, 2);
});

Deno.test("tok512 gives sentencepiece's ids for every TinyStories paragraph, and decodes them back", async () => {
  const { paragraphs, ids } = await tinyStoriesIds();
  const t = await loadTokenizer(TOK512.pathname);
  const bad = mismatches(paragraphs.map((p) => t.encode(p)), ids);
  assert.deepEqual(bad, [], `${bad.length} of ${paragraphs.length} paragraphs differ`);
  for (let i = 0; i < paragraphs.length; i++) {
    assert.equal(t.decode([t.bosToken!, ...ids[i], t.eosToken!]), paragraphs[i].replace(/ {2,}/g, " "));
  }
});

Deno.test("tok512 and its flag variants give sentencepiece's ids and text on edge cases", async () => {
  const fixture = await tok512Cases();
  const models = { tok512: (m: typeof tok512) => m, ...VARIANTS };
  for (const [name, make] of Object.entries(models)) {
    const t = sentencePieceTokenizer(make(tok512));
    const ids = fixture.cases.map((c) => t.encode(c));
    const bad = mismatches(ids, fixture.ids[name]);
    assert.deepEqual(bad.map((i) => fixture.cases[i]), [], `${name}: cases whose ids differ`);
    assert.deepEqual(
      fixture.ids[name].map((i) => t.decode(i)),
      fixture.decoded[name],
      `${name}: decoded text`,
    );
  }
});

Deno.test("with extra spaces kept (llama.cpp's GGUF default) the paragraphs with runs of spaces change as sentencepiece's", async () => {
  const { paragraphs, ids } = await tinyStoriesIds();
  const fixture = await tok512Cases();
  const t = sentencePieceTokenizer(VARIANTS.keep_spaces(tok512));
  const expected = ids.map((p, i) => fixture.keep_spaces_paragraphs[i] ?? p);
  assert.ok(Object.keys(fixture.keep_spaces_paragraphs).length > 0);
  assert.deepEqual(mismatches(paragraphs.map((p) => t.encode(p)), expected), []);
});

Deno.test("a .model written from the vocabulary arrays parses back to the same model and hash", () => {
  const written = encodeSentencePieceModel(tok512);
  const back = parseSentencePieceModel(written);
  assert.deepEqual({ ...back, precompiledCharsmap: undefined }, {
    ...tok512,
    precompiledCharsmap: undefined,
  });
  assert.deepEqual(encodeSentencePieceModel(back), written);
  // A GGUF-style model: plain arrays, no unk surface or model type given.
  const fromArrays = sentencePieceTokenizer({
    pieces: [...tok512.pieces],
    scores: [...tok512.scores],
    types: [...tok512.types],
    bosId: 1,
    eosId: 2,
    unkId: 0,
    padId: -1,
    addDummyPrefix: true,
    removeExtraWhitespaces: true,
    escapeWhitespaces: true,
    byteFallback: true,
  });
  assert.equal(fromArrays.hash, sentencePieceTokenizer(tok512).hash);
  assert.notEqual(sentencePieceTokenizer(VARIANTS.keep_spaces(tok512)).hash, fromArrays.hash);
});

Deno.test("encoding a text in pieces cut before a space after a word, the rest as continuations, gives the whole text's ids", async () => {
  const t = sentencePieceTokenizer(tok512);
  assert.equal(t.splitsAtSpaces, true);
  const text = (await Deno.readTextFile(TINYSTORIES)).slice(0, 20_000);
  const whole = t.encode(text);
  for (const cut of [5, 37, 1000, 4093, 12_345]) {
    const at = text.slice(cut).search(/(?<=[a-z]) /) + cut;
    assert.deepEqual(
      [...t.encode(text.slice(0, at)), ...t.encode(text.slice(at), { continuing: true })],
      whole,
    );
  }
  assert.deepEqual(t.encode("a   b", { continuing: true }), t.encode("a b", { continuing: true }));
  assert.deepEqual(t.encode(" a", { continuing: true }), t.encode("x a").slice(-1));
});

Deno.test("prepare with tok512: BOS then sentencepiece's ids for each paragraph, at any chunk size", async () => {
  const { ids } = await tinyStoriesIds();
  await withTempDir(async (dir) => {
    for (const chunkBytes of [4096, 1 << 20]) {
      const out = join(dir, `p${chunkBytes}`);
      const meta = await prepare({
        inputs: [TINYSTORIES.pathname],
        out,
        tokenizer: TOK512.pathname,
        documents: "paragraphs",
        valFraction: 0,
        chunkBytes,
      });
      assert.deepEqual(
        await readSplit(out, "train"),
        ids.flatMap((p) => [1, ...p]),
        `chunkBytes ${chunkBytes}`,
      );
      assert.equal(meta.splits.val, undefined);
      assert.deepEqual([meta.tokenizer, meta.tokenizerFile, meta.vocabSize, meta.eotToken], [
        "sentencepiece",
        "tokenizer.model",
        512,
        1,
      ]);
      assert.deepEqual([meta.bosToken, meta.eosToken, meta.dtype, meta.documentRule], [
        1,
        2,
        "uint16",
        "paragraphs",
      ]);
      // The folder carries its tokenizer: the copy loads with the same hash.
      const copy = await loadTokenizer(out);
      assert.equal(copy.hash, meta.tokenizerHash);
      checkTokenizerMatch(meta, await loadTokenizer(TOK512.pathname), out);
    }
  });
});

Deno.test("prepare with tok512, the whole file one document: the streamed ids equal encoding it whole", async () => {
  const text = await Deno.readTextFile(TINYSTORIES);
  const t = await loadTokenizer(TOK512.pathname);
  await withTempDir(async (dir) => {
    await prepare({
      inputs: [TINYSTORIES.pathname],
      out: dir,
      tokenizer: t,
      documents: "files",
      valFraction: 0,
      chunkBytes: 3000,
    });
    assert.deepEqual(await readSplit(dir, "train"), [1, ...t.encode(text)]);
  });
});

Deno.test("corrupt .model files and unsupported models are one-line DataErrors naming the file", async () => {
  await withTempDir(async (dir) => {
    const cases: [Uint8Array, RegExp][] = [
      [tok512Bytes.slice(0, 1000), /bad\.model: not a SentencePiece model: .*runs past the end/],
      [new TextEncoder().encode("hello, not a protobuf"), /bad\.model: not a SentencePiece model/],
      [new Uint8Array(0), /bad\.model: not a SentencePiece model: no pieces/],
      [
        encodeSentencePieceModel({ ...tok512, modelType: 1 }),
        /bad\.model: SentencePiece unigram models are not supported/,
      ],
    ];
    for (const [bytes, pattern] of cases) {
      const path = join(dir, "bad.model");
      await Deno.writeFile(path, bytes);
      const e = await assertRejects(() => loadTokenizer(path), pattern);
      assert.ok(e instanceof DataError);
      assert.ok(!e.message.includes("\n"));
    }
  });
  assertThrows(() => sentencePieceTokenizer({ ...tok512, scores: [1] }), /512 pieces but 1 scores/);
});

Deno.test("data prepared with one tokenizer and a model with another: one-line DataError naming both", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "a.txt"), "Once upon a time.\n\nThe end.");
    const meta = await prepare({ inputs: [join(dir, "a.txt")], out: join(dir, "gpt2"), valFraction: 0 });
    const e = assertThrows(
      () => checkTokenizerMatch(meta, sentencePieceTokenizer(tok512), "runs/data"),
      /^runs\/data: data was tokenized with gpt2 [0-9a-f]{12} \(50257 ids\) but the model uses sentencepiece [0-9a-f]{12} \(512 ids\)/,
    );
    assert.ok(e instanceof DataError);
    checkTokenizerMatch(meta, await loadTokenizer("gpt2"), "runs/data");
  });
});
