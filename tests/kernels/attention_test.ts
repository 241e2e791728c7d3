import assert from "node:assert/strict";
import { assertThrows } from "../_assert.ts";
import {
  attentionBackward,
  attentionBackwardCpu,
  attentionForward,
  attentionForwardCpu,
  type AttentionShape,
  type AttentionSplit,
  createAttentionScratch,
  createView,
  getGpu,
  read,
  Recorder,
  upload,
} from "@inheritune/kernels";
import { assertClose, numericGrad, rand } from "../_util.ts";

// [B, T, C, NH, NKV]: T=1, 5, 64 and 70 (two row blocks, partial tiles); hs = 1, 3, 4, 5, 8, 32,
// 64, 128; multi-head (NKV = NH), grouped-query (1 < NKV < NH) and multi-query (NKV = 1).
const SHAPES: [number, number, number, number, number][] = [
  [1, 1, 8, 1, 1],
  [2, 5, 3, 3, 3],
  [2, 5, 15, 3, 3],
  [2, 5, 12, 4, 2],
  [2, 9, 16, 4, 1],
  [1, 64, 16, 2, 2],
  [1, 64, 64, 8, 4],
  [2, 64, 64, 1, 1],
  [1, 64, 128, 1, 1],
  [1, 70, 128, 4, 1],
  [1, 70, 256, 2, 2],
  [1, 65, 64, 1, 1], // B·NH·T not a multiple of 4: lse and delta stay in buffers with texture operands
];

const name = ({ B, T, C, NH, NKV, window, scale }: AttentionShape): string =>
  `B=${B} T=${T} C=${C} NH=${NH} NKV=${NKV}${window ? ` window=${window}` : ""}${
    scale ? ` scale=${scale}` : ""
  }`;

/** Floats per row of qkv. */
const width = (C: number, NH: number, NKV: number): number => (C / NH) * (NH + 2 * NKV);

// The GPU's split: one row per invocation, one streamed row per step, dk and dv apart.
const GPU_SPLIT: AttentionSplit = { wg: 64, rowVectors: 0, step: 1, separateDkDv: true };

// Shapes with C a multiple of 64 and hs of 4 also run with texture operands (the CPU-adapter
// default); the others only read storage buffers. Both operands run with the adapter's split and
// with the GPU's.
async function assertMatchesCpu(
  shapes: ([number, number, number, number, number] | AttentionShape)[],
  options: { tol: number; inputScale?: number },
): Promise<void> {
  const gpu = await getGpu();
  for (const s of shapes) {
    const { B, T, C, NH, NKV = NH, window, scale } = Array.isArray(s)
      ? { B: s[0], T: s[1], C: s[2], NH: s[3], NKV: s[4] }
      : s;
    const W = width(C, NH, NKV);
    const textures = C % 64 === 0 && W % 64 === 0 && (C / NH) % 4 === 0;
    const cases: { operands: "buffer" | "texture"; split?: AttentionSplit }[] = [
      { operands: "buffer" },
      { operands: "buffer", split: GPU_SPLIT },
      ...(textures
        ? [{ operands: "texture" as const }, { operands: "texture" as const, split: GPU_SPLIT }]
        : []),
    ];
    for (const { operands, split } of cases) {
      const shape = { B, T, C, NH, NKV, window, scale, operands, split };
      const qkv = rand(B * T * W, B * 31 + T * 7 + C, options.inputScale ?? 1);
      const dout = rand(B * T * C, T + C, 1);
      const views = {
        qkv: upload(gpu, qkv),
        out: createView(gpu, B * T * C),
        lse: createView(gpu, B * NH * T),
        dout: upload(gpu, dout),
        // Garbage in dqkv: the backward pass must overwrite every element.
        dqkv: upload(gpu, rand(B * T * W, 99, 1e3)),
        delta: createAttentionScratch(gpu, shape),
      };
      const rec = new Recorder(gpu);
      attentionForward(rec, { ...views, ...shape });
      attentionBackward(rec, { ...views, ...shape });
      rec.submit();
      const what = `${name(shape)} ${operands}${split ? " GPU split" : ""}`;
      const want = attentionForwardCpu(qkv, shape);
      assertClose(await read(gpu, views.out), want.out, options.tol, `out ${what}`);
      assertClose(await read(gpu, views.lse), want.lse, options.tol, `lse ${what}`);
      const dqkv = attentionBackwardCpu(dout, qkv, shape);
      assertClose(await read(gpu, views.dqkv), dqkv, options.tol, `dqkv ${what}`);
    }
  }
}

