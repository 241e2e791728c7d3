/** The benches' matmul variants against the CPU reference. */
import { createView, getGpu, matmulCpu, read, Recorder, upload } from "@inheritune/kernels";
import { matmulNaive } from "../../bench/kernels/_matmul_variants.ts";
import { assertClose, rand } from "../_util.ts";

Deno.test("matmul naive baseline matches CPU for all transposes", async () => {
  const gpu = await getGpu();
  const [M, N, K] = [9, 17, 6];
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      const a = rand(M * K, 31);
      const b = rand(K * N, 32);
      const out = createView(gpu, M * N);
      const rec = new Recorder(gpu);
      matmulNaive(rec, { out, a: upload(gpu, a), b: upload(gpu, b), M, N, K, transA, transB });
      rec.submit();
      assertClose(await read(gpu, out), matmulCpu(a, b, { M, N, K, transA, transB }), 1e-4, "naive");
    }
  }
});
