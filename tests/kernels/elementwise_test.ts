import { assertThrows } from "../_assert.ts";
import { dispatchElementwise, getGpu, read, Recorder, upload } from "@inheritune/kernels";
import { assertClose, rand } from "../_util.ts";

Deno.test("element-wise kernels read buffers or textures alike, f32 and vec4, from views inside their buffers", async () => {
  const gpu = await getGpu();
  const skip = gpu.limits.minStorageBufferOffsetAlignment / 4;
  for (const n of [1, 11, 256, 1000, 64 * 64 + 4]) {
    const kinds = n % 4 === 0 ? ["buffer", "texture"] as const : ["buffer"] as const;
    for (const operands of kinds) {
      // a·b in [4, 16] against out in [-2, 2]: no cancellation.
      const [a, b, c0] = [rand(n, n).map((x) => x + 3), rand(n, n + 1).map((x) => x + 3), rand(n, n + 2, 2)];
      // `b` starts `skip` elements into its buffer and is followed by other data.
      const bWhole = new Float32Array(skip + n + 8).fill(7);
      bWhole.set(b, skip);
      const bView = { ...upload(gpu, bWhole), offset: skip, length: n };
      const out = upload(gpu, c0);
      const rec = new Recorder(gpu);
      dispatchElementwise(rec, {
        what: "test",
        writes: { out },
        reads: { a: upload(gpu, a), b: bView },
        n,
        body: "  out[i] += a * b;",
        operands,
      });
      rec.submit();
      const want = c0.map((c, i) => c + a[i] * b[i]);
      assertClose(await read(gpu, out), want, 1e-6, `n=${n} ${operands}`);
    }
  }
  const v = upload(gpu, new Float32Array(11));
  assertThrows(
    () =>
      dispatchElementwise(new Recorder(gpu), {
        what: "odd",
        writes: { out: v },
        reads: { a: v },
        n: 11,
        body: "  out[i] = a;",
        operands: "texture",
      }),
    /odd cannot read texture operands/,
  );
});
