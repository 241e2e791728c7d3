import { assertThrows } from "../_assert.ts";
import {
  createView,
  getGpu,
  read,
  Recorder,
  rmsnormBackward,
  rmsnormBackwardCpu,
  rmsnormForward,
  rmsnormForwardCpu,
  upload,
} from "@inheritune/kernels";
import { assertClose, numericGrad, rand } from "../_util.ts";

const EPS = 1e-5;
const SHAPES: [number, number][] = [[1, 1], [5, 7], [67, 33], [5, 300], [9, 64], [67, 128]];

// Shapes with C a multiple of 64 also run with texture operands (the CPU-adapter default).
const CASES = SHAPES.flatMap(([N, C]) =>
  (C % 64 === 0 ? ["buffer", "texture"] as const : ["buffer"] as const).map((operands) => ({
    N,
    C,
    operands,
  }))
);

Deno.test("rmsnorm forward matches CPU on odd shapes, saving rstd, buffer and texture operands", async () => {
  const gpu = await getGpu();
  for (const { N, C, operands } of CASES) {
    const x = rand(N * C, N * 31 + C, 2).map((v) => v + 0.5);
    const w = rand(C, C + 1);
    const out = createView(gpu, N * C);
    const rstd = createView(gpu, N);
    const rec = new Recorder(gpu);
    rmsnormForward(rec, { out, rstd, inp: upload(gpu, x), weight: upload(gpu, w), N, C, eps: EPS, operands });
    rec.submit();
    const want = rmsnormForwardCpu(x, { weight: w, N, C, eps: EPS });
    assertClose(await read(gpu, out), want.out, 1e-4, `out N=${N} C=${C} ${operands}`);
    assertClose(await read(gpu, rstd), want.rstd, 1e-4, `rstd N=${N} C=${C} ${operands}`);
  }
});

Deno.test("rmsnorm backward accumulates into non-zero gradients and matches CPU, buffer and texture operands", async () => {
  const gpu = await getGpu();
  for (const { N, C, operands } of CASES) {
    const x = rand(N * C, N + C * 3);
    const w = rand(C, C + 4);
    const dy = rand(N * C, N * 5 + C);
    const dx0 = rand(N * C, 11);
    const dw0 = rand(C, 12);
    const { rstd } = rmsnormForwardCpu(x, { weight: w, N, C, eps: EPS });
    const dinp = upload(gpu, dx0);
    const dweight = upload(gpu, dw0);
    const rec = new Recorder(gpu);
    rmsnormBackward(rec, {
      dinp,
      dweight,
      dout: upload(gpu, dy),
      inp: upload(gpu, x),
      weight: upload(gpu, w),
      rstd: upload(gpu, Float32Array.from(rstd)),
      N,
      C,
      operands,
    });
    rec.submit();
    const want = rmsnormBackwardCpu(dy, { inp: x, weight: w, rstd, N, C });
    const plus = (g: Float64Array, g0: Float32Array) => g.map((v, i) => v + g0[i]);
    assertClose(await read(gpu, dinp), plus(want.dinp, dx0), 1e-4, `dinp N=${N} C=${C} ${operands}`);
    assertClose(await read(gpu, dweight), plus(want.dweight, dw0), 1e-4, `dweight N=${N} C=${C} ${operands}`);
  }
});

Deno.test("rmsnorm backward CPU reference matches finite differences", () => {
  for (const [N, C] of [[1, 1], [3, 7], [2, 33]]) {
    const x = rand(N * C, 21 + C);
    const w = rand(C, 22);
    const dy = rand(N * C, 24);
    const f = (xx: ArrayLike<number>, ww: ArrayLike<number>) =>
      rmsnormForwardCpu(xx, { weight: ww, N, C, eps: EPS }).out;
    const { rstd } = rmsnormForwardCpu(x, { weight: w, N, C, eps: EPS });
    const got = rmsnormBackwardCpu(dy, { inp: x, weight: w, rstd, N, C });
    assertClose(got.dinp, numericGrad((v) => f(v, w), x, dy), 1e-5, `dinp N=${N} C=${C}`);
    assertClose(got.dweight, numericGrad((v) => f(x, v), w, dy), 1e-5, `dweight N=${N} C=${C}`);
  }
});

Deno.test("rmsnorm CPU reference: each output row has root mean square |w|·(1 + O(eps))", () => {
  const [N, C] = [4, 10];
  const x = rand(N * C, 5, 3);
  const { out } = rmsnormForwardCpu(x, { weight: new Float32Array(C).fill(2), N, C, eps: 0 });
  for (let i = 0; i < N; i++) {
    let ss = 0;
    for (let c = 0; c < C; c++) ss += out[i * C + c] ** 2;
    assertClose([Math.sqrt(ss / C)], [2], 1e-12, `row ${i}`);
  }
});

Deno.test("rmsnorm rejects buffers too small for the shape and texture operands that do not fit", async () => {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  const v = (n: number) => createView(gpu, n);
  const fwd = { out: v(12), rstd: v(3), inp: v(12), weight: v(4), N: 3, C: 4, eps: EPS };
  assertThrows(
    () => rmsnormForward(rec, { ...fwd, operands: "texture" }),
    /rmsnorm .*cannot read texture operands/,
  );
  assertThrows(
    () => rmsnormForward(rec, { ...fwd, rstd: v(2) }),
    /rmsnorm rstd \(N=3\): needs 3 elements, buffer has 2/,
  );
  assertThrows(
    () =>
      rmsnormBackward(rec, {
        dinp: v(12),
        dweight: v(4),
        dout: v(11),
        inp: v(12),
        weight: v(4),
        rstd: v(3),
        N: 3,
        C: 4,
      }),
    /rmsnorm backward dout \(N=3, C=4\): needs 12 elements, buffer has 11/,
  );
  if (rec.length !== 0) throw new Error("a rejected call recorded a dispatch");
});
