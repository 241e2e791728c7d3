import assert from "node:assert/strict";
import { assertThrows } from "../_assert.ts";
import {
  createView,
  getGpu,
  type Operands,
  read,
  Recorder,
  ropeBackward,
  ropeBackwardCpu,
  ropeForward,
  ropeForwardCpu,
  type RopeShape,
  ropeTables,
  upload,
} from "@inheritune/kernels";
import { assertClose, numericGrad, rand } from "../_util.ts";

// [B, T, NH, NKV, hs]: multi-head, grouped and multi-query, head sizes 2 to 64.
const SHAPES: [number, number, number, number, number][] = [
  [1, 1, 1, 1, 2],
  [2, 5, 3, 3, 6],
  [2, 7, 4, 2, 8],
  [1, 33, 8, 1, 16],
  [2, 16, 2, 2, 64],
];

function inputs(shape: RopeShape, seed: number) {
  const { BT, NH, NKV, hs } = shape;
  return { q: rand(BT * NH * hs, seed), k: rand(BT * NKV * hs, seed + 1), v: rand(BT * NKV * hs, seed + 2) };
}

Deno.test("rope tables hold cos and sin of t·θ^(-2d/hs)", () => {
  const { cos, sin } = ropeTables({ hs: 8, maxT: 5, theta: 10000 });
  for (let t = 0; t < 5; t++) {
    for (let d = 0; d < 4; d++) {
      const angle = t * 10000 ** (-2 * d / 8);
      assertClose(
        [cos[t * 4 + d], sin[t * 4 + d]],
        [Math.cos(angle), Math.sin(angle)],
        1e-6,
        `t=${t} d=${d}`,
      );
    }
  }
});

// Head sizes that are a multiple of 8 take the quad kernels, from buffers or textures; others the pair kernels.
const CASES: { s: [number, number, number, number, number]; operands?: Operands }[] = SHAPES.flatMap((s) =>
  s[4] % 8 === 0 ? [{ s, operands: "buffer" as const }, { s, operands: "texture" as const }] : [{ s }]
);

Deno.test("rope forward packs rotated q, rotated k and v, and backward unrotates, matching CPU", async () => {
  const gpu = await getGpu();
  for (const { s: [B, T, NH, NKV, hs], operands } of CASES) {
    const shape = { BT: B * T, T, NH, NKV, hs, operands };
    const tables = ropeTables({ hs, maxT: T, theta: 10000 });
    const x = inputs(shape, B * 7 + T);
    const W = (NH + 2 * NKV) * hs;
    const dqkv = rand(B * T * W, T + hs);
    const views = {
      qkv: createView(gpu, B * T * W),
      q: upload(gpu, x.q),
      k: upload(gpu, x.k),
      v: upload(gpu, x.v),
      cos: upload(gpu, tables.cos),
      sin: upload(gpu, tables.sin),
    };
    const grads = {
      dq: upload(gpu, rand(x.q.length, 1, 50)),
      dk: upload(gpu, rand(x.k.length, 2, 50)),
      dv: upload(gpu, rand(x.v.length, 3, 50)),
      dqkv: upload(gpu, dqkv),
    };
    const rec = new Recorder(gpu);
    ropeForward(rec, { ...views, ...shape });
    ropeBackward(rec, { ...grads, cos: views.cos, sin: views.sin, ...shape });
    rec.submit();
    const what = `B=${B} T=${T} NH=${NH} NKV=${NKV} hs=${hs} ${operands ?? "pairs"}`;
    assertClose(await read(gpu, views.qkv), ropeForwardCpu(x, { ...shape, ...tables }), 1e-4, `qkv ${what}`);
    const want = ropeBackwardCpu(dqkv, { ...shape, ...tables });
    assertClose(await read(gpu, grads.dq), want.dq, 1e-4, `dq ${what}`);
    assertClose(await read(gpu, grads.dk), want.dk, 1e-4, `dk ${what}`);
    assertClose(await read(gpu, grads.dv), want.dv, 1e-4, `dv ${what}`);
  }
});

Deno.test("rope backward CPU reference matches finite differences", () => {
  const shape = { BT: 6, T: 3, NH: 4, NKV: 2, hs: 6 };
  const tables = ropeTables({ hs: 6, maxT: 3, theta: 500 });
  const x = inputs(shape, 9);
  const w = rand(6 * (4 + 4) * 6, 10);
  const got = ropeBackwardCpu(w, { ...shape, ...tables });
  const f = (part: "q" | "k" | "v") => (y: Float64Array) =>
    ropeForwardCpu({ ...x, [part]: y }, { ...shape, ...tables });
  assertClose(got.dq, numericGrad(f("q"), x.q, w), 1e-6, "dq");
  assertClose(got.dk, numericGrad(f("k"), x.k, w), 1e-6, "dk");
  assertClose(got.dv, numericGrad(f("v"), x.v, w), 1e-6, "dv");
});

Deno.test("rope scores depend only on the distance between positions, and position 0 is unrotated", () => {
  // One head; q and k the same vector at every position: q_t·k_s after RoPE is a function of t − s.
  const T = 6, hs = 8;
  const tables = ropeTables({ hs, maxT: T, theta: 100 });
  const qv = rand(hs, 1), kv = rand(hs, 2);
  const q = new Float32Array(T * hs), k = new Float32Array(T * hs);
  for (let t = 0; t < T; t++) {
    q.set(qv, t * hs);
    k.set(kv, t * hs);
  }
  const qkv = ropeForwardCpu({ q, k, v: new Float32Array(T * hs) }, {
    BT: T,
    T,
    NH: 1,
    NKV: 1,
    hs,
    ...tables,
  });
  const score = (t: number, s: number) => {
    let d = 0;
    for (let i = 0; i < hs; i++) d += qkv[t * 3 * hs + i] * qkv[s * 3 * hs + hs + i];
    return d;
  };
  for (const [t, s] of [[3, 1], [5, 3], [2, 0]]) {
    assertClose([score(t, s)], [score(4, 2)], 1e-6, `score(${t},${s})`);
  }
  assert.deepEqual([...qkv.subarray(0, hs)].map(Math.fround), [...qv]);
});

Deno.test("rope rejects odd head sizes, ungrouped heads and short buffers", async () => {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  const v = (n: number) => createView(gpu, n);
  const ok = {
    qkv: v(2 * 12),
    q: v(2 * 4),
    k: v(2 * 4),
    v: v(2 * 4),
    cos: v(4),
    sin: v(4),
    BT: 2,
    T: 2,
    NH: 1,
    NKV: 1,
    hs: 4,
  };
  assertThrows(() => ropeForward(rec, { ...ok, hs: 3 }), /head size 3 is not even/);
  assertThrows(() => ropeForward(rec, { ...ok, NH: 3, NKV: 2 }), /NKV=2 does not divide NH=3/);
  assertThrows(
    () => ropeForward(rec, { ...ok, sin: v(3) }),
    /rope sin table \(T=2, hs=4\): needs 4 elements, buffer has 3/,
  );
  assertThrows(() => ropeTables({ hs: 5, maxT: 2, theta: 1e4 }), /head size 5 is not even/);
  assert.equal(rec.length, 0, "a rejected call recorded a dispatch");
});
