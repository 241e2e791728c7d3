/**
 * `prepare` on the forms data comes in (JSON Lines, JSON arrays, Parquet; gzip and zstd; the
 * files of `scripts/data_fixtures.py`), with tokenizer threads, the tokenizer's own document
 * tokens, and output that a failure never destroys.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  DataError,
  documentTokens,
  jsonTokenizer,
  loadTokenizer,
  prepare,
  readTokenizerConfig,
  type Tokenizer,
} from "@inheritune/data";
import { assertRejects } from "../_assert.ts";
import { withTempDir } from "../_util.ts";
import { hashFiles, readSplit } from "./_fixtures.ts";
import { TINYSTORIES, TOK512 } from "./_tok512.ts";

const FORMS = new URL("../fixtures/data_forms/", import.meta.url).pathname;
const TEXTS: string[] = JSON.parse(await Deno.readTextFile(join(FORMS, "texts.json")));

/** The tokens of the fixture texts, each in a .txt file of its own, read as the reference. */
async function textFileTokens(dir: string, tokenizer: string | Tokenizer = "gpt2"): Promise<number[]> {
  const folder = join(dir, "txt");
  await Deno.mkdir(folder);
  for (const [i, t] of TEXTS.entries()) {
    await Deno.writeTextFile(join(folder, `${String(i).padStart(2, "0")}.txt`), t);
  }
  await prepare({ inputs: [folder], out: join(dir, "ref"), tokenizer, valFraction: 0, workers: 1 });
  return await readSplit(join(dir, "ref"), "train");
}

Deno.test("every input form gives the ids of the same texts in .txt files", async () => {
  await withTempDir(async (dir) => {
    const reference = await textFileTokens(dir);
    const forms = [
      "docs.jsonl",
      "docs.ndjson",
      "docs.jsonl.gz",
      "docs.jsonl.zst",
      "frames.jsonl.zst",
      "members.jsonl.gz",
      "docs.json",
      "docs.json.gz",
      "lines.json.gz",
      "docs_snappy.parquet",
      "docs_zstd.parquet",
      "docs_gzip.parquet",
      "docs.txt.gz",
      "docs.txt.zst",
      "nested.jsonl",
      "nested.parquet",
    ];
    for (const [i, form] of forms.entries()) {
      const out = join(dir, `out${i}`);
      const meta = await prepare({
        inputs: [join(FORMS, form)],
        out,
        valFraction: 0,
        textField: form.startsWith("nested") ? "meta.body" : "text",
        // Tiny reads: characters, lines, JSON elements and compressed frames cut across chunks.
        chunkBytes: 37,
        workers: 1,
      });
      assert.equal(meta.documentRule, "files", form);
      assert.equal(meta.sources[0].documents, TEXTS.length, form);
      assert.deepEqual(await readSplit(out, "train"), reference, form);
    }
    // A folder of mixed forms, read in sorted name order.
    const mixed = join(dir, "mixed");
    await Deno.mkdir(mixed);
    for (const form of ["docs.jsonl.zst", "docs_snappy.parquet", "docs.txt.gz"]) {
      await Deno.copyFile(join(FORMS, form), join(mixed, form));
    }
    const meta = await prepare({ inputs: [mixed], out: join(dir, "mixed_out"), valFraction: 0, workers: 2 });
    assert.deepEqual(meta.sources.map((s) => s.path.slice(mixed.length + 1)), [
      "docs.jsonl.zst",
      "docs.txt.gz",
      "docs_snappy.parquet",
    ]);
    assert.deepEqual(await readSplit(join(dir, "mixed_out"), "train"), [
      ...reference,
      ...reference,
      ...reference,
    ]);
  });
});

