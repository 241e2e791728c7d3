import assert from "node:assert/strict";
import { join } from "node:path";
import {
  canMemoryMap,
  DataError,
  encodeHeader,
  HEADER_BYTES,
  openShard,
  ShardWriter,
  UINT16_SHARD,
  UINT32_SHARD,
  writeShard,
} from "@inheritune/data";
import { assertRejects } from "../_assert.ts";
import { withTempDir } from "../_util.ts";

Deno.test("a uint16 shard has llm.c's header and round-trips through both read paths", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "train_000000.bin");
    const tokens = Array.from({ length: 1000 }, (_, i) => (i * 7919) % 50257);
    await writeShard(path, tokens);
    const bytes = await Deno.readFile(path);
    const header = new Int32Array(bytes.buffer, 0, 256);
    assert.deepEqual([header[0], header[1], header[2]], [20240520, 1, 1000]);
    assert.equal(bytes.length, HEADER_BYTES + 2 * 1000);
    if (Deno.permissions.querySync({ name: "ffi" }).state === "granted" && Deno.build.os === "linux") {
      assert.ok(canMemoryMap(), "with FFI granted, shards must be memory-mapped");
    }
    for (const mmap of [true, false]) {
      using shard = await openShard(path, { mmap, vocabSize: 50257 });
      assert.equal(shard.mapped, mmap && canMemoryMap());
      assert.equal(shard.length, 1000);
      assert.equal(shard.format, UINT16_SHARD);
      assert.deepEqual([...shard.read(0, 1000)], tokens);
      assert.deepEqual([...shard.read(997, 3)], tokens.slice(997));
      assert.deepEqual([...shard.read(1000, 0)], []);
      assert.throws(() => shard.read(999, 2), RangeError);
    }
  });
});

Deno.test("a uint32 shard (magic 20240801, version 7) holds ids over 65535", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "big_vocab.bin");
    const tokens = [0, 65535, 65536, 128255, 7];
    await writeShard(path, tokens, { format: UINT32_SHARD });
    const header = new Int32Array((await Deno.readFile(path)).buffer, 0, 3);
    assert.deepEqual([...header], [20240801, 7, 5]);
    for (const mmap of [true, false]) {
      using shard = await openShard(path, { mmap });
      assert.equal(shard.format, UINT32_SHARD);
      assert.deepEqual([...shard.read(0, 5)], tokens);
    }
    await assertRejects(
      () => openShard(path, { vocabSize: 128000 }),
      /big_vocab\.bin: token 128255 at position 3 is not below the vocabulary size 128000/,
    );
  });
});

Deno.test("corrupt shards give one clear error naming the file", async () => {
  await withTempDir(async (dir) => {
    const good = join(dir, "good.bin");
    await writeShard(good, [1, 2, 3, 4]);
    const bytes = await Deno.readFile(good);
    const variant = async (name: string, edit: (b: Uint8Array) => Uint8Array): Promise<string> => {
      const path = join(dir, name);
      await Deno.writeFile(path, edit(bytes.slice()));
      return path;
    };
    const cases: [string, (b: Uint8Array) => Uint8Array, RegExp][] = [
      [
        "magic.bin",
        (b) => (b[0] ^= 1, b),
        /magic\.bin: not a token shard \(magic 20240521; expected 20240520 or 20240801\)/,
      ],
      [
        "version.bin",
        (b) => (b[4] = 2, b),
        /version\.bin: unknown shard version 2 for magic 20240520 \(expected 1\)/,
      ],
      [
        "truncated.bin",
        (b) => b.subarray(0, b.length - 1),
        /truncated\.bin: header counts 4 tokens \(1032 bytes\) but the file has 1031 bytes/,
      ],
      [
        "padded.bin",
        (b) => Uint8Array.from([...b, 0, 0]),
        /padded\.bin: header counts 4 tokens \(1032 bytes\) but the file has 1034 bytes/,
      ],
      [
        "short.bin",
        (b) => b.subarray(0, 100),
        /short\.bin: 100 bytes, shorter than the 1024-byte shard header/,
      ],
      ["empty.bin", () => new Uint8Array(0), /empty\.bin: 0 bytes, shorter than the 1024-byte shard header/],
    ];
    for (const [name, edit, pattern] of cases) {
      const path = await variant(name, edit);
      for (const mmap of [true, false]) {
        const e = await assertRejects(() => openShard(path, { mmap }), pattern);
        assert.ok(e instanceof DataError, name);
        assert.ok(!e.message.includes("\n"), `${name}: one line`);
      }
    }
    await assertRejects(() => openShard(join(dir, "missing.bin")), /missing\.bin: no such shard file/);
    await assertRejects(
      () => openShard(good, { vocabSize: 4 }),
      /good\.bin: token 4 at position 3 is not below/,
    );
  });
});

Deno.test("ShardWriter cuts a stream into shards of shardTokens with patched headers", async () => {
  await withTempDir(async (dir) => {
    const writer = new ShardWriter(dir, "train", { format: UINT16_SHARD, shardTokens: 10 });
    const tokens = Array.from({ length: 25 }, (_, i) => i);
    await writer.write(tokens.slice(0, 7));
    await writer.write(tokens.slice(7));
    const shards = await writer.finish();
    assert.deepEqual(shards.map((s) => [s.file, s.tokens]), [
      ["train_000000.bin", 10],
      ["train_000001.bin", 10],
      ["train_000002.bin", 5],
    ]);
    const read: number[] = [];
    for (const s of shards) {
      using shard = await openShard(join(dir, s.file));
      read.push(...shard.read(0, shard.length));
    }
    assert.deepEqual(read, tokens);
    assert.deepEqual([...encodeHeader(UINT16_SHARD, 5)], [
      ...(await Deno.readFile(join(dir, "train_000002.bin"))).subarray(0, HEADER_BYTES),
    ]);
  });
});

Deno.test("ShardWriter writes no file for an empty stream", async () => {
  await withTempDir(async (dir) => {
    const writer = new ShardWriter(dir, "val", { format: UINT16_SHARD, shardTokens: 10 });
    assert.deepEqual(await writer.finish(), []);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  });
});
