/**
 * The residual connection, forward and backward, with CPU references.
 *
 *   forward    out = a + b
 *   backward   da += dout,  db += dout
 *
 * @module
 */
import type { Recorder, View } from "./device.ts";
import { dispatchElementwise } from "./elementwise.ts";

/** Arguments of {@linkcode residualForward}. */
export interface ResidualForwardArgs {
  /** Output `(n)`. */
  out: View;
  /** First summand `(n)`. */
  a: View;
  /** Second summand `(n)`. */
  b: View;
  /** Elements. */
  n: number;
}

/** Records `out = a + b` element-wise. */
export function residualForward(rec: Recorder, args: ResidualForwardArgs): void {
  dispatchElementwise(rec, {
    what: "residual",
    writes: { out: args.out },
    reads: { a: args.a, b: args.b },
    n: args.n,
    body: "  out[i] = a + b;",
  });
}

/** Arguments of {@linkcode residualBackward}. */
export interface ResidualBackwardArgs {
  /** Gradient of the first summand `(n)`, accumulated into. */
  da: View;
  /** Gradient of the second summand `(n)`, accumulated into; a different buffer from `da`. */
  db: View;
  /** Output gradient `(n)`. */
  dout: View;
  /** Elements. */
  n: number;
}

/** Records `da += dout` and `db += dout` element-wise. */
export function residualBackward(rec: Recorder, args: ResidualBackwardArgs): void {
  dispatchElementwise(rec, {
    what: "residual backward",
    writes: { da: args.da, db: args.db },
    reads: { dout: args.dout },
    n: args.n,
    body: /* wgsl */ `
  da[i] += dout;
  db[i] += dout;`,
  });
}

// ---------------------------------------------------------------------------------------------
// CPU references

/** CPU reference of {@linkcode residualForward}: `a + b`, in f64. */
export function residualForwardCpu(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] + b[i];
  return out;
}

/**
 * CPU reference of {@linkcode residualBackward}: the gradient of either summand, which is
 * `dout` itself (the GPU kernel adds it into both).
 */
export function residualBackwardCpu(dout: ArrayLike<number>): Float64Array {
  return Float64Array.from(dout);
}