Deno.test("attention forward and backward match the CPU reference on odd shapes, buffer and texture operands, CPU and GPU splits", async () => {
  await assertMatchesCpu(SHAPES, { tol: 1e-4 });
});

// Windows shorter than T, of one position, crossing row blocks (T=70: two blocks of the GPU split,
// the CPU split's blocks being smaller), and no shorter than T; scales other than 1/√hs; grouped
// and multi-query heads; hs = 4 (buffers only) and 16.
Deno.test("attention with a sliding window and a score scale matches the CPU reference on every path", async () => {
  await assertMatchesCpu([
    { B: 2, T: 70, C: 64, NH: 4, NKV: 2, window: 5, scale: 0.3 },
    { B: 1, T: 70, C: 64, NH: 4, NKV: 1, window: 1 },
    { B: 1, T: 70, C: 64, NH: 2, NKV: 2, window: 40, scale: 0.125 },
    { B: 2, T: 9, C: 12, NH: 3, NKV: 1, window: 3, scale: 1.5 },
    { B: 1, T: 5, C: 8, NH: 2, NKV: 2, window: 5 },
  ], { tol: 1e-4 });
});

// Gemma 3's head size: one row of state per invocation on every split (the CPU split then streams
// one row per step). f32 sums of 256 products are noisier: inputs of half the usual size keep the
// scores, and so the error, at the other shapes' level.
Deno.test("attention with head size 256, multi-query and grouped, with and without a window, matches the CPU reference on every path", async () => {
  await assertMatchesCpu([
    { B: 1, T: 70, C: 512, NH: 2, NKV: 1, window: 6, scale: 0.125 },
    { B: 2, T: 9, C: 1024, NH: 4, NKV: 2 },
  ], { tol: 1e-4, inputScale: 0.5 });
});

Deno.test("attention backward CPU reference matches finite differences, with and without grouped heads, window and scale", () => {
  for (
    const shape of [
      { B: 2, T: 4, C: 6, NH: 2, NKV: 2 },
      { B: 2, T: 4, C: 12, NH: 4, NKV: 2 },
      { B: 2, T: 6, C: 6, NH: 2, NKV: 1, window: 3, scale: 0.7 },
      { B: 2, T: 5, C: 12, NH: 4, NKV: 2, window: 2 },
    ]
  ) {
    const qkv = rand(shape.B * shape.T * width(shape.C, shape.NH, shape.NKV), 5, 1.5);
    const w = rand(shape.B * shape.T * shape.C, 6);
    const want = numericGrad((x) => attentionForwardCpu(x, shape).out, qkv, w);
    assertClose(attentionBackwardCpu(w, qkv, shape), want, 1e-6, `dqkv ${name(shape)}`);
  }
});

