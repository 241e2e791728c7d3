import assert from "node:assert/strict";
import {
  copyToScratchTextures,
  createView,
  getGpu,
  type Gpu,
  GpuError,
  read,
  Recorder,
  scratchLayout,
  scratchTextureFits,
  type TextureShape,
  Uniforms,
  upload,
  type View,
} from "@inheritune/kernels";
import { assertThrows } from "../_assert.ts";

/**
 * Copies a `shape` table from `src` with copyToScratchTextures, then reads it back texel by texel
 * through a kernel that finds each texel where {@linkcode scratchLayout} says it is.
 */
async function roundTrip(gpu: Gpu, src: View, shape: TextureShape): Promise<Float32Array> {
  const layout = scratchLayout(gpu, src, shape)!;
  const out = createView(gpu, shape.rows * shape.cols);
  const rec = new Recorder(gpu);
  rec.clear(out);
  const [texture] = copyToScratchTextures(rec, "scratch test", [{ view: src, shape }]);
  rec.dispatch({
    code: /* wgsl */ `
struct P { pitch: u32, rows: u32, flat: u32, shift: u32 }
@group(0) @binding(0) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(1) var t: texture_storage_2d<rgba32float, read>;
@group(0) @binding(2) var<uniform> p: P;
@compute @workgroup_size(1)
fn main() {
  for (var r = 0u; r < p.rows; r++) {
    for (var c4 = 0u; c4 < p.pitch; c4++) {
      let i = r * p.pitch + c4;
      var at = vec2<u32>(c4, r);
      if (p.flat != 0u) { at = vec2<u32>(i & ((1u << p.shift) - 1u), i >> p.shift); }
      out[i] = textureLoad(t, at);
    }
  }
}`,
    views: [out],
    textures: [texture],
    uniforms: new Uniforms().u32(layout.pitch).u32(shape.rows).u32(layout.flat ? 1 : 0).u32(layout.shift),
    groups: [1],
  });
  rec.submit();
  return await read(gpu, out);
}

Deno.test("copyToScratchTextures copies rows of 64 floats row by row, rows of 4k floats flat", async () => {
  const gpu = await getGpu();
  const cases = [
    { shape: { rows: 3, cols: 64 }, flat: false },
    { shape: { rows: 5, cols: 12 }, flat: true }, // 15 texels: part of one texture row
    { shape: { rows: 7, cols: 172 }, flat: true }, // 301 texels: 4 texture rows of 64 and 45 more
    { shape: { rows: 32, cols: 8 }, flat: true }, // 64 texels: exactly one texture row
  ];
  for (const { shape, flat } of cases) {
    const n = shape.rows * shape.cols;
    // The table starts 4 floats into its buffer, and the buffer ends where the table does.
    const whole = Float32Array.from({ length: n + 4 }, (_, i) => i * 0.5 - 3);
    const src = { ...upload(gpu, whole), offset: 4, length: n };
    assert.equal(scratchLayout(gpu, src, shape)?.flat, flat, `${shape.rows}x${shape.cols} flat`);
    const got = await roundTrip(gpu, src, shape);
    assert.deepEqual([...got], [...whole.subarray(4)], `${shape.rows}x${shape.cols}`);
  }
});

Deno.test("scratchLayout: row by row where the rows copy, flat for whole texels, else nothing", async () => {
  const gpu = await getGpu();
  const v = createView(gpu, 64 * 8);
  const max = gpu.limits.maxTextureDimension2D;
  assert.deepEqual(scratchLayout(gpu, v, { rows: 8, cols: 64 }), {
    flat: false,
    pitch: 16,
    shift: 0,
    texture: { rows: 8, cols: 64 },
  });
  assert.deepEqual(scratchLayout(gpu, v, { rows: 8, cols: 60 }), {
    flat: true,
    pitch: 15,
    shift: 6,
    texture: { rows: 2, cols: 256 },
  });
  // Too many texels for rows of 64: the texture widens to keep within its height.
  assert.equal(scratchLayout(gpu, v, { rows: max, cols: 4 * 65 })?.shift, 7);
  assert.ok(scratchTextureFits(gpu, v, { rows: 8, cols: 60 }), "row of 15 texels");
  assert.ok(!scratchTextureFits(gpu, v, { rows: 8, cols: 62 }), "row of 15.5 texels");
  assert.ok(
    !scratchTextureFits(gpu, { ...v, offset: 2 }, { rows: 8, cols: 60 }),
    "start not 16-byte aligned",
  );
  assert.ok(!scratchTextureFits(gpu, v, { rows: 0, cols: 60 }), "no rows");
  assert.ok(
    !scratchTextureFits(gpu, v, { rows: max, cols: 4 * (max + 1) }),
    "more texels than a texture holds",
  );
  const rec = new Recorder(gpu);
  const e = assertThrows(
    () => copyToScratchTextures(rec, "scratch test", [{ view: v, shape: { rows: 8, cols: 62 } }]),
    /scratch test: a table of 8 rows of 62 floats/,
  );
  assert.ok(e instanceof GpuError);
  assertThrows(
    () => copyToScratchTextures(rec, "scratch test", [{ view: v, shape: { rows: 16, cols: 60 } }]),
    /needs 960 elements, buffer has 512/,
  );
  assert.equal(rec.length, 0);
});
