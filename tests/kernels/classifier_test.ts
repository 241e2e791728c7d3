import assert from "node:assert/strict";
import { assertThrows } from "../_assert.ts";
import {
  checkTargets,
  classifierBackward,
  classifierBackwardCpu,
  classifierChunk,
  classifierForward,
  classifierForwardCpu,
  createClassifierScratch,
  createView,
  getGpu,
  IGNORE_INDEX,
  lossMean,
  lossMeanCpu,
  read,
  Recorder,
  upload,
} from "@inheritune/kernels";
import { assertClose, numericGrad, rand } from "../_util.ts";

function targetsFor(BT: number, V: number, seed: number, ignore: number[] = []): Uint32Array {
  const t = Uint32Array.from(rand(BT, seed), (x) => Math.floor(((x + 1) / 2) * V) % V);
  for (const i of ignore) t[i] = IGNORE_INDEX;
  return t;
}

// [BT, C, V, maxChunk, positions with IGNORE_INDEX]
const CASES: [number, number, number, number, number[]][] = [
  [1, 5, 67, 64, []],
  [7, 5, 67, 64, [3]],
  [7, 32, 300, 64, [0, 6]],
  [1, 32, 300, 128, []],
  [7, 32, 300, 1024, [2]],
  [7, 64, 300, 1024, [1]], // chunks of 256 and 44 rows: texture operands on a CPU adapter, then buffers
  [7, 32, 256, 1024, [2]], // one chunk: the backward pass reuses the forward's logits
  [5, 8, 63, 64, []], // one chunk of rows that are not a multiple of 4
];

// Softmax and dlogits read the logits from the buffer or from a texture (rows of a multiple of 4);
// the scratch keeps every chunk's logits for the backward pass, or only one chunk's.
for (const [BT, C, V, maxChunk, ignore] of CASES) {
  for (const keepLogits of [false, true]) {
    classifierCase({ BT, C, V, maxChunk, ignore, operands: "buffer", keepLogits });
  }
  if (V % 4 === 0) classifierCase({ BT, C, V, maxChunk, ignore, operands: "texture" });
}

function classifierCase(
  { BT, C, V, maxChunk, ignore, operands, keepLogits }: {
    BT: number;
    C: number;
    V: number;
    maxChunk: number;
    ignore: number[];
    operands: "buffer" | "texture";
    keepLogits?: boolean;
  },
): void {
  const keep = keepLogits === undefined ? "" : keepLogits ? " keeping logits" : " recomputing logits";
  Deno.test(`classifier forward and backward match CPU: BT=${BT} C=${C} V=${V} chunk≤${maxChunk} ignore=${ignore.length} ${operands}${keep}`, async () => {
    const gpu = await getGpu();
    const x = rand(BT * C, BT * 31 + C, 1);
    const w = rand(V * C, V + C, 1);
    const targets = targetsFor(BT, V, BT + V, ignore);
    const dlossScale = 1 / BT;
    const scratch = createClassifierScratch(gpu, { BT, C, V, maxChunk, keepLogits });
    assert.ok(scratch.chunk <= maxChunk && scratch.chunk % 64 === 0, `chunk ${scratch.chunk}`);
    if (keepLogits !== undefined) assert.equal(scratch.keep, keepLogits);
    const inp = upload(gpu, x);
    const wte = upload(gpu, w);
    const tg = upload(gpu, targets);
    const losses = createView(gpu, BT);
    const lse = createView(gpu, BT);
    const dinp0 = rand(BT * C, 3);
    const dwte0 = rand(V * C, 4);
    const dinp = upload(gpu, dinp0);
    const dwte = upload(gpu, dwte0);
    const rec = new Recorder(gpu);
    // One object for both passes: the backward reads the forward's inputs and its lse.
    const pass = { losses, lse, inp, wte, targets: tg, scratch, BT, C, V, operands, dinp, dwte, dlossScale };
    classifierForward(rec, pass);
    classifierBackward(rec, pass);
    rec.submit();
    const fwd = classifierForwardCpu(x, w, targets, { BT, C, V });
    const bwd = classifierBackwardCpu(x, w, targets, { BT, C, V, dlossScale });
    const gotLosses = await read(gpu, losses);
    assertClose(gotLosses, fwd.losses, 1e-4, "losses");
    assertClose(await read(gpu, lse), fwd.lse, 1e-4, "lse");
    assertClose(await read(gpu, dinp), bwd.dinp.map((d, i) => d + dinp0[i]), 1e-4, "dinp (accumulated)");
    assertClose(await read(gpu, dwte), bwd.dwte.map((d, i) => d + dwte0[i]), 1e-4, "dwte (accumulated)");
    for (const i of ignore) assert.equal(gotLosses[i], 0, `ignored position ${i} has loss 0`);
  });
}

