/** The tok512 fixtures of `scripts/tokenizer_fixtures.py`: TinyStories paragraphs and edge cases with sentencepiece's ids. */
import assert from "node:assert/strict";
import { gunzip } from "../_util.ts";

const FIXTURES = new URL("../fixtures/", import.meta.url);
/** Paragraphs: text between blank lines, stripped, as the fixture script splits them. */
const BLANK_LINE = /\s*\n[^\S\n]*\n\s*/;

/** The TinyStories text the paragraphs come from. */
export const TINYSTORIES = new URL("../../corpora/tinystories/valid_head.txt", import.meta.url);
/** stories260K's SentencePiece model. */
export const TOK512 = new URL("../../models/stories260K/tokenizer.model", import.meta.url);

/** Every paragraph of the TinyStories text. */
export async function tinyStoriesParagraphs(): Promise<string[]> {
  const text = await Deno.readTextFile(TINYSTORIES);
  return text.trim().split(BLANK_LINE).filter((p) => p !== "");
}

/** Every paragraph of the TinyStories text with sentencepiece's ids for it under tok512. */
export async function tinyStoriesIds(): Promise<{ paragraphs: string[]; ids: number[][] }> {
  const paragraphs = await tinyStoriesParagraphs();
  const bytes = await gunzip(new URL("tok512_tinystories.bin.gz", FIXTURES));
  const view = new DataView(bytes.buffer);
  const n = view.getUint32(0, true);
  assert.equal(n, paragraphs.length, "the fixture's paragraphs are the text's");
  const encoder = new TextEncoder();
  const ids: number[][] = [];
  let at = 4 + 8 * n;
  for (let i = 0; i < n; i++) {
    const count = view.getUint32(4 + 4 * i, true);
    assert.equal(
      view.getUint32(4 + 4 * (n + i), true),
      encoder.encode(paragraphs[i]).length,
      `paragraph ${i}`,
    );
    ids.push(Array.from(new Uint16Array(bytes.buffer.slice(at, at + 2 * count))));
    at += 2 * count;
  }
  assert.equal(at, bytes.length);
  return { paragraphs, ids };
}

/** Edge-case strings with sentencepiece's ids and decoded text, for tok512 and each variant. */
export interface CaseFixture {
  cases: string[];
  ids: Record<string, number[][]>;
  decoded: Record<string, string[]>;
  /** Paragraph index → ids, for the paragraphs whose ids change when extra spaces are kept. */
  keep_spaces_paragraphs: Record<string, number[]>;
}

/** The edge-case fixture. */
export async function tok512Cases(): Promise<CaseFixture> {
  return JSON.parse(await Deno.readTextFile(new URL("tok512_cases.json", FIXTURES)));
}

/** Indices where `actual` and `expected` differ, for one assertion message. */
export function mismatches(actual: number[][], expected: number[][]): number[] {
  const bad: number[] = [];
  for (let i = 0; i < expected.length; i++) {
    if (actual[i].length !== expected[i].length || actual[i].some((t, k) => t !== expected[i][k])) {
      bad.push(i);
    }
  }
  return bad;
}
