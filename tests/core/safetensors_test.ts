import assert from "node:assert/strict";
import { join } from "node:path";
import { CheckpointError, readSafetensors, type TensorData, writeSafetensors } from "@inheritune/core";
import { assertRejects } from "../_assert.ts";
import { rand, withTempDir } from "../_util.ts";

/** A safetensors file built by hand: header text (or JSON), then `data`; `length` overrides the header length. */
function rawFile(header: unknown, data: Uint8Array, length?: number): Uint8Array {
  const text = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + text.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(length ?? text.length), true);
  out.set(text, 8);
  out.set(data, 8 + text.length);
  return out;
}

function tensors(): Map<string, TensorData> {
  return new Map([
    ["b.weight", { shape: [3, 5], data: rand(15, 1) }],
    ["a.bias", { shape: [7], data: rand(7, 2) }],
    ["scalar", { shape: [], data: Float32Array.of(-2.5) }],
    ["empty", { shape: [0, 4], data: new Float32Array(0) }],
  ]);
}

Deno.test("safetensors F32 round trip is bit-exact and keeps order and metadata", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "t.safetensors");
    const written = tensors();
    await writeSafetensors(path, written, { metadata: { format: "pt", note: "x" } });
    const { tensors: read, metadata } = await readSafetensors(path);
    assert.deepEqual(metadata, { format: "pt", note: "x" });
    assert.deepEqual([...read.keys()], [...written.keys()]);
    for (const [name, t] of written) {
      assert.equal(read.get(name)!.dtype, "F32");
      assert.deepEqual(read.get(name)!.shape, t.shape);
      assert.deepEqual(read.get(name)!.data, t.data, name);
    }
    const bytes = await Deno.readFile(path);
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal(headerLength % 8, 0, "header padded to 8 bytes");
    await writeSafetensors(join(dir, "u.safetensors"), written, { metadata: { format: "pt", note: "x" } });
    assert.deepEqual(await Deno.readFile(join(dir, "u.safetensors")), bytes, "same input, same bytes");
  });
});

Deno.test("safetensors reads hand-written F16 and BF16 bit patterns", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "h.safetensors");
    // F16: 1, -2, 65504 (largest), 2^-24 (smallest subnormal). BF16: 1, 3.140625, -0.
    const f16 = Uint16Array.of(0x3c00, 0xc000, 0x7bff, 0x0001);
    const bf16 = Uint16Array.of(0x3f80, 0x4049, 0x8000);
    const data = new Uint8Array(14);
    data.set(new Uint8Array(f16.buffer), 0);
    data.set(new Uint8Array(bf16.buffer), 8);
    await Deno.writeFile(
      path,
      rawFile({
        h: { dtype: "F16", shape: [2, 2], data_offsets: [0, 8] },
        b: { dtype: "BF16", shape: [3], data_offsets: [8, 14] },
      }, data),
    );
    const { tensors: read, metadata } = await readSafetensors(path);
    assert.deepEqual(metadata, {});
    assert.equal(read.get("h")!.dtype, "F16");
    assert.deepEqual([...read.get("h")!.data], [1, -2, 65504, 2 ** -24]);
    assert.equal(read.get("b")!.dtype, "BF16");
    assert.deepEqual([...read.get("b")!.data], [1, 3.140625, -0]);
    assert.ok(Object.is(read.get("b")!.data[2], -0));
  });
});

Deno.test("safetensors F16 and BF16 writing rounds to nearest even and reads back", async () => {
  await withTempDir(async (dir) => {
    // 1 + 2^-11 is halfway between two f16 values (ties to 1); 1 + 3·2^-11 ties up to 1 + 2^-9.
    // 1 + 2^-8 is halfway between two bf16 values (ties to 1); 1 + 3·2^-8 ties up to 1 + 2^-6.
    const values = Float32Array.of(1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1e5, NaN);
    const t = new Map([["x", { shape: [6], data: values }]]);
    await writeSafetensors(join(dir, "h.safetensors"), t, { dtype: "F16" });
    await writeSafetensors(join(dir, "b.safetensors"), t, { dtype: "BF16" });
    const h = (await readSafetensors(join(dir, "h.safetensors"))).tensors.get("x")!;
    const b = (await readSafetensors(join(dir, "b.safetensors"))).tensors.get("x")!;
    assert.equal(h.dtype, "F16");
    assert.deepEqual([...h.data], [1, 1 + 2 ** -9, 1 + 2 ** -8, 1 + 3 * 2 ** -8, Infinity, NaN]);
    assert.equal(b.dtype, "BF16");
    assert.deepEqual([...b.data], [1, 1, 1, 1 + 2 ** -6, 99840, NaN]);
  });
});

