import { assertThrows } from "../_assert.ts";
import {
  createView,
  getGpu,
  layernormBackward,
  layernormBackwardCpu,
  layernormForward,
  layernormForwardCpu,
  read,
  Recorder,
  upload,
} from "@inheritune/kernels";
import { assertClose, numericGrad, rand } from "../_util.ts";

const EPS = 1e-5;
const SHAPES: [number, number][] = [[1, 1], [5, 7], [67, 33], [5, 300], [3, 1600], [9, 64], [67, 128]];

// Shapes with C a multiple of 64 also run with texture operands (the CPU-adapter default).
const CASES = SHAPES.flatMap(([N, C]) =>
  (C % 64 === 0 ? ["buffer", "texture"] as const : ["buffer"] as const).map((operands) => ({
    N,
    C,
    operands,
  }))
);

Deno.test("layernorm forward matches CPU on odd shapes, saving mean and rstd, buffer and texture operands", async () => {
  const gpu = await getGpu();
  for (const { N, C, operands } of CASES) {
    // An offset mean checks that the variance does not lose precision to cancellation.
    const x = rand(N * C, N * 31 + C, 2).map((v) => v + 3);
    const w = rand(C, C + 1);
    const b = rand(C, C + 2);
    const out = createView(gpu, N * C);
    const mean = createView(gpu, N);
    const rstd = createView(gpu, N);
    const rec = new Recorder(gpu);
    layernormForward(rec, {
      out,
      mean,
      rstd,
      inp: upload(gpu, x),
      weight: upload(gpu, w),
      bias: upload(gpu, b),
      N,
      C,
      eps: EPS,
      operands,
    });
    rec.submit();
    const want = layernormForwardCpu(x, { weight: w, bias: b, N, C, eps: EPS });
    assertClose(await read(gpu, out), want.out, 1e-4, `out N=${N} C=${C} ${operands}`);
    assertClose(await read(gpu, mean), want.mean, 1e-4, `mean N=${N} C=${C} ${operands}`);
    assertClose(await read(gpu, rstd), want.rstd, 1e-4, `rstd N=${N} C=${C} ${operands}`);
  }
});

Deno.test("layernorm backward accumulates into non-zero gradients and matches CPU with both work splits and operands", async () => {
  const gpu = await getGpu();
  const cases = CASES.flatMap((c) =>
    [{ cols: 32, lanes: 8 }, { cols: 8, lanes: 32 }].map((split) => ({ ...c, split }))
  );
  for (const { N, C, split, operands } of cases) {
    const x = rand(N * C, N + C * 3);
    const w = rand(C, C + 4);
    const dy = rand(N * C, N * 5 + C);
    const dx0 = rand(N * C, 11);
    const dw0 = rand(C, 12);
    const db0 = rand(C, 13);
    const fwd = layernormForwardCpu(x, { weight: w, bias: new Float32Array(C), N, C, eps: EPS });
    const dinp = upload(gpu, dx0);
    const dweight = upload(gpu, dw0);
    const dbias = upload(gpu, db0);
    const rec = new Recorder(gpu);
    layernormBackward(rec, {
      dinp,
      dweight,
      dbias,
      dout: upload(gpu, dy),
      inp: upload(gpu, x),
      weight: upload(gpu, w),
      mean: upload(gpu, Float32Array.from(fwd.mean)),
      rstd: upload(gpu, Float32Array.from(fwd.rstd)),
      N,
      C,
      split,
      operands,
    });
    rec.submit();
    const want = layernormBackwardCpu(dy, { inp: x, weight: w, mean: fwd.mean, rstd: fwd.rstd, N, C });
    const plus = (g: Float64Array, g0: Float32Array) => g.map((v, i) => v + g0[i]);
    assertClose(await read(gpu, dinp), plus(want.dinp, dx0), 1e-4, `dinp N=${N} C=${C} ${operands}`);
    assertClose(
      await read(gpu, dweight),
      plus(want.dweight, dw0),
      1e-4,
      `dweight N=${N} C=${C} split ${split.cols}x${split.lanes}`,
    );
    assertClose(await read(gpu, dbias), plus(want.dbias, db0), 1e-4, `dbias N=${N} C=${C}`);
  }
});

Deno.test("layernorm backward CPU reference matches finite differences", () => {
  for (const [N, C] of [[1, 1], [3, 7], [2, 33]]) {
    const x = rand(N * C, 21 + C);
    const w = rand(C, 22);
    const b = rand(C, 23);
    const dy = rand(N * C, 24);
    const f = (xx: ArrayLike<number>, ww: ArrayLike<number>, bb: ArrayLike<number>) =>
      layernormForwardCpu(xx, { weight: ww, bias: bb, N, C, eps: EPS }).out;
    const { mean, rstd } = layernormForwardCpu(x, { weight: w, bias: b, N, C, eps: EPS });
    const got = layernormBackwardCpu(dy, { inp: x, weight: w, mean, rstd, N, C });
    assertClose(got.dinp, numericGrad((v) => f(v, w, b), x, dy), 1e-5, `dinp N=${N} C=${C}`);
    assertClose(got.dweight, numericGrad((v) => f(x, v, b), w, dy), 1e-5, `dweight N=${N} C=${C}`);
    assertClose(got.dbias, numericGrad((v) => f(x, w, v), b, dy), 1e-5, `dbias N=${N} C=${C}`);
  }
});

Deno.test("layernorm backward parameter gradients are the same bits on every run", async () => {
  const gpu = await getGpu();
  const [N, C] = [300, 70];
  const x = upload(gpu, rand(N * C, 31));
  const w = upload(gpu, rand(C, 32));
  const dy = upload(gpu, rand(N * C, 33));
  const mean = upload(gpu, rand(N, 34));
  const rstd = upload(gpu, rand(N, 35));
  const run = async () => {
    const dweight = createView(gpu, C);
    const dbias = createView(gpu, C);
    const rec = new Recorder(gpu);
    const dinp = createView(gpu, N * C);
    layernormBackward(rec, { dinp, dweight, dbias, dout: dy, inp: x, weight: w, mean, rstd, N, C });
    rec.submit();
    return [...(await read(gpu, dweight)), ...(await read(gpu, dbias))];
  };
  const first = await run();
  const second = await run();
  if (!first.every((v, i) => Object.is(v, second[i]))) throw new Error("two runs differ");
});

Deno.test("layernorm rejects buffers too small for the shape and texture operands that do not fit", async () => {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  const v = (n: number) => createView(gpu, n);
  const fwd = {
    out: v(12),
    mean: v(3),
    rstd: v(3),
    inp: v(12),
    weight: v(4),
    bias: v(4),
    N: 3,
    C: 4,
    eps: EPS,
  };
  assertThrows(() => layernormForward(rec, { ...fwd, operands: "texture" }), /cannot read texture operands/);
  assertThrows(
    () => layernormForward(rec, { ...fwd, rstd: v(2) }),
    /layernorm rstd \(N=3\): needs 3 elements, buffer has 2/,
  );
  assertThrows(
    () =>
      layernormBackward(rec, {
        dinp: v(12),
        dweight: v(4),
        dbias: v(4),
        dout: v(11),
        inp: v(12),
        weight: v(4),
        mean: v(3),
        rstd: v(3),
        N: 3,
        C: 4,
      }),
    /layernorm backward dout \(N=3, C=4\): needs 12 elements, buffer has 11/,
  );
  if (rec.length !== 0) throw new Error("a rejected call recorded a dispatch");
});
