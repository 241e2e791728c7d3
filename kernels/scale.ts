/**
 * Multiplying a tensor in place by a constant, with its CPU reference: Gemma's embedding scale
 * (`x·√C` after the token lookup). The backward pass is the same product on the gradient.
 *
 *   forward    x = x·s          backward    dx = dx·s
 *
 * @module
 */
import { GpuError, type Recorder, type View } from "./device.ts";
import { dispatchElementwise } from "./elementwise.ts";

/** Arguments of {@linkcode scaleInPlace}. */
export interface ScaleArgs {
  /** The tensor `(n)`, scaled in place. */
  x: View;
  /** Elements. */
  n: number;
  /** The factor, rounded to f32 as PyTorch's f32 tensor of it is. */
  scale: number;
}

/** Records `x = x·scale` element-wise. */
export function scaleInPlace(rec: Recorder, args: ScaleArgs): void {
  if (!Number.isFinite(args.scale)) throw new GpuError(`scale: factor ${args.scale} is not finite`);
  dispatchElementwise(rec, {
    what: "scale",
    writes: { x: args.x },
    reads: {},
    n: args.n,
    // Nine significant digits name an f32 exactly: the shader's factor is the reference's.
    helpers: `const S = f32(${Math.fround(args.scale).toPrecision(9)});`,
    body: "  x[i] = x[i] * S;",
  });
}

/** CPU reference of {@linkcode scaleInPlace}: `x·fround(scale)` in f32. */
export function scaleCpu(x: ArrayLike<number>, scale: number): Float32Array {
  const s = Math.fround(scale);
  return Float32Array.from(x, (v) => v * s);
}
