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
 * The first index where `actual` or `expected` holds NaN or ±Infinity, or -1: such a value is
 * never "close" to anything, and comparisons with NaN are false, so a running maximum would
 * silently skip it.
 */
export function firstNonFinite(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  for (let i = 0; i < expected.length; i++) {
    if (!Number.isFinite(actual[i]) || !Number.isFinite(expected[i])) return i;
  }
  return -1;
}

/** Asserts `measure(actual, expected)` ≤ `tol` after a check that every element is finite. */
function assertMeasure(
  measure: { error: typeof maxRelError; label: string },
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  options: { tol: number; what: string },
): void {
  const { tol, what } = options;
  if (actual.length !== expected.length) {
    throw new AssertionError({ message: `${what}: length ${actual.length} != expected ${expected.length}` });
  }
  const i = firstNonFinite(actual, expected);
  if (i >= 0) {
    throw new AssertionError({
      message: `${what}: element ${i} is not finite (actual ${actual[i]}, expected ${expected[i]})`,
    });
  }
  const err = measure.error(actual, expected);
  if (!(err <= tol)) {
    throw new AssertionError({ message: `${what}: max ${measure.label} ${err.toExponential(3)} > ${tol}` });
  }
}

/**
 * Largest element-wise relative error `|a - e| / max(|e|, 1e-3·max|e|)`: relative where values are
 * not tiny, and measured against the tensor's scale where they are. Infinity where either side
 * holds a NaN or ±Infinity.
 */
export function maxRelError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) {
    throw new AssertionError({ message: `length ${actual.length} != expected ${expected.length}` });
  }
  if (firstNonFinite(actual, expected) >= 0) return Infinity;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  const floor = Math.max(scale * 1e-3, 1e-30);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    worst = Math.max(worst, Math.abs(actual[i] - expected[i]) / Math.max(Math.abs(expected[i]), floor));
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
  assertMeasure({ error: maxRelError, label: "relative error" }, actual, expected, { tol, what });
}

/**
 * Largest absolute error relative to the largest expected magnitude (a norm-wise relative error):
 * the measure for whole gradient and parameter tensors, whose smallest elements are dominated by
 * f32 summation-order noise in any implementation, PyTorch's included. Infinity where either side
 * holds a NaN or ±Infinity.
 */
export function maxNormRelError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) {
    throw new AssertionError({ message: `length ${actual.length} != expected ${expected.length}` });
  }
  if (firstNonFinite(actual, expected) >= 0) return Infinity;
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i]));
    worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
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
  assertMeasure({ error: maxNormRelError, label: "norm-wise relative error" }, actual, expected, {
    tol,
    what,
  });
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

/** The bytes of the gzip-compressed file at `url`. */
export async function gunzip(url: URL): Promise<Uint8Array> {
  const file = await Deno.open(url);
  return new Uint8Array(
    await new Response(file.readable.pipeThrough(new DecompressionStream("gzip"))).arrayBuffer(),
  );
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
