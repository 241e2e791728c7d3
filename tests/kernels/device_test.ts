import assert from "node:assert/strict";
import {
  checkErrors,
  createView,
  getGpu,
  GpuError,
  read,
  Recorder,
  scratchTexture,
  textureFits,
  upload,
} from "@inheritune/kernels";
import { assertThrows } from "../_assert.ts";

Deno.test("textureFits wants rows of 64 floats, an aligned start and the adapter's texture size", async () => {
  const gpu = await getGpu();
  const v = createView(gpu, 64 * 8);
  assert.ok(textureFits(gpu, v, { rows: 8, cols: 64 }));
  assert.ok(!textureFits(gpu, v, { rows: 8, cols: 60 }), "row of 240 bytes");
  assert.ok(!textureFits(gpu, { ...v, offset: 2 }, { rows: 8, cols: 64 }), "start not 16-byte aligned");
  assert.ok(!textureFits(gpu, v, { rows: gpu.limits.maxTextureDimension2D + 1, cols: 64 }), "too many rows");
  assert.ok(!textureFits(gpu, v, { rows: 0, cols: 64 }), "no rows");
});

Deno.test("copyToTexture rejects what WebGPU cannot copy before recording anything", async () => {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  const texture = scratchTexture(gpu, "device test", { rows: 2, cols: 64 });
  assertThrows(() => rec.copyToTexture(createView(gpu, 127), texture), /needs 128 elements, buffer has 127/);
  const v = createView(gpu, 256);
  assertThrows(
    () => rec.copyToTexture({ ...v, offset: 2 }, texture),
    /16-byte aligned; got .* offset 8 bytes/,
  );
  const narrow = gpu.device.createTexture({
    size: [8, 2],
    format: "rgba32float",
    usage: GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.COPY_DST,
  });
  assertThrows(() => rec.copyToTexture(v, narrow), /rows of a multiple of 64 floats.*32 floats per row/);
  assert.equal(rec.length, 0);
  narrow.destroy();
});

Deno.test("copyFlatToTexture rejects views that are not whole texels, misaligned or too long", async () => {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  const texture = scratchTexture(gpu, "device test", { rows: 2, cols: 64 });
  const v = createView(gpu, 256);
  assertThrows(() => rec.copyFlatToTexture({ ...v, length: 6 }, texture), /whole texels.*a view of 6 floats/);
  assertThrows(() => rec.copyFlatToTexture({ ...v, offset: 2, length: 8 }, texture), /offset 8 bytes/);
  assertThrows(() => rec.copyFlatToTexture({ ...v, length: 132 }, texture), /2 rows, a view of 132 floats/);
  assertThrows(() => rec.copyFlatToTexture({ ...v, length: 0 }, texture), /a view of 0 floats/);
  const narrow = gpu.device.createTexture({
    size: [8, 2],
    format: "rgba32float",
    usage: GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.COPY_DST,
  });
  assertThrows(() => rec.copyFlatToTexture({ ...v, length: 8 }, narrow), /32 floats per row/);
  assert.equal(rec.length, 0);
  narrow.destroy();
});

Deno.test("scratchTexture returns one texture per role and shape", async () => {
  const gpu = await getGpu();
  const a = scratchTexture(gpu, "device test", { rows: 2, cols: 64 });
  assert.equal(scratchTexture(gpu, "device test", { rows: 2, cols: 64 }), a);
  assert.notEqual(scratchTexture(gpu, "device test b", { rows: 2, cols: 64 }), a);
  assert.notEqual(scratchTexture(gpu, "device test", { rows: 3, cols: 64 }), a);
  assert.deepEqual([a.width, a.height, a.format], [16, 2, "rgba32float"]);
});

Deno.test("a clear, a texture copy and a kernel that reads it run in recorded order", async () => {
  const gpu = await getGpu();
  const data = Float32Array.from({ length: 2 * 64 }, (_, i) => i);
  const src = upload(gpu, data);
  const out = createView(gpu, 2 * 64);
  const texture = scratchTexture(gpu, "device test", { rows: 2, cols: 64 });
  const rec = new Recorder(gpu);
  rec.clear(out);
  rec.copyToTexture(src, texture);
  rec.dispatch({
    code: /* wgsl */ `
@group(0) @binding(0) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(1) var t: texture_storage_2d<rgba32float, read>;
@compute @workgroup_size(16, 2)
fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  out[g.y * 16u + g.x] = textureLoad(t, g.xy) * 2.0;
}`,
    views: [out],
    textures: [texture],
    groups: [1, 1],
  });
  rec.submit();
  assert.deepEqual(await read(gpu, out), data.map((x) => 2 * x));
});

Deno.test("a kernel that does not compile is a GpuError naming the error and its line at the next readback", async () => {
  const gpu = await getGpu();
  const out = upload(gpu, new Float32Array([7, 7, 7, 7]));
  const rec = new Recorder(gpu);
  rec.dispatch({
    code: /* wgsl */ `
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(1)
fn main() {
  out[0] = 1.0 +;
}`,
    views: [out],
    groups: [1],
  });
  rec.submit();
  await assert.rejects(read(gpu, out), (e: Error) => {
    assert.ok(e instanceof GpuError, e.name);
    assert.match(e.message, /wgsl-[0-9a-f]{8}.*expected expression.* at line 5:\d+: out\[0\] = 1\.0 \+;$/);
    return true;
  });
  // Reported once: the device stays usable, and the invalid kernel wrote nothing.
  assert.deepEqual([...await read(gpu, out)], [7, 7, 7, 7]);
});

Deno.test("a binding the kernel cannot take is a GpuError at the next readback", async () => {
  const gpu = await getGpu();
  const out = createView(gpu, 4);
  const rec = new Recorder(gpu);
  rec.dispatch({
    code: /* wgsl */ `
struct P { x: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(1)
fn main() {
  out[0] = p.x;
}`,
    views: [out, out],
    groups: [1],
  });
  await assert.rejects(checkErrors(gpu), GpuError);
  await checkErrors(gpu);
});
