/** Helpers shared by the test suites: seeded data, tolerances, finite differences. */
import { AssertionError } from "node:assert/strict";
import { Rng } from "@inheritune/data";

/** Deterministic uniform values in [-scale, scale) from a 32-bit seed. */
export function rand(n: number, seed: number, scale = 1): Float32Array {
  const rng = new Rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rng.uniform() * 2 - 1) * scale;
  return out;
}

/**
 * Largest element-wise relative error `|a - e| / max(|e|, 1e-3·max|e|)`: relative where values are
 * not tiny, and measured against the tensor's scale where they are.
 */
export function maxRelError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) {
    throw new AssertionError({ message: `length ${actual.length} != expected ${expected.length}` });
  }
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  const floor = Math.max(scale * 1e-3, 1e-30);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const err = Math.abs(actual[i] - expected[i]) / Math.max(Math.abs(expected[i]), floor);
    if (!(err <= worst)) worst = err; // NaN propagates as a failure
  }
  return worst;
}

/** Asserts {@linkcode maxRelError} ≤ `tol`, naming `what` in the failure. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: number,
  what: string,
): void {
  const err = maxRelError(actual, expected);
  if (!(err <= tol)) {
    throw new AssertionError({ message: `${what}: max relative error ${err.toExponential(3)} > ${tol}` });
  }
}

/**
 * Largest absolute error relative to the largest expected magnitude (a norm-wise relative error):
 * the measure for whole gradient and parameter tensors, whose smallest elements are dominated by
 * f32 summation-order noise in any implementation, PyTorch's included.
 */
export function maxNormRelError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) {
    throw new AssertionError({ message: `length ${actual.length} != expected ${expected.length}` });
  }
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i]));
    const err = Math.abs(actual[i] - expected[i]);
    if (!(err <= worst)) worst = err;
  }
  return worst / Math.max(scale, 1e-30);
}

/** Asserts {@linkcode maxNormRelError} ≤ `tol`, naming `what` in the failure. */
export function assertCloseNorm(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: number,
  what: string,
): void {
  const err = maxNormRelError(actual, expected);
  if (!(err <= tol)) {
    throw new AssertionError({
      message: `${what}: max norm-wise relative error ${err.toExponential(3)} > ${tol}`,
    });
  }
}

/**
 * Central finite differences of `L(x) = Σ_i w_i f(x)_i` with respect to every element of `x`,
 * in f64: the gradient a backward pass must return for the output gradient `w`.
 */
export function numericGrad(
  f: (x: Float64Array) => ArrayLike<number>,
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  eps = 1e-6,
): Float64Array {
  const xs = Float64Array.from(x);
  const g = new Float64Array(xs.length);
  const loss = (): number => {
    const y = f(xs);
    let s = 0;
    for (let i = 0; i < y.length; i++) s += w[i] * y[i];
    return s;
  };
  for (let i = 0; i < xs.length; i++) {
    const x0 = xs[i];
    xs[i] = x0 + eps;
    const lp = loss();
    xs[i] = x0 - eps;
    const lm = loss();
    xs[i] = x0;
    g[i] = (lp - lm) / (2 * eps);
  }
  return g;
}

/** Runs `fn` with a fresh temporary folder, removed afterwards whatever happens. */
export async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "inheritune_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** What a command-line run printed and its exit code. */
export interface CliResult {
  /** Exit code. */
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
}

const ROOT = new URL("../", import.meta.url).pathname;

/**
 * Runs `deno run -A --unstable-ffi SCRIPT ...args` from the repository root: by default `cli.ts`,
 * as `deno task` does; `unset` names environment variables the run does not inherit.
 */
export async function runCli(
  args: string[],
  options: { script?: string; unset?: string[] } = {},
): Promise<CliResult> {
  const env: Record<string, string> = { ...Deno.env.toObject(), NO_COLOR: "1" };
  for (const name of options.unset ?? []) delete env[name];
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-ffi", options.script ?? "cli.ts", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env,
    clearEnv: true,
  }).output();
  const text = (b: Uint8Array): string => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}
