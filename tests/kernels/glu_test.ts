import { assertThrows } from "../_assert.ts";
import {
  createView,
  geluForwardCpu,
  getGpu,
  gluBackward,
  gluBackwardCpu,
  gluForward,
  gluForwardCpu,
  type GluKind,
  read,
  Recorder,
  upload,
} from "@inheritune/kernels";
import { assertClose, numericGrad, rand } from "../_util.ts";

// Odd sizes take the f32 kernels, multiples of 4 the vec4 ones.
const SIZES = [1, 11, 256, 257, 1000];
const KINDS: GluKind[] = ["silu", "gelu_tanh"];

for (const kind of KINDS) {
  Deno.test(`glu ${kind} forward matches CPU on odd sizes and extreme gates`, async () => {
    const gpu = await getGpu();
    for (const n of SIZES) {
      const gate = rand(n, n, 6);
      gate[0] = 100; // far past exp's range: act(100) = 100
      if (n > 1) gate[1] = -100; // act(-100) ≈ 0, no NaN
      const up = rand(n, n + 1, 2);
      const out = createView(gpu, n);
      const rec = new Recorder(gpu);
      gluForward(rec, { kind, out, gate: upload(gpu, gate), up: upload(gpu, up), n });
      rec.submit();
      assertClose(await read(gpu, out), gluForwardCpu(kind, { gate, up }), 1e-4, `${kind} n=${n}`);
    }
  });

  Deno.test(`glu ${kind} backward overwrites both gradients and matches CPU`, async () => {
    const gpu = await getGpu();
    for (const n of SIZES) {
      const gate = rand(n, n + 2, 6);
      const up = rand(n, n + 3, 2);
      const dout = rand(n, n + 4);
      const dgate = upload(gpu, rand(n, 7, 100));
      const dup = upload(gpu, rand(n, 8, 100));
      const rec = new Recorder(gpu);
      gluBackward(rec, {
        kind,
        dgate,
        dup,
        gate: upload(gpu, gate),
        up: upload(gpu, up),
        dout: upload(gpu, dout),
        n,
      });
      rec.submit();
      const want = gluBackwardCpu(kind, { gate, up, dout });
      assertClose(await read(gpu, dgate), want.dgate, 1e-4, `${kind} dgate n=${n}`);
      assertClose(await read(gpu, dup), want.dup, 1e-4, `${kind} dup n=${n}`);
    }
  });

  Deno.test(`glu ${kind} backward CPU reference matches finite differences`, () => {
    const n = 9;
    const gate = rand(n, 1, 4);
    const up = rand(n, 2, 2);
    const w = rand(n, 3);
    const got = gluBackwardCpu(kind, { gate, up, dout: w });
    const dgate = numericGrad((g) => gluForwardCpu(kind, { gate: g, up }), gate, w);
    assertClose(got.dgate, dgate, 1e-6, "dgate");
    assertClose(got.dup, numericGrad((u) => gluForwardCpu(kind, { gate, up: u }), up, w), 1e-6, "dup");
  });
}

Deno.test("glu CPU references are silu(g)·u and PyTorch's tanh GELU(g)·u", () => {
  const gate = new Float32Array([-3, -0.5, 0, 0.25, 2]);
  const up = new Float32Array([1, -2, 3, 0.5, -1]);
  const silu = gluForwardCpu("silu", { gate, up });
  const gelu = gluForwardCpu("gelu_tanh", { gate, up });
  const k = Math.sqrt(2 / Math.PI);
  gate.forEach((g, i) => {
    assertClose([silu[i]], [(g / (1 + Math.exp(-g))) * up[i]], 1e-12, `silu ${g}`);
    assertClose(
      [gelu[i]],
      [0.5 * g * (1 + Math.tanh(k * (g + 0.044715 * g ** 3))) * up[i]],
      1e-12,
      `gelu ${g}`,
    );
  });
  assertClose(gelu, geluForwardCpu(gate).map((a, i) => a * up[i]), 0, "geglu is gelu.ts's GELU");
});

Deno.test("glu rejects buffers too small for n, naming the kind", async () => {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  const v = (n: number) => createView(gpu, n);
  assertThrows(
    () => gluForward(rec, { kind: "silu", out: v(4), gate: v(3), up: v(4), n: 4 }),
    /swiglu gate \(n=4\): needs 4/,
  );
  assertThrows(
    () => gluForward(rec, { kind: "gelu_tanh", out: v(4), gate: v(4), up: v(3), n: 4 }),
    /geglu up \(n=4\): needs 4/,
  );
  assertThrows(
    () => gluBackward(rec, { kind: "silu", dgate: v(4), dup: v(4), gate: v(4), up: v(4), dout: v(2), n: 4 }),
    /swiglu backward dout \(n=4\): needs 4 elements, buffer has 2/,
  );
  if (rec.length !== 0) throw new Error("a rejected call recorded a dispatch");
});
