/**
 * Greedy match: the rank of each target among the logits of its position, 0 when greedy
 * decoding would emit it, with its CPU reference. LAMBADA's accuracy (eval's scorer) asks whether
 * every token of the final word has rank 0; the classifier's losses alone cannot tell (they give
 * only the target's probability).
 *
 * The logits are recomputed from the final hidden states and the tied head row by row instead of
 * being materialised: a (BT,V) logit matrix of GPT-2's vocabulary outgrows one binding.
 *
 * @module
 */
import { IGNORE_INDEX } from "./classifier.ts";
import { GpuError, type Recorder, requireLength, Uniforms, type View } from "./device.ts";
import { FLAT_INDEX_WGSL, grid } from "./elementwise.ts";

/** Arguments of {@linkcode targetRank}. */
export interface TargetRankArgs {
  /** Per-position rank `(BT)`, f32: vocabulary ids whose logit exceeds the target's; -1 where ignored. */
  out: View;
  /** Final hidden states `(BT,C)` (the model's `hidden`). */
  inp: View;
  /** Token embedding, the tied head `(V,C)`. */
  wte: View;
  /** Target ids `(BT)`, u32; {@linkcode IGNORE_INDEX} (or any id ≥ V) gives rank -1. */
  targets: View;
  /** Rows. */
  BT: number;
  /** Channels. */
  C: number;
  /** Vocabulary size. */
  V: number;
}

const WG = 64;

// One workgroup per row. Ignored rows skip the work but still reach the barriers, which must be
// in uniform control flow. The target's own column is skipped rather than compared with itself,
// so a different summation order for the target logit can never count it as greater.
const TARGET_RANK_WGSL = /* wgsl */ `
const IGNORE: u32 = ${IGNORE_INDEX}u;
struct P { BT: u32, C: u32, V: u32 }
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<storage, read> inp: array<f32>;
@group(0) @binding(2) var<storage, read> wte: array<f32>;
@group(0) @binding(3) var<storage, read> targets: array<u32>;
@group(0) @binding(4) var<uniform> p: P;
${FLAT_INDEX_WGSL}
var<workgroup> counts: array<u32, ${WG}>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = flat_index(wid, nwg, 1u);
  if (row >= p.BT) { return; }
  let t = targets[row];
  let valid = t != IGNORE && t < p.V;
  let base = row * p.C;
  var n = 0u;
  if (valid) {
    var tl = 0.0;
    for (var c = 0u; c < p.C; c++) { tl += inp[base + c] * wte[t * p.C + c]; }
    for (var v = lid; v < p.V; v += ${WG}u) {
      var d = 0.0;
      for (var c = 0u; c < p.C; c++) { d += inp[base + c] * wte[v * p.C + c]; }
      if (v != t && d > tl) { n++; }
    }
  }
  counts[lid] = n;
  workgroupBarrier();
  for (var k = ${WG / 2}u; k > 0u; k >>= 1u) {
    if (lid < k) { counts[lid] += counts[lid + k]; }
    workgroupBarrier();
  }
  if (lid == 0u) { out[row] = select(-1.0, f32(counts[0]), valid); }
}`;

/** Records `out[r]` = number of ids whose logit `inp[r]·wte[v]` exceeds the target's (rows `(BT)`). */
export function targetRank(rec: Recorder, args: TargetRankArgs): void {
  const { BT, C, V } = args;
  const what = "targetRank";
  if (BT >= 2 ** 24 || V >= 2 ** 24) {
    throw new GpuError(`${what}: BT=${BT} and V=${V} must stay below 2^24 (f32 ranks)`);
  }
  requireLength(args.out, BT, `${what} out (BT=${BT})`);
  requireLength(args.inp, BT * C, `${what} inp (BT=${BT}, C=${C})`);
  requireLength(args.wte, V * C, `${what} wte (V=${V}, C=${C})`);
  requireLength(args.targets, BT, `${what} targets (BT=${BT})`);
  rec.dispatch({
    code: TARGET_RANK_WGSL,
    views: [args.out, args.inp, args.wte, args.targets],
    uniforms: new Uniforms().u32(BT).u32(C).u32(V),
    groups: grid(rec.gpu, BT, 1),
  });
}

/** CPU reference of {@linkcode targetRank}, in f64. */
export function targetRankCpu(
  inp: ArrayLike<number>,
  wte: ArrayLike<number>,
  targets: ArrayLike<number>,
  shape: { BT: number; C: number; V: number },
): Float64Array {
  const { BT, C, V } = shape;
  const out = new Float64Array(BT);
  const logit = (r: number, v: number): number => {
    let d = 0;
    for (let c = 0; c < C; c++) d += inp[r * C + c] * wte[v * C + c];
    return d;
  };
  for (let r = 0; r < BT; r++) {
    const t = targets[r];
    if (t === IGNORE_INDEX || t >= V) {
      out[r] = -1;
      continue;
    }
    const tl = logit(r, t);
    let n = 0;
    for (let v = 0; v < V; v++) if (v !== t && logit(r, v) > tl) n++;
    out[r] = n;
  }
  return out;
}
