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

// Shapes with C a multiple of 64 also run with texture operands (the CPU-adapter default); each
// with the plain weight (offset 0) and Gemma's 1 + weight (offset 1).
const CASES = SHAPES.flatMap(([N, C]) =>
  (C % 64 === 0 ? ["buffer", "texture"] as const : ["buffer"] as const).flatMap((operands) =>
    [0, 1].map((offset) => ({ N, C, operands, offset }))
  )
);

Deno.test("rmsnorm forward matches CPU on odd shapes, saving rstd, buffer and texture operands, weight offsets 0 and 1", async () => {
  const gpu = await getGpu();
  for (const { N, C, operands, offset } of CASES) {
    const x = rand(N * C, N * 31 + C, 2).map((v) => v + 0.5);
    const w = rand(C, C + 1);
    const out = createView(gpu, N * C);
    const rstd = createView(gpu, N);
    const rec = new Recorder(gpu);
    const weight = upload(gpu, w);
    rmsnormForward(rec, { out, rstd, inp: upload(gpu, x), weight, N, C, eps: EPS, offset, operands });
    rec.submit();
    const want = rmsnormForwardCpu(x, { weight: w, N, C, eps: EPS, offset });
    const what = `N=${N} C=${C} ${operands} offset ${offset}`;
    assertClose(await read(gpu, out), want.out, 1e-4, `out ${what}`);
    assertClose(await read(gpu, rstd), want.rstd, 1e-4, `rstd ${what}`);
  }
});

Deno.test("rmsnorm backward accumulates into non-zero gradients and matches CPU, buffer and texture operands, weight offsets 0 and 1", async () => {
  const gpu = await getGpu();
  for (const { N, C, operands, offset } of CASES) {
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
      offset,
      operands,
    });
    rec.submit();
    const want = rmsnormBackwardCpu(dy, { inp: x, weight: w, rstd, N, C, offset });
    const plus = (g: Float64Array, g0: Float32Array) => g.map((v, i) => v + g0[i]);
    const what = `N=${N} C=${C} ${operands} offset ${offset}`;
    assertClose(await read(gpu, dinp), plus(want.dinp, dx0), 1e-4, `dinp ${what}`);
    assertClose(await read(gpu, dweight), plus(want.dweight, dw0), 1e-4, `dweight ${what}`);
  }
});

Deno.test("rmsnorm backward CPU reference matches finite differences, weight offsets 0 and 1", () => {
  for (const [N, C, offset] of [[1, 1, 0], [3, 7, 0], [2, 33, 0], [3, 7, 1], [2, 33, 1]]) {
    const x = rand(N * C, 21 + C);
    const w = rand(C, 22);
    const dy = rand(N * C, 24);
    const f = (xx: ArrayLike<number>, ww: ArrayLike<number>) =>
      rmsnormForwardCpu(xx, { weight: ww, N, C, eps: EPS, offset }).out;
    const { rstd } = rmsnormForwardCpu(x, { weight: w, N, C, eps: EPS, offset });
    const got = rmsnormBackwardCpu(dy, { inp: x, weight: w, rstd, N, C, offset });
    const what = `N=${N} C=${C} offset ${offset}`;
    assertClose(got.dinp, numericGrad((v) => f(v, w), x, dy), 1e-5, `dinp ${what}`);
    assertClose(got.dweight, numericGrad((v) => f(x, v), w, dy), 1e-5, `dweight ${what}`);
  }
});

Deno.test("rmsnorm CPU reference with offset 1 scales by 1 + weight (Gemma)", () => {
  const [N, C] = [3, 5];
  const x = rand(N * C, 31);
  const w = rand(C, 32);
  const plain = rmsnormForwardCpu(x, { weight: Float64Array.from(w, (v) => 1 + v), N, C, eps: EPS });
  assertClose(rmsnormForwardCpu(x, { weight: w, N, C, eps: EPS, offset: 1 }).out, plain.out, 1e-15, "out");
});

/**
 * Per-head RMSNorm of `q (BT, NH·hs)` written as Qwen3's `q_norm(q.view(BT, NH, hs))`, one loop per
 * head with the weight `(hs)` shared by the heads: the reference the `(BT·NH, hs)` view must match.
 */
function headNormCpu(
  q: ArrayLike<number>,
  w: ArrayLike<number>,
  shape: { BT: number; NH: number; hs: number; offset: number },
): Float64Array {
  const { BT, NH, hs, offset } = shape;
  const out = new Float64Array(BT * NH * hs);
  for (let r = 0; r < BT; r++) {
    for (let h = 0; h < NH; h++) {
      const o = r * NH * hs + h * hs;
      let ss = 0;
      for (let d = 0; d < hs; d++) ss += q[o + d] ** 2;
      const rstd = 1 / Math.sqrt(ss / hs + EPS);
      for (let d = 0; d < hs; d++) out[o + d] = q[o + d] * rstd * (offset + w[d]);
    }
  }
  return out;
}

Deno.test("rmsnorm as per-head q/k norm: (BT, NH·hs) as (BT·NH, hs) rows, one weight summed over rows and heads", async () => {
  const gpu = await getGpu();
  // [BT, NH, hs, offset]: Qwen3 (offset 0) and Gemma 3 (offset 1, head size up to 256); hs=64 and
  // 256 take texture operands on a CPU adapter, hs=8 buffers.
  for (const [BT, NH, hs, offset] of [[5, 3, 8, 0], [6, 2, 64, 1], [4, 1, 8, 1], [2, 2, 256, 1]]) {
    const N = BT * NH;
    const q = rand(N * hs, BT + hs, 2);
    const w = rand(hs, hs + 1);
    const dy = rand(N * hs, NH + 7);
    const out = createView(gpu, N * hs);
    const rstd = createView(gpu, N);
    const dinp = createView(gpu, N * hs);
    const dweight = createView(gpu, hs);
    const views = { inp: upload(gpu, q), weight: upload(gpu, w), N, C: hs, offset };
    const rec = new Recorder(gpu);
    rmsnormForward(rec, { out, rstd, ...views, eps: EPS });
    rmsnormBackward(rec, { dinp, dweight, dout: upload(gpu, dy), rstd, ...views });
    rec.submit();
    const shape = { BT, NH, hs, offset };
    const what = `BT=${BT} NH=${NH} hs=${hs} offset ${offset}`;
    assertClose(await read(gpu, out), headNormCpu(q, w, shape), 1e-4, `out ${what}`);
    const dq = numericGrad((v) => headNormCpu(v, w, shape), q, dy);
    const dw = numericGrad((v) => headNormCpu(q, v, shape), w, dy);
    assertClose(await read(gpu, dinp), dq, 1e-4, `dq ${what}`);
    assertClose(await read(gpu, dweight), dw, 1e-4, `dweight ${what}`);
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
