/**
 * `deno task train` and `deno task eval` on the data a user has: bare llm.c shards (their tokens
 * are the model's own), data without a validation split or with one too short for a window, data
 * of another tokenizer; the growth
 * loop's default start; bad input that must leave nothing written.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { checkpointTokenizer, loadModel } from "@inheritune/core";
import { writeShard } from "@inheritune/data";
import { runCli, withTempDir } from "../_util.ts";

const TEXT = "The quick brown fox jumps over the lazy dog. ".repeat(60);
const bytes = (text: string): number[] => [...new TextEncoder().encode(text)];

/** The last line of a command's stdout, parsed as JSON. */
function lastJson(stdout: string): Record<string, number> {
  return JSON.parse(stdout.trim().split("\n").at(-1)!);
}

/** Writes `text` into `dir` and prepares it into `dir/NAME` with `--tokenizer` and `--val-fraction`; returns the folder. */
async function prepared(
  dir: string,
  text: string,
  options: { name: string; tokenizer: string; val: string },
) {
  const file = join(dir, `${options.name}.txt`);
  await Deno.writeTextFile(file, text);
  const out = join(dir, options.name);
  const r = await runCli([
    "prepare",
    "-i",
    file,
    "-o",
    out,
    "--tokenizer",
    options.tokenizer,
    "--val-fraction",
    options.val,
  ]);
  assert.equal(r.code, 0, r.stderr);
  return out;
}

Deno.test("a bare byte shard is read as the model's own tokens: eval equals the prepared folder's, no re-tokenising", async () => {
  await withTempDir(async (dir) => {
    const folder = await prepared(dir, TEXT, { name: "prepared", tokenizer: "bytes", val: "0" });
    const shard = join(dir, "val_000000.bin");
    await writeShard(shard, bytes(TEXT));
    const args = ["eval", "--model", "models/brown-ref", "--tasks", "none", "--ctx", "64"];
    const bare = await runCli([...args, "--data", shard]);
    const fromFolder = await runCli([...args, "--data", folder]);
    assert.equal(bare.code, 0, bare.stderr);
    assert.equal(fromFolder.code, 0, fromFolder.stderr);
    assert.doesNotMatch(bare.stderr, /re-tokenising/);
    assert.equal(lastJson(bare.stdout).loss, lastJson(fromFolder.stdout).loss);
    assert.equal(lastJson(bare.stdout).tokens, 64 * Math.floor((TEXT.length - 1) / 64));
  });
});

