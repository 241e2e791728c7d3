import assert from "node:assert/strict";
import { join } from "node:path";
import {
  arraySource,
  BatchSampler,
  canMemoryMap,
  DataError,
  DOCUMENT_SEPARATOR,
  openDataset,
  prepare,
  UINT32_SHARD,
  validationSplit,
  verifyShards,
  writeShard,
  type WrittenShard,
} from "@inheritune/data";
import { assertRejects } from "../_assert.ts";
import { withTempDir } from "../_util.ts";

async function preparedFolder(dir: string, shardTokens: number): Promise<string> {
  const docs = Array.from(
    { length: 60 },
    (_, i) => `Document ${i}: ${"words and more words ".repeat(i % 7 + 1)}`,
  );
  await Deno.writeTextFile(join(dir, "docs.txt"), docs.join(DOCUMENT_SEPARATOR));
  const out = join(dir, "out");
  await prepare({ inputs: [join(dir, "docs.txt")], out, shardTokens, valFraction: 0.1 });
  return out;
}

Deno.test("a prepared folder opens as train and val streams across many shards, mapped or not", async () => {
  await withTempDir(async (dir) => {
    const out = await preparedFolder(dir, 37);
    const reference = new Map<string, number[]>();
    for (const mmap of [true, false]) {
      using data = await openDataset(out, { mmap, vocabSize: 50304 });
      assert.equal(data.mapped, mmap && canMemoryMap());
      assert.deepEqual(data.splits, ["train", "val"]);
      assert.equal(data.meta?.tokenizer, "gpt2");
      for (const split of data.splits) {
        const source = data.split(split);
        const shards: readonly WrittenShard[] = data.meta!.splits[split as "train" | "val"]!.shards;
        assert.ok(shards.length > 1, `${split} spans several shards`);
        assert.equal(source.length, shards.reduce((n, s) => n + s.tokens, 0));
        const all = [...source.read(0, source.length)];
        if (!reference.has(split)) reference.set(split, all);
        assert.deepEqual(all, reference.get(split), `${split}: mmap and positioned reads agree`);
        // Reads straddling shard boundaries, starting on one, and of length 0.
        const ranges = [[30, 20], [37, 37], [36, 75], [source.length, 0], [source.length - 1, 1]];
        assert.ok(source.length >= 111);
        for (const [start, count] of ranges) {
          assert.deepEqual(
            [...source.read(start, count)],
            all.slice(start, start + count),
            `${split} read(${start}, ${count})`,
          );
        }
        assert.throws(() => source.read(source.length - 1, 2), RangeError);
      }
    }
  });
});

Deno.test("a sampler reads the same windows from a many-shard split as from the stream in memory", async () => {
  await withTempDir(async (dir) => {
    using data = await openDataset(await preparedFolder(dir, 37));
    const train = data.split("train");
    const inMemory = arraySource(train.read(0, train.length));
    const options = { B: 4, T: 16, shuffle: true, seed: 3 };
    const fromShards = new BatchSampler(train, options);
    const fromMemory = new BatchSampler(inMemory, options);
    for (let i = 0; i < fromShards.stepsForEpochs(2); i++) {
      assert.deepEqual(fromShards.next(), fromMemory.next());
    }
  });
});

Deno.test("a model vocabulary smaller than the data's is a clear error", async () => {
  await withTempDir(async (dir) => {
    const out = await preparedFolder(dir, 1000);
    await assertRejects(
      () => openDataset(out, { vocabSize: 50000 }),
      /out\/meta\.json: tokenizer gpt2 has 50257 tokens, more than the model's vocabulary of 50000/,
    );
    await writeShard(join(dir, "val_000000.bin"), [5, 300, 2]);
    const e = await assertRejects(
      () => openDataset(join(dir, "val_000000.bin"), { vocabSize: 256 }),
      /val_000000\.bin: token 300 at position 1 is not below the vocabulary size 256/,
    );
    assert.ok(e instanceof DataError);
  });
});

Deno.test("a single shard file opens as the split its name says", async () => {
  await withTempDir(async (dir) => {
    await writeShard(join(dir, "val_000000.bin"), [1, 2, 3]);
    await writeShard(join(dir, "anything.bin"), [4, 5], { format: UINT32_SHARD });
    using val = await openDataset(join(dir, "val_000000.bin"));
    assert.deepEqual(val.splits, ["val"]);
    assert.equal(val.meta, null);
    assert.deepEqual([...val.split("val").read(0, 3)], [1, 2, 3]);
    assert.throws(() => val.split("train"), /val_000000\.bin: no train split \(has val\)/);
    using other = await openDataset(join(dir, "anything.bin"));
    assert.deepEqual([...other.split("train").read(0, 2)], [4, 5]);
  });
});

