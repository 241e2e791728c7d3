/**
 * ggml block formats against llama.cpp: its own quantizer output (tests/fixtures/ggml_quants/, see
 * the README there) dequantizes to what gguf's `quants.dequantize` gives, bit for bit, and so do
 * blocks with extreme scales; the quantizers write llama.cpp's bytes exactly.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { assertCloseNorm, rand } from "../_util.ts";
import {
  dequantize,
  DEQUANTIZE_TYPES,
  GGML_TYPES,
  ggmlType,
  ggmlTypeName,
  ggmlTypeNamed,
  quantize,
  QUANTIZE_TYPES,
} from "@inheritune/core";

const DIR = join(import.meta.dirname!, "..", "fixtures", "ggml_quants");

/** llama.cpp's fixtures: type, values per row and whether an importance matrix was used. */
const LLAMA_CPP_FILES = (await Array.fromAsync(Deno.readDir(DIR)))
  .map((e) => e.name.match(/^(\w+?_\w+?)_(\d+)_(im|noim)_expected\.bin$/))
  .filter((m) => m !== null)
  .map((m) => ({ type: m[1].toUpperCase(), row: Number(m[2]), prefix: m[0].replace("_expected.bin", "") }))
  .sort((a, b) => a.prefix.localeCompare(b.prefix));

async function read(name: string): Promise<Uint8Array> {
  return await Deno.readFile(join(DIR, name));
}

function f32(bytes: Uint8Array): Float32Array {
  return new Float32Array(bytes.slice().buffer);
}

function typeNamed(name: string) {
  const type = GGML_TYPES.find((t) => t.name === name);
  assert.ok(type, name);
  return type;
}

/** Asserts the f32 bit patterns are equal (so −0 differs from 0), naming the first difference. */
function assertSameBits(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const e = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  const i = a.findIndex((v, k) => v !== e[k]);
  assert.equal(i, -1, `${what}: element ${i} is ${actual[i]}, llama.cpp's is ${expected[i]}`);
}

Deno.test("the fixtures cover every type llama.cpp's quantizer files hold, with and without imatrix", () => {
  assert.equal(LLAMA_CPP_FILES.length, 22);
  assert.deepEqual(
    [...new Set(LLAMA_CPP_FILES.map((f) => f.type))].sort(),
    ["IQ4_NL", "Q2_K", "Q3_K", "Q4_0", "Q4_1", "Q4_K", "Q5_0", "Q5_1", "Q5_K", "Q6_K", "Q8_0"],
  );
});

Deno.test("llama.cpp's quantized blocks dequantize bit for bit as gguf's dequantize does", async () => {
  for (const { type, prefix } of LLAMA_CPP_FILES) {
    const bytes = await read(`${prefix}_expected.bin`);
    const expected = f32(await read(`${prefix}_dequantized.bin`));
    const t = typeNamed(type);
    assertSameBits(dequantize(t, bytes, expected.length), expected, prefix);
  }
});

Deno.test("blocks with extreme scales (±65504, subnormals, −0) dequantize bit for bit, every type", async () => {
  assert.deepEqual(DEQUANTIZE_TYPES.filter((n) => !["F32", "F16", "BF16"].includes(n)).sort(), [
    "IQ4_NL",
    "IQ4_XS",
    "Q2_K",
    "Q3_K",
    "Q4_0",
    "Q4_1",
    "Q4_K",
    "Q5_0",
    "Q5_1",
    "Q5_K",
    "Q6_K",
    "Q8_0",
  ]);
  for (const name of DEQUANTIZE_TYPES.filter((n) => !["F32", "F16", "BF16"].includes(n))) {
    const bytes = await read(`extreme_${name.toLowerCase()}.bin`);
    const expected = f32(await read(`extreme_${name.toLowerCase()}_dequantized.bin`));
    const out = dequantize(typeNamed(name), bytes, expected.length);
    assertSameBits(out, expected, name);
    assert.ok(out.some((v) => Object.is(v, -0)), `${name}: the fixture holds negative zeros`);
  }
});

Deno.test("Q8_0, Q5_0, Q4_0, Q4_K and Q6_K quantize to llama.cpp's bytes (no importance matrix)", async () => {
  const files = LLAMA_CPP_FILES.filter((f) => f.prefix.endsWith("_noim") && QUANTIZE_TYPES.includes(f.type));
  assert.deepEqual(files.map((f) => f.type).sort(), ["Q4_0", "Q4_K", "Q5_0", "Q6_K", "Q8_0"]);
  for (const { type, row, prefix } of files) {
    const input = f32(await read(`${prefix}_input.bin`));
    const expected = await read(`${prefix}_expected.bin`);
    const actual = quantize(type, input, { rowLength: row });
    const i = actual.findIndex((b, k) => b !== expected[k]);
    assert.equal(actual.length, expected.length, `${type}: length`);
    assert.equal(i, -1, `${type}: byte ${i} is ${actual[i]}, llama.cpp wrote ${expected[i]}`);
  }
});

Deno.test("quantize refuses other types and rows that are not whole blocks", () => {
  assert.throws(() => quantize("Q5_K", new Float32Array(256)), /cannot quantize to Q5_K/);
  assert.throws(() => quantize("Q4_K", new Float32Array(512), { rowLength: 128 }), /not whole Q4_K blocks/);
  assert.throws(() => quantize("Q8_0", new Float32Array(48)), /not whole Q8_0 blocks of 32/);
  assert.deepEqual(quantize("Q6_K", new Float32Array(256)), new Uint8Array(210), "zeros stay zeros");
});

Deno.test("the type table: ggml's numbers, names and block sizes", () => {
  assert.equal(ggmlType(12)?.name, "Q4_K");
  assert.equal(ggmlType(12)?.blockBytes, 144);
  assert.equal(ggmlType(23)?.name, "IQ4_XS");
  assert.equal(ggmlTypeName(16), "IQ2_XXS");
  assert.equal(ggmlTypeName(4), "type 4");
  assert.equal(ggmlType(99), undefined);
  assert.equal(new Set(GGML_TYPES.map((t) => t.id)).size, GGML_TYPES.length);
});

Deno.test("quantize then dequantize stays within each type's step, zero blocks stay zero", () => {
  const n = 4096;
  const types = [["Q8_0", 0.01], ["Q6_K", 0.03], ["Q5_0", 0.08], ["Q4_K", 0.1], ["Q4_0", 0.15]] as const;
  for (const scale of [0.02, 1, 1e3]) {
    const x = rand(n, 23, scale);
    x.fill(0, 0, 256); // an all-zero super-block
    for (const [name, tol] of types) {
      const y = dequantize(ggmlTypeNamed(name)!, quantize(name, x), n);
      assert.ok(y.subarray(0, 256).every((v) => v === 0), `${name} ${scale}: zeros`);
      assertCloseNorm(y, x, tol, `${name} at scale ${scale}`);
    }
  }
  // Scales below f16's smallest subnormal round to 0, as in llama.cpp: every value reads back 0.
  for (const [name] of types) {
    const y = dequantize(ggmlTypeNamed(name)!, quantize(name, rand(n, 5, 1e-30)), n);
    assert.ok(y.every((v) => v === 0), name);
  }
});
