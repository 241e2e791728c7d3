import { assertThrows } from "../_assert.ts";
import {
  createView,
  getGpu,
  read,
  Recorder,
  residualBackward,
  residualBackwardCpu,
  residualForward,
  residualForwardCpu,
  upload,
} from "@inheritune/kernels";
import { assertClose, numericGrad, rand } from "../_util.ts";

Deno.test("residual forward matches CPU on odd sizes", async () => {
  const gpu = await getGpu();
  for (const n of [1, 7, 257, 1000]) {
    const a = rand(n, n);
    const b = rand(n, n + 1);
    const out = createView(gpu, n);
    const rec = new Recorder(gpu);
    residualForward(rec, { out, a: upload(gpu, a), b: upload(gpu, b), n });
    rec.submit();
    assertClose(await read(gpu, out), residualForwardCpu(a, b), 1e-4, `residual n=${n}`);
  }
});

Deno.test("residual backward accumulates dout into both non-zero gradients", async () => {
  const gpu = await getGpu();
  for (const n of [1, 7, 257, 1000]) {
    const dy = rand(n, n + 2);
    const da0 = rand(n, n + 3);
    const db0 = rand(n, n + 4);
    const da = upload(gpu, da0);
    const db = upload(gpu, db0);
    const rec = new Recorder(gpu);
    residualBackward(rec, { da, db, dout: upload(gpu, dy), n });
    rec.submit();
    const want = residualBackwardCpu(dy);
    assertClose(await read(gpu, da), want.map((v, i) => v + da0[i]), 1e-4, `da n=${n}`);
    assertClose(await read(gpu, db), want.map((v, i) => v + db0[i]), 1e-4, `db n=${n}`);
  }
});

Deno.test("residual backward CPU reference matches finite differences", () => {
  const a = rand(9, 1);
  const b = rand(9, 2);
  const dy = rand(9, 3);
  const want = residualBackwardCpu(dy);
  assertClose(want, numericGrad((v) => residualForwardCpu(v, b), a, dy), 1e-6, "da");
  assertClose(want, numericGrad((v) => residualForwardCpu(a, v), b, dy), 1e-6, "db");
});

Deno.test("residual rejects buffers too small for the count before dispatching", async () => {
  const gpu = await getGpu();
  const rec = new Recorder(gpu);
  const v = (n: number) => createView(gpu, n);
  assertThrows(
    () => residualForward(rec, { out: v(5), a: v(5), b: v(4), n: 5 }),
    /residual b \(n=5\): needs 5 elements, buffer has 4/,
  );
  assertThrows(
    () => residualBackward(rec, { da: v(5), db: v(5), dout: v(4), n: 5 }),
    /residual backward dout \(n=5\): needs 5 elements, buffer has 4/,
  );
  if (rec.length !== 0) throw new Error("a rejected call recorded a dispatch");
});