Deno.test("safetensors filter skips tensors, even of dtypes it cannot read", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "f.safetensors");
    const data = new Uint8Array(12);
    new Float32Array(data.buffer, 0, 1)[0] = 7;
    await Deno.writeFile(
      path,
      rawFile({
        keep: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
        mask: { dtype: "I64", shape: [1], data_offsets: [4, 12] },
      }, data),
    );
    const { tensors: read } = await readSafetensors(path, { filter: (n) => n !== "mask" });
    assert.deepEqual([...read.keys()], ["keep"]);
    assert.deepEqual([...read.get("keep")!.data], [7]);
    await assertRejects(() => readSafetensors(path), /f\.safetensors: tensor mask has dtype I64; only F32/);
  });
});

Deno.test("safetensors rejects damaged files with one line naming the file and the problem", async () => {
  await withTempDir(async (dir) => {
    const ok = { t: { dtype: "F32", shape: [2], data_offsets: [0, 8] } };
    const cases: [string, Uint8Array, RegExp][] = [
      ["short", new Uint8Array(5), /short\.safetensors: file is 5 bytes, too short/],
      [
        "long_header",
        rawFile(ok, new Uint8Array(8), 1000),
        /header length 1000 does not fit in the \d+-byte file/,
      ],
      ["bad_json", rawFile("{not json", new Uint8Array(0)), /header is not valid JSON/],
      ["array", rawFile("[1, 2]", new Uint8Array(0)), /header does not start with \{/],
      [
        "gap",
        rawFile({
          a: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
          b: { dtype: "F32", shape: [1], data_offsets: [8, 12] },
        }, new Uint8Array(12)),
        /tensor b data begins at 8, not at 4 where the data before it ends/,
      ],
      [
        "trailing",
        rawFile(ok, new Uint8Array(9)),
        /the tensors' data ends at byte 8 of the 9-byte data section \(wrong header length\?\)/,
      ],
      [
        "header_short",
        rawFile(JSON.stringify(ok) + " ", new Uint8Array(8), JSON.stringify(ok).length),
        /the tensors' data ends at byte 8 of the 9-byte data section \(wrong header length\?\)/,
      ],
      [
        "truncated",
        rawFile(ok, new Uint8Array(6)),
        /tensor t data \[0, 8\) runs past the 6 data bytes: file truncated/,
      ],
      [
        "mismatch",
        rawFile({ t: { dtype: "F32", shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)),
        /tensor t spans 8 bytes, but F32 \[3\] needs 12/,
      ],
      [
        "overlap",
        rawFile({
          a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
          b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
        }, new Uint8Array(12)),
        /tensors a and b overlap/,
      ],
      [
        "offsets",
        rawFile({ t: { dtype: "F32", shape: [2], data_offsets: [8, 0] } }, new Uint8Array(8)),
        /tensor t has invalid data_offsets/,
      ],
      [
        "dtype",
        rawFile({ t: { dtype: "F33", shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8)),
        /tensor t has unknown dtype F33/,
      ],
      [
        "shape",
        rawFile({ t: { dtype: "F32", shape: [-2], data_offsets: [0, 8] } }, new Uint8Array(8)),
        /tensor t has an invalid shape/,
      ],
      [
        "metadata",
        rawFile({ __metadata__: { n: 1 }, ...ok }, new Uint8Array(8)),
        /__metadata__ value n is not a string/,
      ],
    ];
    for (const [name, bytes, pattern] of cases) {
      const path = join(dir, `${name}.safetensors`);
      await Deno.writeFile(path, bytes);
      const e = await assertRejects(() => readSafetensors(path), pattern);
      assert.ok(e instanceof CheckpointError, name);
      assert.equal(e.name, "CheckpointError");
      assert.ok(e.message.startsWith(path), `${name}: message names the file`);
      assert.ok(!e.message.includes("\n"), `${name}: one line`);
    }
    await assertRejects(
      () => readSafetensors(join(dir, "absent.safetensors")),
      /absent\.safetensors: cannot open/,
    );
  });
});

Deno.test("safetensors write that fails midway leaves the old file and no temporary file", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "t.safetensors");
    await writeSafetensors(path, tensors());
    const before = await Deno.readFile(path);
    const poisoned = rand(7, 3);
    Object.defineProperty(poisoned, "buffer", {
      get() {
        throw new Error("disk on fire");
      },
    });
    const bad = tensors();
    bad.set("a.bias", { shape: [7], data: poisoned });
    await assertRejects(() => writeSafetensors(path, bad), /disk on fire/);
    await assertRejects(
      () => writeSafetensors(path, new Map([["x", { shape: [2, 2], data: new Float32Array(3) }]])),
      /tensor x has 3 values, shape \[2,2\] needs 4/,
    );
    assert.deepEqual(await Deno.readFile(path), before);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["t.safetensors"]);
  });
});
