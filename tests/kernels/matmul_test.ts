import assert from "node:assert/strict";
import { assertThrows } from "../_assert.ts";
import {
  biasBackward,
  biasBackwardCpu,
  createView,
  getGpu,
  type Gpu,
  linearBackward,
  matmul,
  type MatmulBlocking,
  matmulBlocking,
  matmulCpu,
  matmulOperands,
  matmulSplitK,
  type Operands,
  read,
  Recorder,
  textureOperandsFit,
  upload,
  type View,
  write,
} from "@inheritune/kernels";
import { assertClose, numericGrad, rand } from "../_util.ts";

const SHAPES: [number, number, number][] = [[7, 13, 33], [1, 1, 1], [64, 64, 64], [65, 130, 17], [
  3,
  200,
  70,
]];

/**
 * Runs `C += op(A)·op(B) + bias` on random inputs seeded by `seed` and compares it with the CPU
 * reference.
 */
async function checkMatmul(
  gpu: Gpu,
  shape: {
    M: number;
    N: number;
    K: number;
    transA: boolean;
    transB: boolean;
    blocking?: MatmulBlocking;
    operands?: Operands;
  },
  seed: number,
): Promise<void> {
  const { M, N, K, transA, transB } = shape;
  const a = rand(M * K, M * 7 + K + seed, 1);
  const b = rand(K * N, N * 3 + K + seed, 1);
  const bias = rand(N, 5 + seed, 1);
  const c0 = rand(M * N, 9 + seed, 1);
  const out = upload(gpu, c0);
  const rec = new Recorder(gpu);
  matmul(rec, {
    out,
    a: upload(gpu, a),
    b: upload(gpu, b),
    bias: upload(gpu, bias),
    ...shape,
    accumulate: true,
  });
  rec.submit();
  const want = matmulCpu(a, b, { M, N, K, transA, transB, bias, c: c0 });
  assertClose(await read(gpu, out), want, 1e-4, `matmul ${M}x${N}x${K} tA=${transA} tB=${transB}`);
}

for (const transA of [false, true]) {
  for (const transB of [false, true]) {
    Deno.test(`matmul transA=${transA} transB=${transB} matches CPU on odd shapes`, async () => {
      const gpu = await getGpu();
      for (const [M, N, K] of SHAPES) await checkMatmul(gpu, { M, N, K, transA, transB }, 0);
    });
  }
}

Deno.test("linear backward matches the CPU products and finite differences", async () => {
  const gpu = await getGpu();
  const [M, K, N] = [5, 7, 3];
  const x = rand(M * K, 1);
  const w = rand(K * N, 2);
  const dy = rand(M * N, 3);
  const dinp = createView(gpu, M * K);
  const dweight = createView(gpu, K * N);
  const dbias = createView(gpu, N);
  const rec = new Recorder(gpu);
  linearBackward(rec, {
    dinp,
    dweight,
    dbias,
    dout: upload(gpu, dy),
    inp: upload(gpu, x),
    weight: upload(gpu, w),
    M,
    K,
    N,
  });
  rec.submit();
  const fwd = (xx: ArrayLike<number>, ww: ArrayLike<number>, bb: ArrayLike<number>) =>
    matmulCpu(xx, ww, { M, N, K, bias: bb });
  const b0 = new Float64Array(N);
  assertClose(await read(gpu, dinp), numericGrad((v) => fwd(v, w, b0), x, dy), 1e-4, "dX");
  assertClose(await read(gpu, dweight), numericGrad((v) => fwd(x, v, b0), w, dy), 1e-4, "dW");
  assertClose(await read(gpu, dbias), numericGrad((v) => fwd(x, w, v), b0, dy), 1e-4, "db");
  assertClose(biasBackwardCpu(dy, M, N), numericGrad((v) => fwd(x, w, v), b0, dy), 1e-6, "db CPU");
});