Deno.test("classifier CPU backward matches finite differences of the CPU forward", () => {
  const [BT, C, V] = [3, 4, 9];
  const x = rand(BT * C, 1);
  const w = rand(V * C, 2);
  const targets = targetsFor(BT, V, 3, [1]);
  const dlossScale = 0.37;
  const { dinp, dwte } = classifierBackwardCpu(x, w, targets, { BT, C, V, dlossScale });
  const weights = new Float64Array(BT).fill(dlossScale);
  const lossOf = (xx: ArrayLike<number>, ww: ArrayLike<number>) =>
    classifierForwardCpu(xx, ww, targets, { BT, C, V }).losses;
  assertClose(dinp, numericGrad((v) => lossOf(v, w), x, weights), 1e-6, "dinp");
  assertClose(dwte, numericGrad((v) => lossOf(x, v), w, weights), 1e-6, "dwte");
  assert.ok(dinp.slice(C, 2 * C).every((d) => d === 0), "an ignored position has no gradient");
});

Deno.test("classifier forward of a uniform prediction gives log V", async () => {
  const gpu = await getGpu();
  const [BT, C, V] = [2, 3, 130];
  const scratch = createClassifierScratch(gpu, { BT, C, V, maxChunk: 64 });
  const losses = createView(gpu, BT);
  const rec = new Recorder(gpu);
  classifierForward(rec, {
    losses,
    lse: createView(gpu, BT),
    inp: createView(gpu, BT * C),
    wte: upload(gpu, rand(V * C, 5)),
    targets: upload(gpu, new Uint32Array([0, V - 1])),
    scratch,
    BT,
    C,
    V,
  });
  rec.submit();
  assertClose(await read(gpu, losses), [Math.log(V), Math.log(V)], 1e-6, "losses");
});

Deno.test("loss mean averages the losses in one workgroup", async () => {
  const gpu = await getGpu();
  for (const n of [1, 7, 1000]) {
    const losses = rand(n, n, 5).map((x) => x + 5);
    const out = createView(gpu, 1);
    const rec = new Recorder(gpu);
    lossMean(rec, { out, losses: upload(gpu, losses), n });
    rec.submit();
    assertClose(await read(gpu, out), [lossMeanCpu(losses)], 1e-6, `mean of ${n}`);
  }
});

Deno.test("classifier marks a target outside the vocabulary: NaN on the GPU, an error on the host", async () => {
  const gpu = await getGpu();
  const [BT, C, V] = [3, 5, 67];
  const bad = new Uint32Array([1, V, IGNORE_INDEX - 1]);
  assertThrows(() => checkTargets(bad, V), /target 67 at position 1 is outside the vocabulary of 67/);
  assertThrows(() => classifierForwardCpu(rand(BT * C, 1), rand(V * C, 2), bad, { BT, C, V }), /outside/);
  checkTargets([0, V - 1, IGNORE_INDEX], V);
  const losses = createView(gpu, BT);
  const rec = new Recorder(gpu);
  classifierForward(rec, {
    losses,
    lse: createView(gpu, BT),
    inp: upload(gpu, rand(BT * C, 1)),
    wte: upload(gpu, rand(V * C, 2)),
    targets: upload(gpu, bad),
    scratch: createClassifierScratch(gpu, { BT, C, V, maxChunk: 64 }),
    BT,
    C,
    V,
  });
  rec.submit();
  const got = await read(gpu, losses);
  assert.ok(Number.isFinite(got[0]) && Number.isNaN(got[1]) && Number.isNaN(got[2]), `losses ${got}`);
});

