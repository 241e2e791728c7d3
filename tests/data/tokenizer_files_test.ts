/**
 * Real tokenizers of the families people derive from (`tests/fixtures/tokenizers/`; Llama 3's where
 * `INHERITUNE_LLAMA3_TOKENIZER` names a copy, since its licence keeps it out) give the reference libraries' ids, as `scripts/tokenize_fixtures.py` recorded them: Hugging
 * Face `tokenizers` for `tokenizer.json`, `sentencepiece` for `.model` files, on every TinyStories
 * paragraph, the whole text at once, and edge cases.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  byteLevelBpeModel,
  byteLevelBpeTokenizer,
  DataError,
  loadTokenizer,
  type Tokenizer,
} from "@inheritune/data";
import { gunzip, withTempDir } from "../_util.ts";
import { HAS_LLAMA3, LLAMA3 } from "./_llama3.ts";
import { TINYSTORIES, tinyStoriesParagraphs } from "./_tok512.ts";

const FIXTURES = new URL("../fixtures/tokenizers/", import.meta.url);

/** What the fixture script recorded for one tokenizer. */
interface Expected {
  tokens: number;
  /** Base64 of the 4-byte digest of each paragraph's ids. */
  digests: string;
  whole: { tokens: number; digest: string };
  cases: number[][];
}

const expected: {
  text: { sha256: string; paragraphs: number };
  cases: string[];
  tokenizers: Record<string, Expected>;
} = JSON.parse(new TextDecoder().decode(await gunzip(new URL("expected.json.gz", FIXTURES))));

/** The first 4 bytes of the SHA-256 of `ids` as little-endian uint32, as the fixture script computes it. */
function digest(ids: number[]): Uint8Array {
  return createHash("sha256").update(new Uint8Array(Uint32Array.from(ids).buffer)).digest().subarray(0, 4);
}

/** The fixture `name` (gzip-compressed under FIXTURES) unpacked into `dir` as `file`. */
async function unpacked(dir: string, name: string, file: string): Promise<string> {
  const path = join(dir, file);
  await Deno.writeFile(path, await gunzip(new URL(name, FIXTURES)));
  return path;
}

/** Checks `t` against the recorded ids of `name`. */
async function assertReferenceIds(t: Tokenizer, name: string): Promise<void> {
  const want = expected.tokenizers[name];
  const text = await Deno.readTextFile(TINYSTORIES);
  assert.equal(createHash("sha256").update(text).digest("hex"), expected.text.sha256, "the recorded text");
  const paragraphs = await tinyStoriesParagraphs();
  assert.equal(paragraphs.length, expected.text.paragraphs);
  const digests = Uint8Array.from(atob(want.digests), (c) => c.charCodeAt(0));
  const bad: number[] = [];
  let tokens = 0;
  paragraphs.forEach((p, i) => {
    const ids = t.encode(p);
    tokens += ids.length;
    if (!digest(ids).every((b, k) => b === digests[4 * i + k])) bad.push(i);
  });
  assert.deepEqual(bad, [], `${name}: ${bad.length} of ${paragraphs.length} paragraphs differ`);
  assert.equal(tokens, want.tokens);
  const whole = t.encode(text);
  assert.deepEqual(
    [whole.length, Array.from(digest(whole), (b) => b.toString(16).padStart(2, "0")).join("")],
    [want.whole.tokens, want.whole.digest],
    `${name}: the whole text`,
  );
  expected.cases.forEach((c, i) =>
    assert.deepEqual(t.encode(c), want.cases[i], `${name}: ${JSON.stringify(c)}`)
  );
}

const FILES: [string, string, string][] = [
  ["smollm2", "smollm2/tokenizer.json.gz", "tokenizer.json"],
  ["qwen2", "qwen2/tokenizer.json.gz", "tokenizer.json"],
  ["phi3", "phi3/tokenizer.json.gz", "tokenizer.json"],
  ["llama2", "llama2/tokenizer.json.gz", "tokenizer.json"],
  ["llama2_model", "llama2/tokenizer.model.gz", "tokenizer.model"],
  ["mistral_v1", "mistral/tokenizer_v1.model.gz", "tokenizer.model"],
  ["mistral_v3", "mistral/tokenizer_v3.model.gz", "tokenizer.model"],
];

for (const [name, fixture, file] of FILES) {
  Deno.test(`${name}'s ${file} gives the reference library's ids on TinyStories and edge cases`, async () => {
    await withTempDir(async (dir) => {
      await assertReferenceIds(await loadTokenizer(await unpacked(dir, fixture, file)), name);
    });
  });
}

Deno.test({
  name:
    "llama3's tokenizer.json (when INHERITUNE_LLAMA3_TOKENIZER names it) gives tokenizers' ids on TinyStories and edge cases",
  ignore: !HAS_LLAMA3,
  fn: async () => await assertReferenceIds(await loadTokenizer(LLAMA3!), "llama3"),
});

Deno.test("byte-level tokenizer.json files as GGUF vocabularies: llama.cpp's pre-tokenizer names, the reference ids", async () => {
  const read = async (fixture: string) =>
    JSON.parse(new TextDecoder().decode(await gunzip(new URL(fixture, FIXTURES))));
  for (const [name, pre] of [["qwen2", "qwen2"], ["smollm2", "smollm"]]) {
    const model = byteLevelBpeModel(await read(`${name}/tokenizer.json.gz`))!;
    assert.equal(model.pre, pre, name);
    await assertReferenceIds(byteLevelBpeTokenizer(model), name);
  }
  for (const name of ["phi3", "llama2"]) {
    assert.equal(
      byteLevelBpeModel(await read(`${name}/tokenizer.json.gz`)),
      undefined,
      `${name}: not byte-level`,
    );
  }
  const smollm = await read("smollm2/tokenizer.json.gz");
  const odd = {
    ...smollm,
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [{ type: "Split", pattern: { Regex: "x" }, behavior: "Isolated", invert: false }, {
        type: "ByteLevel",
        add_prefix_space: false,
        trim_offsets: true,
        use_regex: false,
      }],
    },
  };
  assert.throws(
    () => byteLevelBpeModel(odd),
    (e) => e instanceof DataError && /splits text as none of llama\.cpp's/.test(e.message),
  );
});
