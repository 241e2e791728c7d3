import { assertThrows } from "../_assert.ts";
import {
  createView,
  getGpu,
  read,
  Recorder,
  swigluBackward,
  swigluBackwardCpu,
  swigluForward,
  swigluForwardCpu,
  upload,
} from "@inheritune/kernels";
import { assertClose, numericGrad, rand } from "../_util.ts";

// Odd sizes take the f32 kernels, multiples of 4 the vec4 ones.
const SIZES = [1, 11, 256, 257, 1000];

Deno.test("swiglu forward matches CPU on odd sizes and extreme gates", async () => {
  const gpu = await getGpu();
  for (const n of SIZES) {
    const gate = rand(n, n, 6);
    gate[0] = 100; // far past exp's range: silu(100) = 100
    if (n > 1) gate[1] = -100; // silu(-100) ≈ 0, no NaN
    const up = rand(n, n + 1, 2);
    const out = createView(gpu, n);
    const rec = new Recorder(gpu);
    swigluForward(rec, { out, gate: upload(gpu, gate), up: upload(gpu, up), n });
    rec.submit();
    assertClose(await read(gpu, out), swigluForwardCpu(gate, up), 1e-4, `swiglu n=${n}`);
  }
});

Deno.test("swiglu backward overwrites both gradients and matches CPU", async () => {
  const gpu = await getGpu();
  for (const n of SIZES) {
    const gate = rand(n, n + 2, 6);
    const up = rand(n, n + 3, 2);
    const dout = rand(n, n + 4);
    const dgate = upload(gpu, rand(n, 7, 100));
    const dup = upload(gpu, rand(n, 8, 100));
    const rec = new Recorder(gpu);
    swigluBackward(rec, {
      dgate,
      dup,
      gate: upload(gpu, gate),
      up: upload(gpu, up),
      dout: upload(gpu, dout),
      n,
    });
    rec.submit();
    const want = swigluBackwardCpu(gate, up, dout);
    assertClose(await read(gpu, dgate), want.dgate, 1e-4, `dgate n=${n}`);
    assertClose(await read(gpu, dup), want.dup, 1e-4, `dup n=${n}`);
  }
});

Deno.test("swiglu backward CPU reference matches finite differences", () => {
  const n = 9;
  const gate = rand(n, 1, 4);
  const up = rand(n, 2, 2);
  const w = rand(n, 3);
  const got = swigluBackwardCpu(gate, up, w);
  assertClose(got.dgate, numericGrad((g) => swigluForwardCpu(g, up), gate, w), 1e-6, "dgate");
  assertClose(got.dup, numericGrad((u) => swigluForwardCpu(gate, u), up, w), 1e-6, "dup");
});

Deno.test("swiglu rejects buffers too small for n", async () => {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  const v = (n: number) => createView(gpu, n);
  assertThrows(
    () => swigluForward(rec, { out: v(4), gate: v(3), up: v(4), n: 4 }),
    /swiglu gate \(n=4\): needs 4/,
  );
  assertThrows(
    () => swigluBackward(rec, { dgate: v(4), dup: v(4), gate: v(4), up: v(4), dout: v(2), n: 4 }),
    /swiglu backward dout \(n=4\): needs 4 elements, buffer has 2/,
  );
  if (rec.length !== 0) throw new Error("a rejected call recorded a dispatch");
});
