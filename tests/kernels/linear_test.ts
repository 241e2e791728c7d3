/**
 * The q/k/v projections with a bias (Qwen2) in the `nn.Linear` layout: `linearForward` with
 * `layout: "out_in"` and `bias`, and the backward the LLaMA-like decoder records for it (two
 * products as `core/llama.ts` writes them, plus `biasBackward` for the bias).
 */
import {
  biasBackward,
  biasBackwardCpu,
  createView,
  getGpu,
  linearForward,
  matmul,
  matmulCpu,
  read,
  Recorder,
  upload,
  type View,
} from "@inheritune/kernels";
import { assertClose, numericGrad, rand } from "../_util.ts";

// [M, K, N]: odd sizes (buffer kernels), and rows of 64 floats (texture operands on a CPU adapter).
const SHAPES: [number, number, number][] = [[5, 7, 3], [6, 64, 64], [8, 128, 64], [3, 64, 192]];

Deno.test("linear out_in with a bias: forward, dX, dW and db match the CPU reference", async () => {
  const gpu = await getGpu();
  for (const [M, K, N] of SHAPES) {
    const x = rand(M * K, M + K);
    const w = rand(N * K, N + 1); // (N,K), as nn.Linear stores it
    const b = rand(N, N + 2);
    const dy = rand(M * N, M + 3);
    const dw0 = rand(N * K, 4);
    const db0 = rand(N, 5);
    const [inp, weight, bias, dout] = [x, w, b, dy].map((a) => upload(gpu, a));
    const out = createView(gpu, M * N);
    const dinp = createView(gpu, M * K);
    const dweight = upload(gpu, dw0);
    const dbias = upload(gpu, db0);
    const rec = new Recorder(gpu);
    linearForward(rec, { out, inp, weight, bias, layout: "out_in", M, K, N });
    backward(rec, { dinp, dweight, dbias, dout, inp, weight, M, K, N });
    rec.submit();
    const want = backwardCpu(x, w, dy, { M, K, N });
    const what = `M=${M} K=${K} N=${N}`;
    assertClose(await read(gpu, out), matmulCpu(x, w, { M, N, K, transB: true, bias: b }), 1e-4, `y ${what}`);
    assertClose(await read(gpu, dinp), want.dinp, 1e-4, `dX ${what}`);
    assertClose(await read(gpu, dweight), want.dweight.map((g, i) => g + dw0[i]), 1e-4, `dW ${what}`);
    assertClose(await read(gpu, dbias), want.dbias.map((g, i) => g + db0[i]), 1e-4, `db ${what}`);
  }
});

Deno.test("linear out_in with a bias: the backward's CPU products match finite differences", () => {
  const [M, K, N] = [4, 5, 3];
  const x = rand(M * K, 1), w = rand(N * K, 2), b = rand(N, 3), dy = rand(M * N, 4);
  const f = (xx: ArrayLike<number>, ww: ArrayLike<number>, bb: ArrayLike<number>) =>
    matmulCpu(xx, ww, { M, N, K, transB: true, bias: bb });
  const got = backwardCpu(x, w, dy, { M, K, N });
  assertClose(got.dinp, numericGrad((v) => f(v, w, b), x, dy), 1e-6, "dX");
  assertClose(got.dweight, numericGrad((v) => f(x, v, b), w, dy), 1e-6, "dW");
  assertClose(got.dbias, numericGrad((v) => f(x, w, v), b, dy), 1e-6, "db");
});

/** The decoder's backward of `y = x·Wᵀ + b`: dX (M,K) = dY·W, dW (N,K) += dYᵀ·X, db (N) += Σ_rows dY. */
function backward(
  rec: Recorder,
  v: {
    dinp: View;
    dweight: View;
    dbias: View;
    dout: View;
    inp: View;
    weight: View;
    M: number;
    K: number;
    N: number;
  },
): void {
  const { M, K, N } = v;
  matmul(rec, { out: v.dinp, a: v.dout, b: v.weight, M, N: K, K: N });
  matmul(rec, { out: v.dweight, a: v.dout, b: v.inp, M: N, N: K, K: M, transA: true, accumulate: true });
  biasBackward(rec, { dbias: v.dbias, dout: v.dout, M, N });
}

function backwardCpu(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  dy: ArrayLike<number>,
  shape: { M: number; K: number; N: number },
): { dinp: Float64Array; dweight: Float64Array; dbias: Float64Array } {
  const { M, K, N } = shape;
  return {
    dinp: matmulCpu(dy, w, { M, N: K, K: N }),
    dweight: matmulCpu(dy, x, { M: N, N: K, K: M, transA: true }),
    dbias: biasBackwardCpu(dy, M, N),
  };
}
