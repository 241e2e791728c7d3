/**
 * A model's own tokenizer from GGUF metadata: stories260K's vocabulary gives sentencepiece's ids
 * for every TinyStories paragraph (the tok512 fixtures of `scripts/tokenizer_fixtures.py`), with
 * extra spaces kept as llama.cpp keeps them for a file without `remove_extra_whitespaces`.
 */
import assert from "node:assert/strict";
import { loadModelTokenizer } from "@inheritune/core";
import { mismatches, tinyStoriesIds, tok512Cases } from "../data/_tok512.ts";

const STORIES = new URL("../../models/stories260K/model.gguf", import.meta.url).pathname;

Deno.test("the vocabulary inside stories260K.gguf gives sentencepiece's ids (extra spaces kept) for every TinyStories paragraph", async () => {
  const tokenizer = await loadModelTokenizer(STORIES);
  assert.deepEqual([tokenizer.kind, tokenizer.vocabSize, tokenizer.bosToken, tokenizer.eosToken], [
    "sentencepiece",
    512,
    1,
    2,
  ]);
  const { paragraphs, ids } = await tinyStoriesIds();
  const { cases, ids: caseIds, keep_spaces_paragraphs: keptSpaces } = await tok512Cases();
  for (const [i, kept] of Object.entries(keptSpaces)) ids[Number(i)] = kept;
  const got = paragraphs.map((p) => tokenizer.encode(p));
  const bad = mismatches(got, ids);
  assert.equal(
    bad.length,
    0,
    `${bad.length} of ${paragraphs.length} paragraphs differ, e.g. ${bad.slice(0, 3)}`,
  );
  // Decoding gives the text back.
  for (let i = 0; i < paragraphs.length; i += 97) assert.equal(tokenizer.decode(got[i]), paragraphs[i]);
  assert.deepEqual(cases.map((c) => tokenizer.encode(c)), caseIds.keep_spaces);
});