Deno.test("training from scratch on bare byte shards takes a 256-token vocabulary, not GPT-2's", async () => {
  await withTempDir(async (dir) => {
    const shard = join(dir, "train_000000.bin");
    await writeShard(shard, bytes(TEXT));
    const out = join(dir, "run");
    const r = await runCli([
      "train",
      "--data",
      shard,
      "--out",
      out,
      "--n-layer",
      "1",
      "--n-head",
      "2",
      "--n-embd",
      "16",
      "--ctx",
      "32",
      "--batch",
      "2",
      "--steps",
      "2",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /no meta\.json; taking the tokens as bytes \(vocabulary 256\)/);
    assert.match(r.stdout, /no validation split of 33 tokens or more; training without validation/);
    const { config } = await loadModel(out);
    assert.deepEqual([config.vocab_size, config.tokenizer], [256, "bytes"]);
  });
});

Deno.test("data without a validation split: train runs without validation, eval scores the train split", async () => {
  await withTempDir(async (dir) => {
    const data = await prepared(dir, TEXT, { name: "data", tokenizer: "bytes", val: "0" });
    const out = join(dir, "run");
    const r = await runCli([
      "train",
      "--data",
      data,
      "--reference",
      "models/brown-ref",
      "--layers",
      "1",
      "--out",
      out,
      "--ctx",
      "32",
      "--batch",
      "2",
      "--steps",
      "2",
      "--eval-every",
      "1",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.match(/training without validation/g)?.length, 1, "said once");
    const e = await runCli(["eval", "--model", out, "--data", data, "--ctx", "32"]);
    assert.equal(e.code, 0, e.stderr);
    assert.ok(lastJson(e.stdout).tokens > 0);
  });
});

Deno.test("a val split shorter than one window: train validates on nothing, eval and analyze take train and say so", async () => {
  await withTempDir(async (dir) => {
    const data = join(dir, "shards");
    await Deno.mkdir(data);
    await writeShard(join(data, "train_000001.bin"), bytes(TEXT));
    await writeShard(join(data, "val_000000.bin"), bytes("fourteen bytes")); // one window of T = 13
    const out = join(dir, "run");
    const common = ["--batch", "2", "--steps", "1", "--out", out, "--reference", "models/brown-ref"];
    const r = await runCli(["train", "--data", data, "--layers", "1", "--ctx", "32", ...common]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /no validation split of 33 tokens or more; training without validation/);

    const long = await runCli(["eval", "--model", out, "--data", data, "--ctx", "14", "--tasks", "none"]);
    assert.equal(long.code, 0, long.stderr);
    assert.match(long.stderr, /shards: no val split of 15 tokens or more; evaluating on train/);
    const short = await runCli(["eval", "--model", out, "--data", data, "--ctx", "13", "--tasks", "none"]);
    assert.equal(short.code, 0, short.stderr);
    assert.doesNotMatch(short.stderr, /evaluating on train/);
    assert.equal(lastJson(short.stdout).tokens, 13, "the val split's one window");

    for (const [ctx, split] of [["13", "val"], ["14", "train"]]) {
      const a = await runCli(["analyze", "--model", out, "--data", data, "--ctx", ctx, "--windows", "1"]);
      assert.equal(a.code, 0, a.stderr);
      assert.match(a.stdout, new RegExp(`on the ${split} split of`), `--ctx ${ctx}`);
    }
  });
});

Deno.test("data of another tokenizer is refused by train with one line; eval re-tokenises it and says so", async () => {
  await withTempDir(async (dir) => {
    const paragraphs = TEXT.replaceAll(". ", ".\n\n");
    const data = await prepared(dir, paragraphs, {
      name: "sp",
      tokenizer: "models/stories260K/tokenizer.model",
      val: "0.2",
    });
    const out = join(dir, "run");
    const r = await runCli([
      "train",
      "--data",
      data,
      "--reference",
      "models/brown-ref",
      "--layers",
      "1",
      "--out",
      out,
    ]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, /data was tokenized with sentencepiece .* but the model uses bytes/);
    assert.ok(!await Deno.stat(out).then(() => true, () => false), "nothing written");
    const e = await runCli([
      "eval",
      "--model",
      "models/brown-ref",
      "--data",
      data,
      "--ctx",
      "32",
      "--tasks",
      "none",
    ]);
    assert.equal(e.code, 0, e.stderr);
    assert.match(
      e.stderr,
      /models\/brown-ref: re-tokenising .* \(sentencepiece tokens\) with the model's bytes tokenizer/,
    );
  });
});

Deno.test("a model trained from scratch on SentencePiece data says so in config.json, beside its tokenizer.model", async () => {
  await withTempDir(async (dir) => {
    const data = await prepared(dir, TEXT.replaceAll(". ", ".\n\n"), {
      name: "sp",
      tokenizer: "models/stories260K/tokenizer.model",
      val: "0.2",
    });
    const out = join(dir, "run");
    // deno-fmt-ignore
    const r = await runCli([
      "train", "--data", data, "--out", out, "--n-layer", "1", "--n-head", "2", "--n-embd", "16",
      "--ctx", "16", "--batch", "2", "--steps", "1",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const config = JSON.parse(await Deno.readTextFile(join(out, "config.json")));
    assert.equal(config.tokenizer, "sentencepiece", "not the GPT-2 default");
    await Deno.stat(join(out, "tokenizer.model"));
    const model = await loadModel(out);
    assert.equal((await checkpointTokenizer(model, out)).name, "sentencepiece");
  });
});

Deno.test("--grow without --layers starts at half the reference's blocks", async () => {
  await withTempDir(async (dir) => {
    const data = await prepared(dir, TEXT.replaceAll(". ", ".\n\n"), {
      name: "data",
      tokenizer: "bytes",
      val: "0.2",
    });
    const r = await runCli([
      "train",
      "--data",
      data,
      "--reference",
      "models/brown-ref",
      "--grow",
      "--out",
      join(dir, "grow"),
      "--ctx",
      "32",
      "--batch",
      "2",
      "--steps",
      "1",
      "--eval-tokens",
      "64",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^stage 3 blocks: val_loss/m, "brown-ref has 6 blocks: the first stage has 3");
  });
});

Deno.test("a damaged reference is one line, exit 2, and leaves --out unwritten", async () => {
  await withTempDir(async (dir) => {
    const gguf = await Deno.readFile("models/stories260K/model.gguf");
    const damaged = join(dir, "damaged.gguf");
    await Deno.writeFile(damaged, gguf.subarray(0, gguf.length - 1000));
    for (const command of ["inherit", "train"]) {
      const out = join(dir, command);
      const args = command === "train" ? ["--data", damaged] : [];
      const r = await runCli([command, "--reference", damaged, "--layers", "2", "--out", out, ...args]);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.match(r.stderr, /damaged\.gguf: tensor .* runs past the \d+-byte file: truncated\?/);
      assert.ok(!await Deno.stat(out).then(() => true, () => false), `${command} wrote nothing`);
    }
  });
});

Deno.test("a model without a tokenizer trains on bare shards of ids, and its folder evaluates on them", async () => {
  await withTempDir(async (dir) => {
    // qwen3_tiny: a Qwen3 of vocabulary 72 without tokenizer files, as a SmolLM2-shaped model of ids.
    const ids = Array.from({ length: 700 }, (_, i) => (i * 7 + (i % 5)) % 72);
    const data = join(dir, "shards");
    await Deno.mkdir(data);
    await writeShard(join(data, "train_000000.bin"), ids);
    await writeShard(join(data, "val_000000.bin"), ids.slice(0, 100));
    const out = join(dir, "run");
    const common = ["--ctx", "16", "--batch", "2"];
    const r = await runCli([
      "train",
      "--reference",
      "tests/fixtures/qwen3_tiny",
      "--layers",
      "1",
      "--data",
      data,
      "--out",
      out,
      "--steps",
      "2",
      ...common,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^done: step 2, loss \S+, val_loss \S+; wrote/m);
    const written = await loadModel(out);
    assert.deepEqual([written.config.family, written.tokenizerFiles], ["qwen3", undefined]);
    const e = await runCli(["eval", "--model", out, "--data", data, "--ctx", "16"]);
    assert.equal(e.code, 0, e.stderr);
    const last = lastJson(e.stdout);
    assert.ok(last.loss > 0 && last.bpb === null, e.stdout);
    const resumed = await runCli([
      "train",
      "--resume",
      "--data",
      data,
      "--out",
      out,
      "--steps",
      "3",
      ...common,
    ]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stdout, /^done: step 3,/m);
  });
});