Deno.test("grouped-query attention equals multi-head attention with each key/value head repeated", () => {
  const [B, T, C, NH, NKV] = [2, 6, 24, 6, 2];
  const hs = C / NH, G = NH / NKV, W = width(C, NH, NKV);
  const qkv = rand(B * T * W, 17, 1.2);
  // The same inputs with key/value head g copied to heads g·G .. g·G+G-1.
  const repeated = new Float64Array(B * T * 3 * C);
  for (let r = 0; r < B * T; r++) {
    for (let h = 0; h < NH; h++) {
      const g = Math.floor(h / G);
      for (let d = 0; d < hs; d++) {
        repeated[r * 3 * C + h * hs + d] = qkv[r * W + h * hs + d];
        repeated[r * 3 * C + C + h * hs + d] = qkv[r * W + (NH + g) * hs + d];
        repeated[r * 3 * C + 2 * C + h * hs + d] = qkv[r * W + (NH + NKV + g) * hs + d];
      }
    }
  }
  const grouped = { B, T, C, NH, NKV }, full = { B, T, C, NH };
  assertClose(attentionForwardCpu(qkv, grouped).out, attentionForwardCpu(repeated, full).out, 1e-12, "out");
  const dout = rand(B * T * C, 18);
  const dGrouped = attentionBackwardCpu(dout, qkv, grouped);
  const dFull = attentionBackwardCpu(dout, repeated, full);
  // A shared head's gradient is the sum over the heads it was copied to.
  const summed = new Float64Array(B * T * W);
  for (let r = 0; r < B * T; r++) {
    for (let h = 0; h < NH; h++) {
      const g = Math.floor(h / G);
      for (let d = 0; d < hs; d++) {
        summed[r * W + h * hs + d] = dFull[r * 3 * C + h * hs + d];
        summed[r * W + (NH + g) * hs + d] += dFull[r * 3 * C + C + h * hs + d];
        summed[r * W + (NH + NKV + g) * hs + d] += dFull[r * 3 * C + 2 * C + h * hs + d];
      }
    }
  }
  assertClose(dGrouped, summed, 1e-12, "dqkv");
});

Deno.test("attention CPU reference: rows of att sum to one, zero outside the causal window, lse consistent", () => {
  const qkv = rand(5 * 12, 8, 2);
  // [window, scale, first key row i sees]: none and 1/√hs; the last 2 positions and scale 0.3.
  for (
    const [window, scale, first] of [[0, 1 / Math.sqrt(2), () => 0], [2, 0.3, (i: number) => i - 1]] as const
  ) {
    const shape = { B: 1, T: 5, C: 4, NH: 2, window, scale: window ? scale : undefined };
    const { att, lse } = attentionForwardCpu(qkv, shape);
    for (let h = 0; h < 2; h++) {
      for (let i = 0; i < 5; i++) {
        const row = att.subarray((h * 5 + i) * 5, (h * 5 + i + 1) * 5);
        assertClose([row.reduce((a, b) => a + b, 0)], [1], 1e-12, `row sum h=${h} i=${i}`);
        const j0 = Math.max(0, first(i));
        for (let j = 0; j < 5; j++) {
          assert.equal(row[j] > 0, j >= j0 && j <= i, `window=${window} i=${i} j=${j}`);
        }
        // P_ij0 = exp(scale·q_i·k_j0 − lse_i)
        let s = 0;
        for (let d = 0; d < 2; d++) s += qkv[i * 12 + h * 2 + d] * qkv[j0 * 12 + 4 + h * 2 + d];
        assertClose([row[j0]], [Math.exp(s * scale - lse[h * 5 + i])], 1e-12, `lse h=${h} i=${i}`);
      }
    }
  }
  // A window no shorter than T masks nothing.
  const shape = { B: 1, T: 5, C: 4, NH: 2 };
  assert.deepEqual(attentionForwardCpu(qkv, { ...shape, window: 5 }), attentionForwardCpu(qkv, shape));
});

