import assert from "node:assert/strict";
import { createView, getGpu, read, Recorder, scaleCpu, scaleInPlace, write } from "@inheritune/kernels";
import { rand } from "../_util.ts";

Deno.test("scaleInPlace multiplies by the f32 factor exactly as the CPU reference, vec4 and scalar lengths", async () => {
  const gpu = await getGpu();
  for (const n of [4096, 37]) {
    const x = rand(n, n, 3);
    const view = createView(gpu, n);
    write(gpu, view, x);
    const rec = new Recorder(gpu);
    scaleInPlace(rec, { x: view, n, scale: Math.sqrt(32) });
    rec.submit();
    assert.deepEqual(await read(gpu, view), scaleCpu(x, Math.sqrt(32)));
    view.buffer.destroy();
  }
});
