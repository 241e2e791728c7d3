import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, withTempDir } from "../_util.ts";

Deno.test("train refuses a shard whose SHA-256 differs from meta.json before the first step (before: it trained)", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(
      join(dir, "a.txt"),
      "Some text to train on, and a little more of it. ".repeat(40),
    );
    const data = join(dir, "data");
    const prepared = await runCli(["prepare", "-i", join(dir, "a.txt"), "-o", data, "--tokenizer", "bytes"]);
    assert.equal(prepared.code, 0, prepared.stderr);
    const shard = join(data, "train_000000.bin");
    const bytes = await Deno.readFile(shard);
    bytes[1024 + 2 * 100] ^= 2; // one token's low byte: still a byte, the size unchanged
    await Deno.writeFile(shard, bytes);
    const model = "--n-layer 1 --n-head 2 --n-embd 16 --ctx 16 --batch 2 --steps 1".split(" ");
    const r = await runCli(["train", "--data", data, "--out", join(dir, "run"), ...model]);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /train_000000\.bin: SHA-256 [0-9a-f]{12}… differs from meta\.json's/);
    assert.equal(r.stderr.trim().split("\n").length, 1);
  });
});