Deno.test("--workers N writes the bytes of --workers 1: shards, meta.json, with a token budget too", async () => {
  await withTempDir(async (dir) => {
    const paragraphs = (await Deno.readTextFile(TINYSTORIES)).split("\n\n").slice(0, 1500);
    const input = join(dir, "stories.jsonl");
    await Deno.writeTextFile(input, paragraphs.map((p) => JSON.stringify({ text: p })).join("\n"));
    for (const tokenizer of ["gpt2", TOK512.pathname]) {
      for (const maxTokens of [undefined, 40_000]) {
        const runs: Record<string, string>[] = [];
        for (const workers of [1, 3]) {
          const out = join(dir, `w${workers}`);
          await prepare({
            inputs: [input],
            out,
            tokenizer,
            workers,
            maxTokens,
            shardTokens: 30_000,
            valFraction: 0.1,
            chunkBytes: 16 << 10,
          });
          runs.push(await hashFiles(out));
        }
        assert.ok(Object.keys(runs[0]).filter((f) => f.startsWith("train_")).length > 1);
        assert.deepEqual(runs[1], runs[0], `${tokenizer}, maxTokens ${maxTokens}`);
      }
    }
  });
});

Deno.test("a malformed line is one line naming the file and line; skipBadLines counts and skips", async () => {
  await withTempDir(async (dir) => {
    const bad = join(FORMS, "bad.jsonl");
    const e = await assertRejects(
      () => prepare({ inputs: [bad], out: join(dir, "out"), workers: 1 }),
      /bad\.jsonl:3: not valid JSON \(/,
    );
    assert.ok(e instanceof DataError && !e.message.includes("\n"));
    const meta = await prepare({ inputs: [bad], out: join(dir, "out"), skipBadLines: true, valFraction: 0 });
    assert.deepEqual([meta.sources[0].documents, meta.sources[0].skippedLines], [4, 2]);
    const gpt2 = await loadTokenizer("gpt2");
    const expected = TEXTS.slice(0, 4).flatMap((t) => [gpt2.eotToken!, ...gpt2.encode(t)]);
    assert.deepEqual(await readSplit(join(dir, "out"), "train"), expected);

    const write = (name: string, text: string): string => {
      Deno.writeTextFileSync(join(dir, name), text);
      return join(dir, name);
    };
    const cases: [string, RegExp][] = [
      [
        write("nofield.jsonl", '{"text": "a"}\n\n{"body": "b"}\n'),
        /nofield\.jsonl:3: no field "text" \(--skip-bad-lines skips such lines\)$/,
      ],
      [write("number.jsonl", '{"text": 7}\n'), /number\.jsonl:1: field "text" is a number, not a string/],
      [
        write("open.json", '[\n{"text": "a"},\n{"text": "b"}\n'),
        /open\.json:4: the JSON array is not closed/,
      ],
      [write("after.json", '[{"text": "a"}]\n]'), /after\.json:2: more after the end of the JSON array$/],
      [write("nested.jsonl", '{"meta": {"x": 1}}\n'), /nested\.jsonl:1: no field "body" in "meta"/],
    ];
    for (const [path, pattern] of cases) {
      const textField = path.endsWith("nested.jsonl") ? "meta.body" : "text";
      const err = await assertRejects(
        () => prepare({ inputs: [path], out: join(dir, "x"), textField }),
        pattern,
      );
      assert.ok(err instanceof DataError && !err.message.includes("\n"));
    }
    await assertRejects(
      () => prepare({ inputs: [join(FORMS, "docs_snappy.parquet")], out: join(dir, "x"), textField: "body" }),
      /docs_snappy\.parquet: no column "body" \(columns: id, text\)/,
    );
    const garbage = write("garbage.jsonl.zst", "not zstd at all");
    await assertRejects(
      () => prepare({ inputs: [garbage], out: join(dir, "x") }),
      /garbage\.jsonl\.zst: not valid zstd data/,
    );
  });
});

/** A tiny tokenizer.json: one token per printable ASCII character, and `specials` after them. */
function charTokenizerJson(specials: string[]): Record<string, unknown> {
  const vocab: Record<string, number> = { "<unk>": 0 };
  for (let c = 32; c < 127; c++) vocab[String.fromCharCode(c)] = c - 31;
  const added = specials.map((content, i) => ({ id: 96 + i, content, special: true }));
  for (const t of added) vocab[t.content] = t.id;
  return {
    version: "1.0",
    added_tokens: [{ id: 0, content: "<unk>", special: true }, ...added],
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: null,
    model: { type: "BPE", vocab, merges: [], unk_token: "<unk>", byte_fallback: false, dropout: null },
  };
}

Deno.test("documents get the tokens the tokenizer's configuration names: Llama 3 BOS, none for Qwen, BOS and EOS", async () => {
  await withTempDir(async (dir) => {
    const gpt2 = await loadTokenizer("gpt2");
    assert.deepEqual([documentTokens(gpt2).bos, documentTokens(gpt2).eos], [50256, null]);
    const ids = (t: string): number[] => [...t].map((c) => c.charCodeAt(0) - 31);
    const docs = join(dir, "docs.jsonl");
    await Deno.writeTextFile(docs, '{"text": "ab"}\n{"text": "c"}\n');
    const run = async (folder: string): Promise<{ tokens: number[]; rule?: string }> => {
      const meta = await prepare({
        inputs: [docs],
        out: join(dir, "out"),
        tokenizer: folder,
        valFraction: 0,
      });
      return { tokens: await readSplit(join(dir, "out"), "train"), rule: meta.documentTokens?.rule };
    };
    const model = async (name: string, specials: string[], config?: object): Promise<string> => {
      const folder = join(dir, name);
      await Deno.mkdir(folder);
      await Deno.writeTextFile(join(folder, "tokenizer.json"), JSON.stringify(charTokenizerJson(specials)));
      if (config) await Deno.writeTextFile(join(folder, "tokenizer_config.json"), JSON.stringify(config));
      return folder;
    };
    // Llama 3's tokenizer.json has no BOS post-processor; the family puts <|begin_of_text|> first.
    const llama3 = await model("llama3", ["<|begin_of_text|>", "<|end_of_text|>"]);
    assert.deepEqual((await run(llama3)).tokens, [96, ...ids("ab"), 96, ...ids("c")]);
    // Qwen2: tokenizer_config.json says bos_token null and no add_bos_token: nothing around documents.
    const decoder = { "96": { content: "<|endoftext|>", special: true }, "97": { content: "<|im_end|>" } };
    const qwen = await model("qwen", ["<|endoftext|>", "<|im_end|>"], {
      bos_token: null,
      eos_token: "<|im_end|>",
      added_tokens_decoder: decoder,
    });
    const q = await run(qwen);
    assert.deepEqual(q.tokens, [...ids("abc")]);
    assert.match(
      q.rule!,
      /tokenizer_config\.json: add_bos_token unset, add_eos_token unset: no token before/,
    );
    // The same vocabulary without a configuration: its <|endoftext|> separates documents.
    const bare = jsonTokenizer(charTokenizerJson(["<|endoftext|>", "<|im_end|>"]));
    assert.equal(documentTokens(bare, await readTokenizerConfig(join(dir, "none"))).bos, 96);
    // add_bos_token and add_eos_token, the ids named through added_tokens_decoder.
    const both = await model("both", ["<s>", "</s>"], {
      add_bos_token: true,
      add_eos_token: true,
      bos_token: "<s>",
      eos_token: { content: "</s>" },
      added_tokens_decoder: { "96": { content: "<s>" }, "97": { content: "</s>" } },
    });
    assert.deepEqual((await run(both)).tokens, [96, ...ids("ab"), 97, 96, ...ids("c"), 97]);
    const meta = JSON.parse(await Deno.readTextFile(join(dir, "out", "meta.json")));
    assert.deepEqual([meta.eotToken, meta.documentTokens.bos, meta.documentTokens.eos], [96, 96, 97]);
    assert.match(meta.documents, /token 96 precedes every document, token 97 follows every document/);
    const noEos = await model("noeos", ["<s>"], { add_eos_token: true, eos_token: null });
    await assertRejects(
      () => run(noEos),
      /tokenizer_config\.json: add_eos_token is true but it names no EOS token/,
    );
  });
});

Deno.test("a failed prepare into a folder of good data leaves it untouched (before: it was wiped)", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "data");
    await Deno.writeTextFile(join(dir, "good.txt"), TEXTS.join("<|endoftext|>"));
    await prepare({ inputs: [join(dir, "good.txt")], out, tokenizer: TOK512.pathname, valFraction: 0.25 });
    const before = await hashFiles(out);
    assert.ok("meta.json" in before && "tokenizer.model" in before && "train_000000.bin" in before);
    await Deno.writeFile(join(dir, "binary.txt"), Uint8Array.from([0x7f, 0x45, 0x4c, 0x46, 0xff, 0xfe]));
    await Deno.writeTextFile(join(dir, "empty.txt"), "");
    await assertRejects(() => prepare({ inputs: [join(dir, "binary.txt")], out }), /invalid UTF-8 at byte 4/);
    await assertRejects(() => prepare({ inputs: [join(dir, "empty.txt")], out }), /nothing to prepare/);
    await assertRejects(() => prepare({ inputs: [join(FORMS, "bad.jsonl")], out }), /bad\.jsonl:3/);
    assert.deepEqual(await hashFiles(out), before);
    assert.deepEqual(
      [...Deno.readDirSync(dir)].filter((e) => e.name.startsWith(".")),
      [],
      "no staging folder left",
    );
    // A successful run replaces the old files: no shard of the earlier run is left behind.
    await prepare({ inputs: [join(dir, "good.txt")], out, tokenizer: "bytes", valFraction: 0 });
    assert.deepEqual(Object.keys(await hashFiles(out)).sort(), ["meta.json", "train_000000.bin"]);
  });
});