Deno.test("attention forward is causal and windowed: token t's k and v change exactly the outputs t .. t+window-1", async () => {
  const gpu = await getGpu();
  const [B, T, C, NH] = [1, 70, 12, 3];
  // [t, window]: no window; a window of 4 crossing the CPU split's row blocks, from t = 30.
  for (const [t, window] of [[66, 0], [30, 4]]) {
    const shape = { B, T, C, NH, window };
    const qkv = rand(B * T * 3 * C, 17, 1);
    const changed = qkv.slice();
    for (let c = C; c < 3 * C; c++) changed[t * 3 * C + c] += 1;
    const run = async (data: Float32Array): Promise<Float32Array> => {
      const out = createView(gpu, B * T * C);
      const rec = new Recorder(gpu);
      attentionForward(rec, { out, lse: createView(gpu, B * NH * T), qkv: upload(gpu, data), ...shape });
      rec.submit();
      return await read(gpu, out);
    };
    const a = await run(qkv);
    const b = await run(changed);
    const end = window ? t + window : T;
    for (let i = 0; i < T; i++) {
      const [x, y] = [a, b].map((o) => o.subarray(i * C, (i + 1) * C));
      if (i >= t && i < end) assert.notDeepEqual(y, x, `window=${window} row ${i}`);
      else assert.deepEqual(y, x, `window=${window} row ${i}`);
    }
  }
});

Deno.test("attention rejects bad calls before dispatching", async () => {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  const v = (n: number) => createView(gpu, n);
  const [B, T, C, NH] = [1, 4, 6, 2];
  const ok = { out: v(B * T * C), lse: v(B * NH * T), qkv: v(B * T * 3 * C), B, T, C, NH };
  assertThrows(
    () => attentionForward(rec, { ...ok, qkv: v(71) }),
    /attention forward qkv \(B=1, T=4, C=6, NH=2\): needs 72 elements, buffer has 71/,
  );
  assertThrows(() => attentionForward(rec, { ...ok, lse: v(7) }), /lse .*needs 8 elements/);
  assertThrows(() => attentionForward(rec, { ...ok, C: 7 }), /C=7 is not a multiple of NH=2/);
  assertThrows(
    () => attentionForward(rec, { ...ok, split: { ...GPU_SPLIT, step: 0 } }),
    /wg and step must be positive integers/,
  );
  assertThrows(() => attentionForward(rec, { ...ok, C: 514 }), /head size C\/NH=257 exceeds 256/);
  assertThrows(
    () => attentionForward(rec, { ...ok, window: 1.5 }),
    /window=1.5 is not a non-negative integer/,
  );
  assertThrows(() => attentionForward(rec, { ...ok, scale: 0 }), /scale=0 is not a positive number/);
  assertThrows(() => attentionForward(rec, { ...ok, T: 0 }), /T=0 is not a positive integer/);
  assertThrows(() => attentionForward(rec, { ...ok, NH: 3, C: 6, NKV: 2 }), /NKV=2 does not divide NH=3/);
  assertThrows(
    () => attentionForward(rec, { ...ok, NKV: 1, qkv: v(47) }),
    /attention forward qkv \(B=1, T=4, C=6, NH=2, NKV=1\): needs 48 elements, buffer has 47/,
  );
  const back = {
    ...ok,
    dqkv: v(B * T * 3 * C),
    dout: v(B * T * C),
    delta: createAttentionScratch(gpu, { B, T, NH }),
  };
  assertThrows(() => attentionBackward(rec, { ...back, delta: v(7) }), /delta .*needs 8 elements/);
  assertThrows(() => attentionBackward(rec, { ...back, dqkv: v(71) }), /dqkv .*needs 72 elements/);
  assertThrows(() => attentionBackward(rec, { ...back, NH: 4 }), /C=6 is not a multiple of NH=4/);
  assertThrows(() => attentionBackward(rec, { ...back, C: 514 }), /head size C\/NH=257 exceeds 256/);
  assertThrows(
    () => attentionBackward(rec, { ...back, window: -1 }),
    /window=-1 is not a non-negative integer/,
  );
  assertThrows(() => attentionBackward(rec, { ...back, scale: NaN }), /scale=NaN is not a positive number/);
  assertThrows(
    () => attentionBackward(rec, { ...back, operands: "texture" }),
    /cannot read texture operands/,
  );
  assert.equal(rec.length, 0, "a rejected call recorded a dispatch");
});