Deno.test("bias backward accumulates column sums with both work splits and texture operands, and rejects bad calls", async () => {
  const gpu = await getGpu();
  const cases = [
    ...[{ cols: 32, lanes: 8 }, { cols: 8, lanes: 32 }].flatMap((split) =>
      [[300, 5], [37, 70], [37, 128]].map(([M, N]) => ({ M, N, split, operands: "buffer" as const }))
    ),
    ...[[37, 128], [300, 64]].map(([M, N]) => ({ M, N, split: undefined, operands: "texture" as const })),
  ];
  for (const { M, N, split, operands } of cases) {
    const dy = rand(M * N, 4 + N);
    const dbias = upload(gpu, Float32Array.from({ length: N }, (_, i) => i + 1));
    const rec = new Recorder(gpu);
    biasBackward(rec, { dbias, dout: upload(gpu, dy), M, N, split, operands });
    rec.submit();
    const want = biasBackwardCpu(dy, M, N).map((v, i) => v + i + 1);
    const how = split ? `split ${split.cols}x${split.lanes}` : operands;
    // The texture kernel adds each column's rows in one chain (no lanes), so f32 rounding grows
    // with M: 5e-5 at M=300 here; the lanes of the buffer kernel stay within 1e-5.
    assertClose(
      await read(gpu, dbias),
      want,
      operands === "texture" ? 1e-4 : 1e-5,
      `dbias M=${M} N=${N} ${how}`,
    );
  }
  const v = createView(gpu, 8);
  assertThrows(
    () => biasBackward(new Recorder(gpu), { dbias: v, dout: v, M: 1, N: 8, operands: "texture" }),
    /cannot read texture operands/,
  );
  for (const split of [{ cols: 64, lanes: 64 }, { cols: 0, lanes: 8 }]) {
    assertThrows(
      () => biasBackward(new Recorder(gpu), { dbias: v, dout: v, M: 1, N: 8, split }),
      /column split/,
    );
  }
});

Deno.test("matmul rejects buffers too small for the shape before dispatching", async () => {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  assertThrows(
    () =>
      matmul(rec, {
        out: createView(gpu, 6),
        a: createView(gpu, 6),
        b: createView(gpu, 5),
        M: 2,
        N: 3,
        K: 3,
      }),
    /matmul b \(K=3, N=3\): needs 9 elements, buffer has 5/,
  );
  assertThrows(
    () =>
      matmul(rec, {
        out: createView(gpu, 1),
        a: createView(gpu, 1),
        b: createView(gpu, 1),
        M: 1.5,
        N: 1,
        K: 1,
      }),
    /invalid/,
  );
  if (rec.length !== 0) throw new Error("a rejected call recorded a dispatch");
});

// Dimensions that are multiples of 4 take the vec4 loads; mixed ones take vec4 on one operand only.
const VEC_SHAPES: [number, number, number][] = [[12, 20, 8], [4, 8, 36], [20, 7, 12], [9, 16, 5], [
  33,
  36,
  40,
], [7, 13, 33]];

/** Blockings the adapter may pick, with the shapes each is checked on (big blocks compile slowly on llvmpipe). */
const BLOCKINGS: [MatmulBlocking, [number, number, number][]][] = [
  [{ rows: 16, cols: 16, workgroup: [8, 1] }, [[12, 20, 8]]],
  [{ rows: 8, cols: 8, workgroup: [16, 16] }, VEC_SHAPES],
  [{ rows: 4, cols: 8, workgroup: [4, 2] }, VEC_SHAPES],
  [{ rows: 8, cols: 8, workgroup: [16, 16], tileK: 8 }, VEC_SHAPES],
  [{ rows: 8, cols: 8, workgroup: [16, 16], tileK: 8, prefetch: true }, VEC_SHAPES],
  [{ rows: 8, cols: 8, workgroup: [16, 16], tileK: 16, prefetch: true }, [[33, 36, 40], [9, 16, 5]]],
  [{ rows: 4, cols: 4, workgroup: [16, 16], tileK: 16, prefetch: true }, [[65, 130, 17], [9, 16, 5]]],
  [{ rows: 4, cols: 8, workgroup: [4, 8], tileK: 16 }, [...VEC_SHAPES, [65, 130, 17]]],
  [{ rows: 4, cols: 8, workgroup: [4, 8], tileK: 4, splitK: 3 }, [...VEC_SHAPES, [65, 130, 17]]],
  [{ rows: 4, cols: 8, workgroup: [4, 8], tileK: 16, splitK: 2, prefetch: true }, [...VEC_SHAPES, [
    65,
    130,
    17,
  ]]],
];

function describeBlocking(b: MatmulBlocking): string {
  const parts = [`${b.rows}x${b.cols} blocks`];
  if (b.tileK) parts.push(`${b.tileK}-deep workgroup tiles`);
  if (b.splitK) parts.push(`K in ${b.splitK} slices`);
  if (b.prefetch) parts.push("prefetching");
  return parts.join(", ");
}

