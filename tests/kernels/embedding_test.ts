import assert from "node:assert/strict";
import { assertThrows } from "../_assert.ts";
import {
  createView,
  encoderBackward,
  encoderBackwardCpu,
  encoderForward,
  encoderForwardCpu,
  getGpu,
  type Gpu,
  type Operands,
  read,
  readBytes,
  Recorder,
  upload,
  type View,
} from "@inheritune/kernels";
import { assertClose, numericGrad, rand } from "../_util.ts";

// [B, T, C, V]: single elements, odd sizes, C above the workgroup size, and B·T = 320 with a
// tiny vocabulary, so each token's chain of positions is long and spans several workgroups.
// B·T a multiple of 4 scans 4 tokens per load, C a multiple of 4 sums 4 columns per thread.
const SHAPES: [number, number, number, number][] = [
  [1, 1, 1, 1],
  [2, 5, 7, 11],
  [3, 64, 33, 50],
  [2, 5, 300, 3],
  [5, 64, 9, 7],
  [4, 16, 64, 37],
];

/** Deterministic token ids below `V`. */
function tokenIds(n: number, V: number, seed: number): Uint32Array {
  return Uint32Array.from(rand(n, seed), (u) => Math.min(V - 1, Math.floor(((u + 1) / 2) * V)));
}

/** Runs `encoderBackward` from the gradients `dwte0`, `dwpe0`; returns the device views. */
function recordBackward(
  gpu: Gpu,
  data: { dout: View; tokens: View; dwte0: Float32Array; dwpe0: Float32Array },
  shape: { B: number; T: number; C: number; V: number; maxRowsPerChunk?: number; operands?: Operands },
): { dwte: View; dwpe: View } {
  const dwte = upload(gpu, data.dwte0);
  const dwpe = upload(gpu, data.dwpe0);
  const rec = new Recorder(gpu);
  encoderBackward(rec, { dwte, dwpe, dout: data.dout, tokens: data.tokens, ...shape });
  rec.submit();
  return { dwte, dwpe };
}

Deno.test("encoder forward matches CPU on odd shapes", async () => {
  const gpu = await getGpu();
  for (const [B, T, C, V] of SHAPES) {
    const maxT = T + 3;
    const tokens = tokenIds(B * T, V, B * T + V);
    const wte = rand(V * C, V + C);
    const wpe = rand(maxT * C, T + C);
    const out = createView(gpu, B * T * C);
    const rec = new Recorder(gpu);
    encoderForward(rec, {
      out,
      tokens: upload(gpu, tokens),
      wte: upload(gpu, wte),
      wpe: upload(gpu, wpe),
      B,
      T,
      C,
      V,
    });
    rec.submit();
    const want = encoderForwardCpu(tokens, { wte, wpe, B, T, C });
    assertClose(await read(gpu, out), want, 1e-4, `encoder B=${B} T=${T} C=${C} V=${V}`);
  }
});

// B·T a multiple of 4 scans the tokens from the buffer or from a texture.
Deno.test("encoder backward accumulates into non-zero gradients and matches CPU", async () => {
  const gpu = await getGpu();
  const cases = SHAPES.flatMap(([B, T, C, V]) =>
    ((B * T) % 4 === 0 ? ["buffer", "texture"] as const : [undefined]).map((operands) => ({
      B,
      T,
      C,
      V,
      operands,
    }))
  );
  for (const { B, T, C, V, operands } of cases) {
    const maxT = T + 2;
    const tokens = tokenIds(B * T, V, B + T * V);
    const dy = rand(B * T * C, C + 1);
    const dwte0 = rand(V * C, 41);
    const dwpe0 = rand(maxT * C, 42);
    const { dwte, dwpe } = recordBackward(
      gpu,
      { dout: upload(gpu, dy), tokens: upload(gpu, tokens), dwte0, dwpe0 },
      { B, T, C, V, operands },
    );
    const want = encoderBackwardCpu(dy, { tokens, B, T, C, V });
    const what = `B=${B} T=${T} C=${C} V=${V} ${operands ?? "u32"}`;
    assertClose(await read(gpu, dwte), want.dwte.map((v, i) => v + dwte0[i]), 1e-4, `dwte ${what}`);
    // Rows of dwpe at and beyond T keep their values.
    const wantWpe = Float64Array.from(dwpe0, (v, i) => v + (want.dwpe[i] ?? 0));
    assertClose(await read(gpu, dwpe), wantWpe, 1e-4, `dwpe ${what}`);
  }
});

Deno.test("encoder backward CPU reference matches finite differences", () => {
  const [B, T, C, V] = [2, 3, 4, 3];
  const tokens = Uint32Array.from([2, 0, 2, 2, 1, 2]);
  const wte = rand(V * C, 51);
  const wpe = rand(T * C, 52);
  const dy = rand(B * T * C, 53);
  const got = encoderBackwardCpu(dy, { tokens, B, T, C, V });
  const f = (e: ArrayLike<number>, p: ArrayLike<number>) =>
    encoderForwardCpu(tokens, { wte: e, wpe: p, B, T, C });
  assertClose(got.dwte, numericGrad((v) => f(v, wpe), wte, dy), 1e-6, "dwte");
  assertClose(got.dwpe, numericGrad((v) => f(wte, v), wpe, dy), 1e-6, "dwpe");
});

