import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, withTempDir } from "../_util.ts";

Deno.test("deno task prepare writes shards and prints a summary", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "a.txt"), "one<|endoftext|>two<|endoftext|>three");
    const out = join(dir, "out");
    const r = await runCli([
      "prepare",
      "--input",
      join(dir, "a.txt"),
      "--out",
      out,
      "--val-fraction",
      "0.34",
      "--shard-tokens",
      "1_000",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /prepared 6 gpt2 tokens from 37 bytes/);
    assert.match(r.stdout, /train: 4 tokens, 2 documents, 1 shard\(s\)/);
    assert.match(r.stdout, /val: {3}2 tokens, 1 documents, 1 shard\(s\)/);
    assert.deepEqual([...Deno.readDirSync(out)].map((e) => e.name).sort(), [
      "meta.json",
      "train_000000.bin",
      "val_000000.bin",
    ]);
    const help = await runCli(["prepare", "--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: deno task prepare --input PATH\.\.\. --out DIR/);
    assert.match(help.stdout, /brown +Brown Corpus/);
  });
});

Deno.test("user errors exit 2 with one line naming the flag or file, no stack trace", async () => {
  await withTempDir(async (dir) => {
    const bad = join(dir, "bad.txt");
    await Deno.writeFile(bad, Uint8Array.from([0x68, 0x69, 0xc0]));
    const out = ["--out", join(dir, "out")];
    const cases: [string[], RegExp][] = [
      [["--input", bad], /^inheritune prepare: --out DIR is required \(see --help\)$/],
      [["--bogus", ...out], /^inheritune prepare: Unknown option '--bogus'/],
      [
        ["--val-fraction", "abc", ...out],
        /^inheritune prepare: --val-fraction must be a number in \[0, 1\), got "abc"$/,
      ],
      [
        ["--shard-tokens", "0", ...out],
        /^inheritune prepare: --shard-tokens must be a positive integer, got "0"$/,
      ],
      [
        ["--max-tokens", "1.5", ...out],
        /^inheritune prepare: --max-tokens must be a positive integer, got "1\.5"$/,
      ],
      [
        ["--tokenizer", "llama", ...out],
        /^inheritune prepare: --tokenizer must be one of gpt2, bytes, got "llama"$/,
      ],
      [
        ["--input", join(dir, "nope.txt"), ...out],
        /^inheritune prepare: input .*nope\.txt: no such file, folder or built-in corpus/,
      ],
      [["--input", bad, ...out], /^inheritune prepare: .*bad\.txt: invalid UTF-8 at byte 2$/],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(["prepare", ...args])));
    results.forEach((r, i) => {
      const [args, pattern] = cases[i];
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      const lines = r.stderr.trimEnd().split("\n");
      assert.equal(lines.length, 1, `${args.join(" ")}: one line, got ${r.stderr}`);
      assert.match(lines[0], pattern);
    });
  });
});