Deno.test("classifier rejects buffers too small and a mismatched scratch before dispatching", async () => {
  const gpu = await getGpu();
  const [BT, C, V] = [4, 5, 67];
  const scratch = createClassifierScratch(gpu, { BT, C, V, maxChunk: 64 });
  const ok = {
    losses: createView(gpu, BT),
    lse: createView(gpu, BT),
    inp: createView(gpu, BT * C),
    wte: createView(gpu, V * C),
    targets: createView(gpu, BT),
    scratch,
    BT,
    C,
    V,
  };
  const rec = new Recorder(gpu);
  assertThrows(
    () => classifierForward(rec, { ...ok, wte: createView(gpu, V * C - 1) }),
    /classifier forward wte \(V=67, C=5\): needs 335 elements, buffer has 334/,
  );
  assertThrows(() => classifierForward(rec, { ...ok, losses: createView(gpu, BT - 1) }), /losses/);
  assertThrows(() => classifierForward(rec, { ...ok, targets: createView(gpu, 1) }), /targets/);
  assertThrows(() => classifierForward(rec, { ...ok, V: 68 }), /scratch made for BT=4, C=5, V=67/);
  const back = {
    ...ok,
    dinp: createView(gpu, BT * C),
    dwte: createView(gpu, V * C),
    dlossScale: 0.25,
  };
  assertThrows(() => classifierBackward(rec, { ...back, dwte: createView(gpu, 10) }), /dwte/);
  assertThrows(() => classifierBackward(rec, { ...back, lse: createView(gpu, 1) }), /lse/);
  assertThrows(() => classifierBackward(rec, { ...back, dlossScale: NaN }), /dlossScale/);
  assertThrows(() => lossMean(rec, { out: createView(gpu, 1), losses: createView(gpu, 3), n: 4 }), /needs 4/);
  assertThrows(() => createClassifierScratch(gpu, { BT, C, V, maxChunk: 63 }), /no vocabulary chunk/);
  assert.equal(rec.length, 0, "a rejected call recorded a dispatch");
});

Deno.test("classifier chunk for GPT-2 124M fits the binding limit with aligned offsets", () => {
  const [BT, C, V] = [4096, 768, 50257];
  for (const binding of [128 * 2 ** 20, 64 * 2 ** 20]) {
    for (const align of [256, 32]) {
      const limits = {
        maxStorageBufferBindingSize: binding,
        maxBufferSize: 2 ** 31 - 1,
        minStorageBufferOffsetAlignment: align,
      };
      const Vc = classifierChunk(limits, { BT, C, V });
      assert.equal(Vc % 64, 0, `Vc ${Vc} is a multiple of 64`);
      assert.ok(BT * Vc * 4 <= binding, `logits chunk ${BT * Vc * 4} bytes within ${binding}`);
      assert.ok(Vc * C * 4 <= binding, `wte chunk ${Vc * C * 4} bytes within ${binding}`);
      const chunks = Math.ceil(V / Vc);
      assert.ok(Vc * chunks >= V && Vc * (chunks - 1) < V, "chunks cover V");
      for (let j = 0; j < chunks; j++) assert.equal((j * Vc * C * 4) % align, 0, `chunk ${j} offset aligned`);
      // Fewest chunks that fit: one fewer would need a chunk above the binding limit.
      assert.ok(BT * Math.ceil(V / (chunks - 1)) * 4 > binding, "no fewer chunks fit");
    }
  }
  const h100 = {
    maxStorageBufferBindingSize: 128 * 2 ** 20,
    maxBufferSize: 2 ** 31,
    minStorageBufferOffsetAlignment: 256,
  };
  assert.equal(classifierChunk(h100, { BT, C, V }), 7232, "7 balanced chunks of 7232 rows");
  assert.equal(classifierChunk(h100, { BT: 1, C: 5, V: 67, maxChunk: 64 }), 64);
  assertThrows(() => classifierChunk(h100, { BT: 2 ** 20, C, V }), /no vocabulary chunk of 64 rows fits/);
});

Deno.test("classifier chunks hold at most a texture's rows on a CPU adapter, so they read texture operands", async () => {
  const gpu = await getGpu();
  const max = gpu.limits.maxTextureDimension2D;
  const scratch = createClassifierScratch(gpu, { BT: 2, C: 8, V: 3 * max + 17 });
  assert.ok(!gpu.isFallback || scratch.chunk <= max, `chunk ${scratch.chunk} on ${gpu.description}`);
  assert.equal(scratch.chunk, gpu.isFallback ? Math.ceil((3 * max + 17) / 4 / 64) * 64 : 3 * max + 64);
  scratch.logits.buffer.destroy();
  scratch.state.buffer.destroy();
});

Deno.test("the classifier scratch keeps every chunk's logits when they fit one binding", async () => {
  const gpu = await getGpu();
  const small = createClassifierScratch(gpu, { BT: 3, C: 8, V: 300, maxChunk: 64 });
  assert.ok(small.keep);
  assert.equal(small.logits.length, 3 * 300);
  const V = gpu.limits.maxStorageBufferBindingSize / 4 + 1;
  const large = createClassifierScratch(gpu, { BT: 1, C: 1, V });
  assert.ok(!large.keep, `logits of ${V} floats exceed one binding`);
  assert.equal(large.logits.length, large.chunk);
  for (const s of [small, large]) {
    s.logits.buffer.destroy();
    s.state.buffer.destroy();
  }
});