Deno.test("encoder backward gives the same bits on every run with repeated tokens", async () => {
  const gpu = await getGpu();
  const [B, T, C, V] = [4, 150, 40, 5];
  const tokens = upload(gpu, tokenIds(B * T, V, 61));
  const dout = upload(gpu, rand(B * T * C, 62));
  const data = { dout, tokens, dwte0: rand(V * C, 63), dwpe0: rand(T * C, 64) };
  const first = recordBackward(gpu, data, { B, T, C, V });
  const second = recordBackward(gpu, data, { B, T, C, V });
  assert.deepEqual(
    new Uint8Array(await readBytes(gpu, second.dwte)),
    new Uint8Array(await readBytes(gpu, first.dwte)),
  );
  assert.deepEqual(
    new Uint8Array(await readBytes(gpu, second.dwpe)),
    new Uint8Array(await readBytes(gpu, first.dwpe)),
  );
});

Deno.test("encoder binds wte in aligned row chunks with results identical to one binding", async () => {
  const gpu = await getGpu();
  const align = gpu.limits.minStorageBufferOffsetAlignment;
  for (const C of [7, 64]) {
    // The smallest chunk height whose byte size is a multiple of the offset alignment.
    let unit = 1;
    while ((unit * C * 4) % align !== 0) unit++;
    const [B, T, V] = [3, 20, 3 * unit + 1];
    const tokens = upload(gpu, tokenIds(B * T, V, C));
    const wte = upload(gpu, rand(V * C, C + 1));
    const wpe = upload(gpu, rand(T * C, C + 2));
    const dout = upload(gpu, rand(B * T * C, C + 3));
    const data = { dout, tokens, dwte0: rand(V * C, C + 4), dwpe0: rand(T * C, C + 5) };
    const forward = async (maxRowsPerChunk?: number) => {
      const out = createView(gpu, B * T * C);
      const rec = new Recorder(gpu);
      encoderForward(rec, { out, tokens, wte, wpe, B, T, C, V, maxRowsPerChunk });
      rec.submit();
      return { launches: rec.length, bytes: new Uint8Array(await readBytes(gpu, out)) };
    };
    const whole = await forward();
    // A cap that is not a multiple of the alignment unit is rounded down to one: 4 chunks.
    const chunked = await forward(unit + (unit > 1 ? 1 : 0));
    assert.equal(whole.launches, 1);
    assert.equal(chunked.launches, 4);
    assert.deepEqual(chunked.bytes, whole.bytes);
    const a = recordBackward(gpu, data, { B, T, C, V });
    const b = recordBackward(gpu, data, { B, T, C, V, maxRowsPerChunk: unit });
    assert.deepEqual(
      new Uint8Array(await readBytes(gpu, b.dwte)),
      new Uint8Array(await readBytes(gpu, a.dwte)),
    );
    const ids = new Uint32Array(await readBytes(gpu, tokens));
    const want = encoderBackwardCpu(await read(gpu, dout), { tokens: ids, B, T, C, V });
    assertClose(
      await read(gpu, b.dwte),
      want.dwte.map((g, i) => g + data.dwte0[i]),
      1e-4,
      `chunked dwte C=${C}`,
    );
  }
});

Deno.test("encoder rejects bad calls before dispatching", async () => {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  const v = (n: number) => createView(gpu, n);
  const [B, T, C, V] = [2, 4, 3, 5];
  assertThrows(
    () => encoderForward(rec, { out: v(B * T * C), tokens: v(7), wte: v(V * C), wpe: v(T * C), B, T, C, V }),
    /encoder tokens \(B=2, T=4\): needs 8 elements, buffer has 7/,
  );
  assertThrows(
    () =>
      encoderForward(rec, { out: v(B * T * C), tokens: v(B * T), wte: v(V * C), wpe: v(3 * C), B, T, C, V }),
    /encoder wpe: T=4 exceeds the 3 positions it holds/,
  );
  const back = { dout: v(B * T * C), tokens: v(B * T), B, T, C, V };
  assertThrows(
    () => encoderBackward(rec, { ...back, dwte: v(V * C), dwpe: v(3 * C) }),
    /encoder backward dwpe: T=4 exceeds the 3 positions it holds/,
  );
  assertThrows(
    () => encoderBackward(rec, { ...back, dwte: v(V * C - 1), dwpe: v(T * C) }),
    /encoder backward dwte \(V=5, C=3\): needs 15 elements, buffer has 14/,
  );
  assertThrows(
    () => encoderBackward(rec, { ...back, dwte: v(V * C), dwpe: v(T * C), C: 3, maxRowsPerChunk: 0 }),
    /cannot split a table of 5 rows/,
  );
  if (rec.length !== 0) throw new Error("a rejected call recorded a dispatch");
});
