import assert from "node:assert/strict";
import { assertThrows } from "../_assert.ts";
import {
  ADAMW_HYPER_LENGTH,
  adamwCpu,
  adamwUpdate,
  clipScale,
  clipScaleCpu,
  createView,
  getGpu,
  gradNormSquared,
  gradNormSquaredCpu,
  type Operands,
  read,
  Recorder,
  upload,
  write,
  writeAdamwHyper,
} from "@inheritune/kernels";
import { assertClose, rand } from "../_util.ts";

// Sizes around the 256-thread workgroup and the test chunks (several chunks, a partial last); 20000
// takes the two-launch reduction.
const SIZES = [1, 5, 64, 257, 3001, 20000];

Deno.test("grad norm partials and clip scale match CPU, clipping or not", async () => {
  const gpu = await getGpu();
  const host = SIZES.map((n, i) => rand(n, 10 + i, 0.5));
  const grads = host.map((g) => upload(gpu, g));
  const partials = upload(gpu, new Float32Array(SIZES.length + 1).fill(123));
  const wantPartials = gradNormSquaredCpu(host);
  const norm = Math.sqrt(wantPartials.reduce((a, b) => a + b));
  for (const maxChunk of [undefined, 64, 8192]) {
    for (const maxNorm of [norm * 2, norm / 3, 0]) {
      const scale = createView(gpu, 2);
      const rec = new Recorder(gpu);
      gradNormSquared(rec, { partials, grads, maxChunk });
      clipScale(rec, { scale, partials, count: SIZES.length, maxNorm });
      rec.submit();
      const got = await read(gpu, partials);
      assertClose(got.subarray(0, SIZES.length), wantPartials, 1e-5, `partials (maxChunk ${maxChunk})`);
      assert.equal(got[SIZES.length], 123, "a partial beyond the tensors is left alone");
      const want = clipScaleCpu(wantPartials, maxNorm);
      assertClose(await read(gpu, scale), want, 1e-5, `scale and norm (maxNorm ${maxNorm})`);
      assert.equal(want[0] < 1, maxNorm === norm / 3, "only the small maxNorm clips");
    }
  }
});

Deno.test("grad norm partials read through textures match CPU, in one slice or several", async () => {
  const gpu = await getGpu();
  const sizes = [4, 64, 256, 3000, 20000]; // whole vec4s, as textures need
  const host = sizes.map((n, i) => rand(n, 30 + i, 0.5));
  const grads = host.map((g) => upload(gpu, g));
  for (
    const [operands, maxSlice] of [["buffer", undefined], ["texture", undefined], ["texture", 64]] as const
  ) {
    const partials = createView(gpu, sizes.length);
    const rec = new Recorder(gpu);
    gradNormSquared(rec, { partials, grads, operands, maxSlice });
    rec.submit();
    assertClose(
      await read(gpu, partials),
      gradNormSquaredCpu(host),
      1e-5,
      `${operands}, slices of ${maxSlice}`,
    );
  }
});

Deno.test("grad norm writes 0 for an empty tensor", async () => {
  const gpu = await getGpu();
  const partials = upload(gpu, new Float32Array([7, 7]));
  const rec = new Recorder(gpu);
  gradNormSquared(rec, { partials, grads: [createView(gpu, 0), upload(gpu, new Float32Array([3, 4]))] });
  rec.submit();
  assertClose(await read(gpu, partials), [0, 25], 1e-7, "partials");
});