Deno.test("a folder of llm.c shards without meta.json opens in name order", async () => {
  await withTempDir(async (dir) => {
    await writeShard(join(dir, "fineweb_val_000000.bin"), [9, 9]);
    await writeShard(join(dir, "fineweb_train_000002.bin"), [3]);
    await writeShard(join(dir, "fineweb_train_000001.bin"), [1, 2]);
    await Deno.writeTextFile(join(dir, "README"), "not a shard");
    using data = await openDataset(dir);
    assert.deepEqual([...data.splits].sort(), ["train", "val"]);
    assert.deepEqual([...data.split("train").read(0, 3)], [1, 2, 3]);
    assert.deepEqual([...data.split("val").read(0, 2)], [9, 9]);
  });
});

Deno.test("missing paths, shard-less folders and meta.json disagreeing with a shard are DataErrors", async () => {
  await withTempDir(async (dir) => {
    await assertRejects(() => openDataset(join(dir, "nope")), /nope: no such dataset folder or shard file/);
    await assertRejects(() => openDataset(dir), /: no meta\.json and no shard files/);
    const out = await preparedFolder(dir, 1000);
    const metaPath = join(out, "meta.json");
    const meta = JSON.parse(await Deno.readTextFile(metaPath));
    meta.splits.train.shards[0].tokens += 1;
    await Deno.writeTextFile(metaPath, JSON.stringify(meta));
    await assertRejects(
      () => openDataset(out),
      /train_000000\.bin: holds \d+ tokens but meta\.json says \d+/,
    );
    await Deno.writeTextFile(metaPath, "{");
    await assertRejects(() => openDataset(out), /meta\.json: not valid JSON/);
    meta.splits.train.shards[0].tokens -= 1;
    await Deno.writeTextFile(metaPath, JSON.stringify(meta));
    await Deno.remove(join(out, "val_000000.bin"));
    await assertRejects(() => openDataset(out), /val_000000\.bin: no such shard file/);
  });
});

Deno.test("without FFI permission shards are read with positioned reads, silently", async () => {
  await withTempDir(async (dir) => {
    const out = await preparedFolder(dir, 50);
    using data = await openDataset(out);
    const train = data.split("train");
    const want = [...train.read(0, train.length)].reduce((a, t, i) => (a + t * (i + 1)) % 1_000_003, 0);
    const code = `import { openDataset } from "@inheritune/data";
      using data = await openDataset(${JSON.stringify(out)});
      const t = data.split("train");
      const sum = [...t.read(0, t.length)].reduce((a, x, i) => (a + x * (i + 1)) % 1_000_003, 0);
      console.log(JSON.stringify({ mapped: data.mapped, sum }));`;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-read", "--allow-env", "-"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(code));
    await writer.close();
    const result = await child.output();
    const stderr = new TextDecoder().decode(result.stderr);
    assert.equal(result.code, 0, stderr);
    assert.deepEqual(JSON.parse(new TextDecoder().decode(result.stdout)), { mapped: false, sum: want });
  });
});

Deno.test("validationSplit: val when it fills one window of T tokens and its target, else none", () => {
  const splits = (val?: number) => ({
    splits: val === undefined ? ["train"] : ["train", "val"],
    split: (name: string) => arraySource(new Array(name === "val" ? val! : 100).fill(0)),
  });
  assert.equal(validationSplit(splits(9), 8), "val");
  assert.equal(validationSplit(splits(8), 8), undefined);
  assert.equal(validationSplit(splits(0), 1), undefined);
  assert.equal(validationSplit(splits(), 1), undefined);
});

Deno.test("verifyShards finds a byte changed after prepare in any shard, naming it", async () => {
  await withTempDir(async (dir) => {
    const out = await preparedFolder(dir, 500);
    using data = await openDataset(out);
    const shards = [...data.meta!.splits.train.shards, ...data.meta!.splits.val!.shards];
    const total = shards.reduce((n, s) => n + (Deno.statSync(join(out, s.file)).size), 0);
    assert.equal(await verifyShards(data), total);
    // One token's low byte, in the last shard: the header and the size still agree.
    const last = join(out, shards.at(-1)!.file);
    const bytes = await Deno.readFile(last);
    bytes[1024 + 2 * 3] ^= 1;
    await Deno.writeFile(last, bytes);
    using changed = await openDataset(out);
    const e = await assertRejects(
      () => verifyShards(changed),
      /val_\d{6}\.bin: SHA-256 [0-9a-f]{12}… differs from meta\.json's [0-9a-f]{12}…: the shard changed after prepare/,
    );
    assert.ok(e instanceof DataError && !e.message.includes("\n"));
  });
});
