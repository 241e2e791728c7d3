import { assertThrows } from "../_assert.ts";
import {
  createView,
  geluBackward,
  geluBackwardCpu,
  geluForward,
  geluForwardCpu,
  getGpu,
  type Gpu,
  read,
  Recorder,
  upload,
} from "@inheritune/kernels";
import { assertClose, numericGrad, rand } from "../_util.ts";

// Large |x| is where a tanh computed from exp(2u) overflows to NaN.
const EXTREMES = [20, -20, 10, -10, 5, -5, 88, -88, 0, 1e-3, -1e-3];

/** Element-wise check for the extremes, whose exact values near 0 a relative error cannot judge. */
function assertNear(got: Float32Array, want: Float64Array, what: string): void {
  got.forEach((g, i) => {
    if (!(Math.abs(g - want[i]) <= 1e-4 * Math.abs(want[i]) + 1e-7)) {
      throw new Error(`${what}: x=${EXTREMES[i]} gave ${g}, want ${want[i]}`);
    }
  });
}

Deno.test("gelu forward matches CPU on odd sizes", async () => {
  const gpu = await getGpu();
  for (const n of [1, 11, 255, 257, 1000]) {
    const x = rand(n, n, 4);
    const out = createView(gpu, n);
    const rec = new Recorder(gpu);
    geluForward(rec, { out, inp: upload(gpu, x), n });
    rec.submit();
    assertClose(await read(gpu, out), geluForwardCpu(x), 1e-4, `gelu n=${n}`);
  }
});

Deno.test("gelu backward overwrites dinp with gelu'(x)·dout and matches CPU", async () => {
  const gpu = await getGpu();
  for (const n of [1, 11, 257, 1000]) {
    const x = rand(n, n + 1, 4);
    const dy = rand(n, n + 2);
    const dinp = upload(gpu, rand(n, n + 3, 100));
    const rec = new Recorder(gpu);
    geluBackward(rec, { dinp, inp: upload(gpu, x), dout: upload(gpu, dy), n });
    rec.submit();
    assertClose(await read(gpu, dinp), geluBackwardCpu(x, dy), 1e-4, `gelu backward n=${n}`);
  }
});

Deno.test("gelu forward and backward stay finite and exact for large |x|, one and four elements per invocation", async () => {
  const gpu = await getGpu();
  for (const values of [EXTREMES, EXTREMES.slice(0, 8)]) await checkExtremes(gpu, values);
});

async function checkExtremes(gpu: Gpu, values: number[]): Promise<void> {
  const n = values.length;
  const x = new Float32Array(values);
  const dy = new Float32Array(n).fill(1);
  const inp = upload(gpu, x);
  const out = createView(gpu, n);
  const dinp = createView(gpu, n);
  const rec = new Recorder(gpu);
  geluForward(rec, { out, inp, n });
  geluBackward(rec, { dinp, inp, dout: upload(gpu, dy), n });
  rec.submit();
  assertNear(await read(gpu, out), geluForwardCpu(x), `gelu n=${n}`);
  assertNear(await read(gpu, dinp), geluBackwardCpu(x, dy), `gelu' n=${n}`);
}

Deno.test("gelu backward CPU reference matches finite differences", () => {
  const x = rand(50, 7, 4);
  x.set([20, -20, 0, 1e-3]);
  const dy = rand(50, 8);
  assertClose(geluBackwardCpu(x, dy), numericGrad(geluForwardCpu, x, dy), 1e-6, "dx");
});

Deno.test("gelu rejects buffers too small for the count before dispatching", async () => {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  assertThrows(
    () => geluForward(rec, { out: createView(gpu, 4), inp: createView(gpu, 3), n: 4 }),
    /gelu inp \(n=4\): needs 4 elements, buffer has 3/,
  );
  assertThrows(
    () =>
      geluBackward(rec, {
        dinp: createView(gpu, 3),
        inp: createView(gpu, 4),
        dout: createView(gpu, 4),
        n: 4,
      }),
    /gelu backward dinp \(n=4\): needs 4 elements, buffer has 3/,
  );
  if (rec.length !== 0) throw new Error("a rejected call recorded a dispatch");
});
