import assert from "node:assert/strict";
import { assertThrows } from "../_assert.ts";
import {
  classifierBackward,
  classifierBackwardCpu,
  classifierForward,
  classifierForwardCpu,
  createClassifierScratch,
  createView,
  getGpu,
  IGNORE_INDEX,
  read,
  Recorder,
  softcapBackwardCpu,
  softcapForward,
  softcapForwardCpu,
  upload,
} from "@inheritune/kernels";
import { assertClose, numericGrad, rand } from "../_util.ts";

Deno.test("softcap forward caps in place and matches CPU, f32 and vec4, finite for huge logits", async () => {
  const gpu = await getGpu();
  for (const n of [1, 11, 256, 1001]) {
    const x = rand(n, n, 60);
    x[0] = 1e30; // far past tanh's range: exactly the cap
    if (n > 1) x[1] = -1e30;
    const logits = upload(gpu, x);
    const rec = new Recorder(gpu);
    softcapForward(rec, { logits, n, cap: 30 });
    rec.submit();
    const got = await read(gpu, logits);
    assertClose(got, softcapForwardCpu(x, 30), 1e-4, `softcap n=${n}`);
    assert.equal(got[0], 30);
  }
});

Deno.test("softcap backward CPU reference (from the capped logits) matches finite differences", () => {
  const x = rand(40, 1, 40); // up to 2.7 c: near saturation, where finite differences still resolve dx
  const dy = rand(40, 2);
  const y = softcapForwardCpu(x, 15);
  // A step of 1e-5: the loss sums 40 outputs of ~15, whose rounding a step of 1e-6 magnifies to 7e-9.
  assertClose(
    softcapBackwardCpu(y, { dout: dy, cap: 15 }),
    numericGrad((v) => softcapForwardCpu(v, 15), x, dy, 1e-5),
    1e-6,
    "dx",
  );
});

// [BT, C, V, maxChunk, ignored positions]: one chunk and several, f32 and vec4 dlogits, and rows
// of 64 floats (texture operands on a CPU adapter).
const CASES: [number, number, number, number, number[]][] = [
  [3, 5, 67, 64, [1]],
  [5, 64, 300, 1024, [0]],
];

// Logits kept from the forward pass (capped there) or recomputed and capped again in the backward
// pass, read from buffers or from texture copies (the default on a CPU adapter).
const VARIANTS: { keepLogits: boolean; operands?: "buffer" }[] = [
  { keepLogits: true },
  { keepLogits: false },
  { keepLogits: false, operands: "buffer" },
];

for (const [BT, C, V, maxChunk, ignore] of CASES) {
  for (const { keepLogits, operands } of VARIANTS) {
    const how = `${keepLogits ? "keeping" : "recomputing"} logits${operands ? `, ${operands} operands` : ""}`;
    Deno.test(`classifier with a logit soft-cap matches CPU: BT=${BT} C=${C} V=${V} chunk≤${maxChunk}, ${how}`, async () => {
      const gpu = await getGpu();
      // Logits of a few units, so the cap of 3 bends them without saturating most: where 1 - tanh²
      // falls below f32's resolution, PyTorch's f32 gradient and this one are both noise.
      const scale = C < 64 ? 2 : 1;
      const x = rand(BT * C, BT + C, scale);
      const w = rand(V * C, V, scale);
      const targets = Uint32Array.from(
        { length: BT },
        (_, i) => (ignore.includes(i) ? IGNORE_INDEX : (i * 37) % V),
      );
      const [dlossScale, softcap] = [1 / BT, 3];
      const scratch = createClassifierScratch(gpu, { BT, C, V, maxChunk, keepLogits });
      const [inp, wte, tg] = [upload(gpu, x), upload(gpu, w), upload(gpu, targets)];
      const losses = createView(gpu, BT), lse = createView(gpu, BT);
      const dinp = createView(gpu, BT * C), dwte = createView(gpu, V * C);
      const rec = new Recorder(gpu);
      // One object for both passes: the backward reads the forward's inputs and its lse.
      const pass = { losses, lse, inp, wte, targets: tg, scratch, BT, C, V, softcap, operands, dinp, dwte };
      classifierForward(rec, pass);
      classifierBackward(rec, { ...pass, dlossScale });
      rec.submit();
      const fwd = classifierForwardCpu(x, w, targets, { BT, C, V, softcap });
      const bwd = classifierBackwardCpu(x, w, targets, { BT, C, V, dlossScale, softcap });
      assertClose(await read(gpu, losses), fwd.losses, 1e-4, "losses");
      assertClose(await read(gpu, lse), fwd.lse, 1e-4, "lse");
      assertClose(await read(gpu, dinp), bwd.dinp, 1e-4, "dinp");
      assertClose(await read(gpu, dwte), bwd.dwte, 1e-4, "dwte");
      const plain = classifierForwardCpu(x, w, targets, { BT, C, V });
      assert.ok(Math.max(...plain.logits.map(Math.abs)) > 2 * softcap, "the cap bends some logit");
    });
  }
}

Deno.test("classifier CPU backward with a soft-cap matches finite differences of the CPU forward", () => {
  const [BT, C, V, softcap] = [3, 4, 9, 2];
  const x = rand(BT * C, 1, 2);
  const w = rand(V * C, 2, 2);
  const targets = new Uint32Array([4, IGNORE_INDEX, 8]);
  const dlossScale = 0.37;
  const { dinp, dwte } = classifierBackwardCpu(x, w, targets, { BT, C, V, dlossScale, softcap });
  const weights = new Float64Array(BT).fill(dlossScale);
  const lossOf = (xx: ArrayLike<number>, ww: ArrayLike<number>) =>
    classifierForwardCpu(xx, ww, targets, { BT, C, V, softcap }).losses;
  assertClose(dinp, numericGrad((v) => lossOf(v, w), x, weights), 1e-6, "dinp");
  assertClose(dwte, numericGrad((v) => lossOf(x, v), w, weights), 1e-6, "dwte");
});

Deno.test("softcap rejects a cap that is not a positive number before recording", async () => {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  const [BT, C, V] = [1, 4, 64];
  const v = (n: number) => createView(gpu, n);
  assertThrows(
    () => softcapForward(rec, { logits: v(4), n: 4, cap: 0 }),
    /softcap: softcap 0 is not a positive number/,
  );
  const args = {
    inp: v(BT * C),
    wte: v(V * C),
    targets: v(BT),
    scratch: createClassifierScratch(gpu, { BT, C, V }),
  };
  assertThrows(
    () => classifierForward(rec, { ...args, losses: v(BT), lse: v(BT), BT, C, V, softcap: NaN }),
    /classifier forward: softcap NaN is not a positive number/,
  );
  assertThrows(
    () =>
      classifierBackward(rec, {
        ...args,
        dinp: v(BT * C),
        dwte: v(V * C),
        lse: v(BT),
        BT,
        C,
        V,
        dlossScale: 1,
        softcap: -1,
      }),
    /classifier backward: softcap -1 is not a positive number/,
  );
  assert.equal(rec.length, 0, "a rejected call recorded a dispatch");
});
