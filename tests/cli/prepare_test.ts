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
    assert.match(help.stdout, /--tokenizer SPEC +gpt2, bytes, a SentencePiece \.model, .* \(default gpt2\)/);
    assert.match(help.stdout, /--documents RULE/);
    assert.match(help.stdout, /--tokenizer models\/stories260K\/model\.gguf --documents paragraphs/);
  });
});

Deno.test("deno task prepare with a model's SentencePiece tokenizer: BOS per paragraph, tokenizer.model copied", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "s.txt"), "One story.\n\nTwo story.\n\nThree.\n");
    const out = join(dir, "out");
    const r = await runCli([
      "prepare",
      "-i",
      join(dir, "s.txt"),
      "-o",
      out,
      "--tokenizer",
      "models/stories260K/tokenizer.model",
      "--val-fraction",
      "0.34",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /documents: paragraphs/);
    assert.match(r.stdout, /train: .* 2 documents/);
    assert.match(r.stdout, /val: .* 1 documents/);
    assert.deepEqual([...Deno.readDirSync(out)].map((e) => e.name).sort(), [
      "meta.json",
      "tokenizer.model",
      "train_000000.bin",
      "val_000000.bin",
    ]);
    // The same vocabulary read from the GGUF file gives the same shards (the text has no runs of
    // spaces, which llama.cpp keeps for this file and tok512.model collapses), and another hash.
    const fromGguf = join(dir, "gguf");
    const g = await runCli([
      "prepare",
      "-i",
      join(dir, "s.txt"),
      "-o",
      fromGguf,
      "--tokenizer",
      "models/stories260K/model.gguf",
      "--val-fraction",
      "0.34",
    ]);
    assert.equal(g.code, 0, g.stderr);
    for (const file of ["train_000000.bin", "val_000000.bin"]) {
      assert.deepEqual(await Deno.readFile(join(fromGguf, file)), await Deno.readFile(join(out, file)), file);
    }
    const hash = async (d: string) => JSON.parse(await Deno.readTextFile(join(d, "meta.json"))).tokenizerHash;
    assert.notEqual(await hash(fromGguf), await hash(out));
  });
});

Deno.test("user errors exit 2 with one line naming the flag or file, no stack trace", async () => {
  await withTempDir(async (dir) => {
    const bad = join(dir, "bad.txt");
    await Deno.writeFile(bad, Uint8Array.from([0x68, 0x69, 0xc0]));
    const corrupt = join(dir, "corrupt.model");
    await Deno.writeFile(corrupt, Uint8Array.from([0x0a, 0x50, 0x01]));
    const out = ["--out", join(dir, "out")];
    const cases: [string[], RegExp][] = [
      [["--input", bad], /^inheritune prepare: --out is required$/],
      [["--bogus", ...out], /^inheritune prepare: Unknown option '--bogus'/],
      [
        ["--val-fraction", "-1", ...out],
        /^inheritune prepare: --val-fraction needs a value; write one that starts with "-" as --val-fraction=-VALUE$/,
      ],
      [
        ["--val-fraction=-1", ...out],
        /^inheritune prepare: --val-fraction must be ≥ 0, got -1$/,
      ],
      [
        ["--val-fraction", "abc", ...out],
        /^inheritune prepare: --val-fraction must be a number, got "abc"$/,
      ],
      [
        ["--shard-tokens", "0", ...out],
        /^inheritune prepare: --shard-tokens must be ≥ 1, got 0$/,
      ],
      [
        ["--max-tokens", "1.5", ...out],
        /^inheritune prepare: --max-tokens must be an integer, got "1\.5"$/,
      ],
      [
        ["--tokenizer", "llama", ...out],
        /^inheritune prepare: --tokenizer: unknown tokenizer "llama": not gpt2, bytes, a SentencePiece \.model/,
      ],
      [
        ["--tokenizer", corrupt, ...out],
        /^inheritune prepare: --tokenizer: .*corrupt\.model: not a SentencePiece model/,
      ],
      [
        ["--tokenizer", "x.gguf", ...out],
        /^inheritune prepare: x\.gguf: cannot open/,
      ],
      [
        ["--documents", "pages", ...out],
        /^inheritune prepare: --documents must be one of auto, files, paragraphs, lines/,
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