for (const [blocking, shapes] of BLOCKINGS) {
  Deno.test(
    `matmul with ${describeBlocking(blocking)} matches CPU for all transposes on vec4 and odd shapes`,
    async () => {
      const gpu = await getGpu();
      for (const [M, N, K] of shapes) {
        for (const transA of [false, true]) {
          for (const transB of [false, true]) {
            await checkMatmul(gpu, { M, N, K, transA, transB, blocking }, 1);
          }
        }
      }
    },
  );
}

/**
 * Shapes for texture operands: stored rows of 64 floats (copied by the queue), M and N cut
 * mid-block, short K; then rows of a multiple of 4 floats only (copied by a kernel), as a LLaMA's
 * MLP of 172 and its key projection of 32 give.
 */
const TEXTURE_CASES: { M: number; N: number; K: number; transA: boolean; transB: boolean }[] = [
  { M: 40, N: 128, K: 64, transA: false, transB: false },
  { M: 16, N: 64, K: 192, transA: false, transB: false },
  { M: 64, N: 128, K: 40, transA: true, transB: false },
  { M: 128, N: 64, K: 3, transA: true, transB: false },
  { M: 40, N: 36, K: 128, transA: false, transB: true },
  { M: 9, N: 68, K: 64, transA: false, transB: true },
  { M: 37, N: 20, K: 172, transA: false, transB: false },
  { M: 33, N: 172, K: 12, transA: false, transB: false },
  { M: 172, N: 32, K: 29, transA: true, transB: false },
  { M: 36, N: 172, K: 17, transA: true, transB: false },
  { M: 30, N: 32, K: 172, transA: false, transB: true },
  { M: 19, N: 172, K: 32, transA: false, transB: true },
];

Deno.test("matmul with texture operands matches CPU for A·B, Aᵀ·B and A·Bᵀ", async () => {
  const gpu = await getGpu();
  for (const shape of TEXTURE_CASES) await checkMatmul(gpu, { ...shape, operands: "texture" }, 2);
});

Deno.test("matmul picks texture operands on a CPU adapter only where the rows can be copied", async () => {
  const gpu = await getGpu();
  const v = createView(gpu, 256 * 256);
  const fit = (M: number, N: number, K: number, transA = false, transB = false) =>
    textureOperandsFit(gpu, { out: v, a: v, b: v, M, N, K, transA, transB });
  for (const shape of TEXTURE_CASES) {
    if (!fit(shape.M, shape.N, shape.K, shape.transA, shape.transB)) {
      throw new Error(`${JSON.stringify(shape)} should fit`);
    }
  }
  const max = gpu.limits.maxTextureDimension2D;
  for (
    const [M, N, K, tA, tB] of [
      [64, 64, 62, false, false], // A's rows of 62 floats
      [64, 62, 64, false, false], // B's and C's rows of 62
      [62, 64, 64, true, false], // Aᵀ stored with rows of 62
      [64, 64, 64, true, true], // both transposed
      [4 * max, 64, 4 * max, false, false], // more texels in A than a texture holds
    ] as const
  ) {
    if (fit(M, N, K, tA, tB)) throw new Error(`${M}x${N}x${K} tA=${tA} tB=${tB} should not fit`);
  }
  const want = gpu.isFallback ? "texture" : "buffer";
  const got = matmulOperands(gpu, { out: v, a: v, b: v, M: 64, N: 64, K: 64 });
  if (got !== want) throw new Error(`operands ${got} on ${gpu.description}, want ${want}`);
  assertThrows(
    () => matmul(new Recorder(gpu), { out: v, a: v, b: v, M: 8, N: 8, K: 6, operands: "texture" }),
    /cannot read texture operands/,
  );
});

Deno.test("matmul reads and writes views that start inside their buffers", async () => {
  const gpu = await getGpu();
  const skip = gpu.limits.minStorageBufferOffsetAlignment / 4;
  const inside = (data: Float32Array): View => {
    const whole = createView(gpu, skip + data.length + 3);
    const view = { buffer: whole.buffer, offset: skip, length: data.length };
    write(gpu, view, data);
    return view;
  };
  for (
    const [M, N, K, operands] of [[8, 12, 16, "buffer"], [5, 7, 9, "buffer"], [8, 12, 64, "texture"]] as const
  ) {
    const a = rand(M * K, 21);
    const b = rand(K * N, 22);
    const c0 = rand(M * N, 23);
    const out = inside(c0);
    const rec = new Recorder(gpu);
    matmul(rec, { out, a: inside(a), b: inside(b), M, N, K, transB: true, accumulate: true, operands });
    rec.submit();
    const got = await read(gpu, out);
    assertClose(got, matmulCpu(a, b, { M, N, K, transB: true, c: c0 }), 1e-4, `offset views ${M}x${N}x${K}`);
  }
});