for (const weightDecay of [0, 0.1]) {
  Deno.test(`adamw matches the CPU reference over steps 1 and 2 (weight decay ${weightDecay})`, async () => {
    const gpu = await getGpu();
    const hyper = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8 };
    // 256 and the 64-element chunks of 3001 take the vec4 kernel; 1, 257 and the last chunk the scalar one.
    // Reading through textures needs whole vec4s: 256, and 3000 in slices of 64 and a last of 56.
    const cases: { n: number; maxChunk?: number; operands: Operands; maxSlice?: number }[] = [
      { n: 1, operands: "buffer" },
      { n: 256, operands: "buffer" },
      { n: 257, operands: "buffer" },
      { n: 3001, maxChunk: 64, operands: "buffer" },
      { n: 256, operands: "texture" },
      { n: 3000, operands: "texture", maxSlice: 64 },
    ];
    for (const { n, maxChunk, operands, maxSlice } of cases) {
      const p0 = rand(n, n, 1);
      const g1 = rand(n, n + 1, 0.1);
      const g2 = rand(n, n + 2, 0.1);
      const clip = 0.75;
      const param = upload(gpu, p0);
      const grad = upload(gpu, g1);
      const m = createView(gpu, n);
      const v = createView(gpu, n);
      const hyperView = createView(gpu, ADAMW_HYPER_LENGTH);
      const scale = upload(gpu, new Float32Array([clip, 123]));
      // Recorded once, replayed for both steps with new gradient and settings written in between.
      const rec = new Recorder(gpu);
      adamwUpdate(rec, {
        param,
        grad,
        m,
        v,
        hyper: hyperView,
        scale,
        weightDecay,
        n,
        maxChunk,
        operands,
        maxSlice,
      });
      writeAdamwHyper(gpu, hyperView, { ...hyper, step: 1 });
      rec.submit();
      const s1 = adamwCpu(p0, g1, {
        ...hyper,
        step: 1,
        m: new Float64Array(n),
        v: new Float64Array(n),
        weightDecay,
        scale: clip,
      });
      assertClose(await read(gpu, param), s1.param, 1e-4, `param after step 1 (n=${n}, ${operands})`);
      assertClose(await read(gpu, m), s1.m, 1e-4, `m after step 1 (n=${n}, ${operands})`);
      assertClose(await read(gpu, v), s1.v, 1e-4, `v after step 1 (n=${n}, ${operands})`);
      write(gpu, grad, g2);
      writeAdamwHyper(gpu, hyperView, { ...hyper, lr: hyper.lr / 2, step: 2 });
      rec.submit();
      const s2 = adamwCpu(s1.param, g2, {
        ...hyper,
        lr: hyper.lr / 2,
        step: 2,
        m: s1.m,
        v: s1.v,
        weightDecay,
        scale: clip,
      });
      assertClose(await read(gpu, param), s2.param, 1e-4, `param after step 2 (n=${n}, ${operands})`);
      assertClose(await read(gpu, m), s2.m, 1e-4, `m after step 2 (n=${n}, ${operands})`);
      assertClose(await read(gpu, v), s2.v, 1e-4, `v after step 2 (n=${n}, ${operands})`);
    }
  });
}

Deno.test("adamw CPU reference matches torch.optim.AdamW on known values", () => {
  // torch 1.13 (foreach=False), AdamW(lr=0.1, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1), f64, two steps with
  // grads [0.5, -2, 0] then [1, 0.25, -3] from params [1, -1, 0.5].
  const opts = { lr: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
  const s1 = adamwCpu([1, -1, 0.5], [0.5, -2, 0], { ...opts, step: 1, m: [0, 0, 0], v: [0, 0, 0] });
  const s2 = adamwCpu(s1.param, [1, 0.25, -3], { ...opts, step: 2, m: s1.m, v: s1.v });
  assertClose(s2.param, TORCH_TWO_STEPS, 1e-12, "params after two steps");
});

const TORCH_TWO_STEPS = [0.7853014162385277, -0.823135626009615, 0.5635459998882576];

Deno.test("optimizer kernels reject short buffers and bad settings before dispatching", async () => {
  const gpu = await getGpu();
  const n = 10;
  const ok = {
    param: createView(gpu, n),
    grad: createView(gpu, n),
    m: createView(gpu, n),
    v: createView(gpu, n),
    hyper: createView(gpu, ADAMW_HYPER_LENGTH),
    scale: createView(gpu, 2),
    weightDecay: 0.1,
    n,
  };
  const rec = new Recorder(gpu);
  assertThrows(
    () => adamwUpdate(rec, { ...ok, v: createView(gpu, n - 1) }),
    /adamw v \(n=10\): needs 10 elements, buffer has 9/,
  );
  assertThrows(() => adamwUpdate(rec, { ...ok, hyper: createView(gpu, 4) }), /adamw hyper/);
  assertThrows(() => adamwUpdate(rec, { ...ok, weightDecay: NaN }), /weightDecay/);
  assertThrows(() => adamwUpdate(rec, { ...ok, maxChunk: 3 }), /offset alignment/);
  assertThrows(
    () => gradNormSquared(rec, { partials: createView(gpu, 1), grads: [ok.grad, ok.m] }),
    /partials/,
  );
  assertThrows(
    () => clipScale(rec, { scale: createView(gpu, 1), partials: createView(gpu, 2), count: 2, maxNorm: 1 }),
    /clip scale out/,
  );
  assertThrows(
    () => clipScale(rec, { scale: ok.scale, partials: createView(gpu, 2), count: 2, maxNorm: -1 }),
    /maxNorm/,
  );
  assertThrows(
    () => writeAdamwHyper(gpu, ok.hyper, { lr: 1, beta1: 0.9, beta2: 0.95, eps: 1e-8, step: 0 }),
    /step 0/,
  );
  assert.equal(rec.length, 0, "a rejected call recorded a dispatch");
});
