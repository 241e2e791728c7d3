/**
 * Soft-capping of logits (Gemma's `final_logit_softcapping`): a smooth bound of every logit to
 * (-c, c), with CPU references.
 *
 *   forward    y = c·tanh(x/c)                  (in place)
 *   backward   dx = dy·(1 - (y/c)²)             (from the capped y, as PyTorch's tanh backward)
 *
 * The classifier applies both to each vocabulary chunk when given `softcap` (classifier.ts); the
 * forward also serves whoever reads logits directly (generation). tanh takes its argument clamped
 * to ±15, where it already rounds to ±1 in f32: a tanh computed from exp(2u) would overflow to NaN
 * for large |u|.
 *
 * @module
 */
import { GpuError, type Recorder, type View } from "./device.ts";
import { dispatchElementwise } from "./elementwise.ts";

/**
 * Checks a soft-cap `c`: a finite positive number.
 *
 * @throws {GpuError} naming `what` and the value.
 */
export function checkSoftcap(cap: number, what: string): void {
  if (!(cap > 0) || !Number.isFinite(cap)) {
    throw new GpuError(`${what}: softcap ${cap} is not a positive number`);
  }
}

/** Arguments of {@linkcode softcapForward}. */
export interface SoftcapForwardArgs {
  /** Logits `(n)`, capped in place. */
  logits: View;
  /** Elements. */
  n: number;
  /** The cap `c` (Gemma 2: 30). */
  cap: number;
}

/** Records `logits = c·tanh(logits/c)` element-wise, in place. */
export function softcapForward(rec: Recorder, args: SoftcapForwardArgs): void {
  checkSoftcap(args.cap, "softcap");
  dispatchElementwise(rec, {
    what: "softcap",
    writes: { logits: args.logits },
    reads: {},
    n: args.n,
    helpers: `const CAP = f32(${args.cap});`,
    body: "  logits[i] = CAP * tanh(clamp(logits[i] / CAP, T(-15.0), T(15.0)));",
  });
}

// ---------------------------------------------------------------------------------------------
// CPU references

/** CPU reference of {@linkcode softcapForward}: `c·tanh(x/c)`, in f64. */
export function softcapForwardCpu(x: ArrayLike<number>, cap: number): Float64Array {
  return Float64Array.from(x, (v) => cap * Math.tanh(v / cap));
}

/** The gradient of the uncapped logits from that of the capped ones `dy` and the capped `y`, in f64. */
export function softcapBackwardCpu(
  y: ArrayLike<number>,
  args: { dout: ArrayLike<number>; cap: number },
): Float64Array {
  return Float64Array.from(y, (v, i) => args.dout[i] * (1 - (v / args.cap) ** 2));
}