Deno.test("matmul default blocking fits the adapter limits", async () => {
  const gpu = await getGpu();
  const { rows, cols, workgroup } = matmulBlocking(gpu);
  if (rows % 4 !== 0 || cols % 4 !== 0) throw new Error(`blocking ${rows}x${cols} not a multiple of 4`);
  if (workgroup[0] * workgroup[1] > gpu.limits.maxComputeInvocationsPerWorkgroup) {
    throw new Error(`workgroup ${workgroup.join("x")} exceeds the adapter limit`);
  }
});

Deno.test("matmul splits K only for products with few output tiles, within one binding", async () => {
  const gpu = await getGpu();
  const blocking: MatmulBlocking = { rows: 8, cols: 8, workgroup: [16, 16], tileK: 8 };
  const split = (M: number, N: number, K: number, b = blocking) =>
    matmulSplitK(gpu, { M, N, K, blocking: b });
  assert.equal(split(16384, 768, 768), 1); // GPT-2 124M forward: 768 tiles
  assert.equal(split(768, 768, 16384), 15); // its attention projection's weight gradient: 36 tiles
  assert.equal(split(1024, 1024, 1024), 4); // 64 tiles, slices of at least 256
  assert.equal(split(768, 768, 200), 1); // too short to split
  assert.equal(split(768, 768, 16384, { ...blocking, tileK: undefined }), 1); // no workgroup tiles
  const fit = Math.floor(gpu.limits.maxStorageBufferBindingSize / (4 * 4096 * 4096));
  assert.equal(
    split(4096, 4096, 1 << 20, { ...blocking, rows: 64, cols: 64 }),
    Math.max(1, Math.min(32, fit)),
  );
});

Deno.test("matmul rejects a blocking that is not a multiple of 4 or exceeds the device limits", async () => {
  const gpu = await getGpu();
  const v = createView(gpu, 4);
  assertThrows(
    () =>
      matmul(new Recorder(gpu), {
        out: v,
        a: v,
        b: v,
        M: 2,
        N: 2,
        K: 2,
        blocking: { rows: 6, cols: 4, workgroup: [8, 1] },
      }),
    /not a multiple of 4/,
  );
  const big = { rows: 8, cols: 8, workgroup: [64, 64] as [number, number] };
  assertThrows(
    () => matmul(new Recorder(gpu), { out: v, a: v, b: v, M: 2, N: 2, K: 2, blocking: big }),
    /exceeds/,
  );
  const deep = { rows: 64, cols: 64, workgroup: [16, 16] as [number, number], tileK: 64 };
  assertThrows(
    () => matmul(new Recorder(gpu), { out: v, a: v, b: v, M: 2, N: 2, K: 2, blocking: deep }),
    /exceeds/,
  );
});

for (const operands of ["buffer", "texture"] as const) {
  Deno.test(`repeated matmul dispatches with ${operands} operands do not grow host memory (Mesa llvmpipe leaked with one variant)`, async () => {
    const gpu = await getGpu();
    const [M, N, K] = [64, 256, 512];
    const rec = new Recorder(gpu);
    matmul(rec, {
      out: createView(gpu, M * N),
      a: createView(gpu, K * M),
      b: createView(gpu, K * N),
      M,
      N,
      K,
      transA: true,
      accumulate: true,
      operands,
    });
    rec.submit();
    await gpu.device.queue.onSubmittedWorkDone();
    const before = Deno.memoryUsage().rss;
    for (let i = 0; i < 40; i++) rec.submit();
    await gpu.device.queue.onSubmittedWorkDone();
    const grown = (Deno.memoryUsage().rss - before) / 2 ** 20;
    // the leaking variant grew ~2 MiB per dispatch here: 80 MiB over these 40
    if (grown > 16) throw new Error(`host memory grew ${grown.toFixed(1)} MiB over 40 dispatches`);
  });
}