/** Mounts a 3 MB tmpfs at `dir`; false when this process cannot (not root, no tmpfs). */
function mountSmallDisk(dir: string): boolean {
  try {
    return new Deno.Command("mount", { args: ["-t", "tmpfs", "-o", "size=3m", "tmpfs", dir] }).outputSync()
      .success;
  } catch {
    return false;
  }
}

const probe = Deno.makeTempDirSync({ prefix: "inheritune_mount_probe_" });
const canMount = mountSmallDisk(probe);
if (canMount) new Deno.Command("umount", { args: [probe] }).outputSync();
Deno.removeSync(probe);

Deno.test({
  name: "a full disk fails with one line and leaves the earlier data untouched",
  ignore: !canMount,
  fn: async () => {
    await withTempDir(async (dir) => {
      const disk = join(dir, "disk");
      await Deno.mkdir(disk);
      assert.ok(mountSmallDisk(disk));
      try {
        const out = join(disk, "data");
        await Deno.writeTextFile(join(dir, "small.txt"), TEXTS.join("<|endoftext|>"));
        await prepare({ inputs: [join(dir, "small.txt")], out, tokenizer: "bytes" });
        const before = await hashFiles(out);
        // 2 MB of text as bytes is 4 MB of uint16 tokens: more than the disk holds.
        await Deno.writeTextFile(join(dir, "large.txt"), "All work and no play. ".repeat(100_000));
        const e = await assertRejects(
          () => prepare({ inputs: [join(dir, "large.txt")], out, tokenizer: "bytes" }),
          /^out .*data: no space left on the device; its earlier contents are untouched$/,
        );
        assert.ok(e instanceof DataError);
        assert.deepEqual(await hashFiles(out), before);
        assert.deepEqual([...Deno.readDirSync(disk)].map((f) => f.name), ["data"]);
      } finally {
        await new Deno.Command("umount", { args: [disk] }).output();
      }
    });
  },
});
