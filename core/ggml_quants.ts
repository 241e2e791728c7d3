/**
 * ggml's element types (llama.cpp's tensor formats, as GGUF files store them): one table of type
 * number → name, elements per block and bytes per block, with a dequantizer for the types a loader
 * reads and a quantizer for the types an exporter writes. Formats as ggml-common.h declares them
 * and ggml-quants.c converts them; every conversion reproduces ggml's float32 arithmetic operation
 * by operation (each product and sum rounded to f32, scales through f16), so the results are
 * bit-identical to llama.cpp's.
 *
 * Blocks, little-endian, `d`/`m`/`dmin` f16:
 * - Q4_0 `d, qs[16]` (x = d·(q − 8)); Q4_1 `d, m, qs[16]` (x = d·q + m); Q5_0 `d, qh[4], qs[16]`
 *   and Q5_1 `d, m, qh[4], qs[16]` (the fifth bit in `qh`); Q8_0 `d, int8 qs[32]`; IQ4_NL
 *   `d, qs[16]` (x = d·table[q]); all of 32 elements, low nibbles first.
 * - 256-element super-blocks of sub-blocks with their own quantized scales: Q2_K `scales[16],
 *   qs[64], d, dmin`; Q3_K `hmask[32], qs[64], scales[12], d`; Q4_K `d, dmin, scales[12], qs[128]`;
 *   Q5_K `d, dmin, scales[12], qh[32], qs[128]`; Q6_K `ql[128], qh[64], int8 scales[16], d`;
 *   IQ4_XS `d, scales_h u16, scales_l[4], qs[128]`.
 *
 * @module
 */
import { decodeFloats, encodeFloats } from "./safetensors.ts";

/** Converts `count` elements stored as `bytes` to f32. */
export type Dequantizer = (bytes: Uint8Array, count: number) => Float32Array;
/** Converts f32 values (whole blocks) to their stored bytes. */
export type Quantizer = (values: Float32Array) => Uint8Array;

/** One ggml element type. */
export interface GgmlType {
  /** Its number in GGUF files (`enum ggml_type`). */
  readonly id: number;
  /** ggml's name, e.g. "Q4_K". */
  readonly name: string;
  /** Elements per block (1 for plain floats and integers). */
  readonly blockSize: number;
  /** Bytes per block. */
  readonly blockBytes: number;
  /** Conversion to f32, for the types a loader reads. */
  readonly dequantize?: Dequantizer;
  /** Conversion from f32, for the types {@linkcode quantize} writes. */
  readonly quantize?: Quantizer;
}

const f32 = Math.fround;
const QK_K = 256;

/** IQ4_NL's and IQ4_XS's 16 non-linear levels (ggml-common.h `kvalues_iq4nl`). */
const IQ4_LEVELS = Int8Array.of(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
/** Q4_0's levels: the nibble minus 8. */
const Q4_0_LEVELS = Int8Array.from({ length: 16 }, (_, q) => q - 8);

/** A DataView of `bytes` (read little-endian, as GGUF stores everything). */
function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

// ---------------------------------------------------------------------------------------------
// Dequantization (ggml-quants.c `dequantize_row_*`)

/** Q4_0 and IQ4_NL: an f16 scale times one of 16 `levels` per nibble, low nibbles first. */
function dequantizeNibbles(levels: Int8Array): Dequantizer {
  return (bytes, count) => {
    const out = new Float32Array(count), v = view(bytes);
    for (let i = 0, o = 0; i < count; i += 32, o += 18) {
      const d = v.getFloat16(o, true);
      for (let j = 0; j < 16; j++) {
        const q = bytes[o + 2 + j];
        out[i + j] = d * levels[q & 15];
        out[i + j + 16] = d * levels[q >> 4];
      }
    }
    return out;
  };
}

function dequantizeQ4_1(bytes: Uint8Array, count: number): Float32Array {
  const out = new Float32Array(count), v = view(bytes);
  for (let i = 0, o = 0; i < count; i += 32, o += 20) {
    const d = v.getFloat16(o, true), m = v.getFloat16(o + 2, true);
    for (let j = 0; j < 16; j++) {
      const q = bytes[o + 4 + j];
      out[i + j] = f32(d * (q & 15)) + m;
      out[i + j + 16] = f32(d * (q >> 4)) + m;
    }
  }
  return out;
}

/** Q5_0 (`min` false) and Q5_1 (`min` true): the low nibbles in `qs`, each fifth bit in `qh`. */
function dequantizeQ5(min: boolean): Dequantizer {
  const head = min ? 4 : 2, blockBytes = head + 20;
  return (bytes, count) => {
    const out = new Float32Array(count), v = view(bytes);
    for (let i = 0, o = 0; i < count; i += 32, o += blockBytes) {
      const d = v.getFloat16(o, true), m = min ? v.getFloat16(o + 2, true) : 0;
      const qh = v.getUint32(o + head, true);
      for (let j = 0; j < 16; j++) {
        const q = bytes[o + head + 4 + j];
        const x0 = (q & 15) | (((qh >>> j) << 4) & 0x10), x1 = (q >> 4) | ((qh >>> (j + 12)) & 0x10);
        if (min) {
          out[i + j] = f32(d * x0) + m;
          out[i + j + 16] = f32(d * x1) + m;
        } else {
          out[i + j] = d * (x0 - 16);
          out[i + j + 16] = d * (x1 - 16);
        }
      }
    }
    return out;
  };
}

function dequantizeQ8_0(bytes: Uint8Array, count: number): Float32Array {
  const out = new Float32Array(count), v = view(bytes);
  for (let i = 0, o = 0; i < count; i += 32, o += 34) {
    const d = v.getFloat16(o, true);
    for (let j = 0; j < 32; j++) out[i + j] = d * v.getInt8(o + 2 + j);
  }
  return out;
}

function dequantizeQ2_K(bytes: Uint8Array, count: number): Float32Array {
  const out = new Float32Array(count), v = view(bytes);
  for (let i = 0, o = 0; i < count; i += QK_K, o += 84) {
    const d = v.getFloat16(o + 80, true), dmin = v.getFloat16(o + 82, true);
    let y = i, is = 0;
    for (let q = o + 16; q < o + 80; q += 32) {
      for (let shift = 0; shift < 8; shift += 2) {
        for (let half = 0; half < 32; half += 16) {
          const sc = bytes[o + is++];
          const dl = f32(d * (sc & 15)), ml = f32(dmin * (sc >> 4));
          for (let l = 0; l < 16; l++) out[y++] = f32(dl * ((bytes[q + half + l] >> shift) & 3)) - ml;
        }
      }
    }
  }
  return out;
}

function dequantizeQ3_K(bytes: Uint8Array, count: number): Float32Array {
  const out = new Float32Array(count), v = view(bytes);
  const scales = new Int8Array(16);
  for (let i = 0, o = 0; i < count; i += QK_K, o += 110) {
    const d = v.getFloat16(o + 108, true), s = o + 96;
    // 16 six-bit scales: low nibbles in bytes 0–7 (two each), high bit pairs in bytes 8–11.
    for (let j = 0; j < 16; j++) {
      const low = j < 8 ? bytes[s + j] & 15 : bytes[s + j - 8] >> 4;
      scales[j] = (low | (((bytes[s + 8 + (j % 4)] >> (2 * (j >> 2))) & 3) << 4)) - 32;
    }
    let y = i, is = 0, m = 1;
    for (let q = o + 32; q < o + 96; q += 32) {
      for (let shift = 0; shift < 8; shift += 2, m <<= 1) {
        for (let half = 0; half < 32; half += 16) {
          const dl = f32(d * scales[is++]);
          for (let l = half; l < half + 16; l++) {
            out[y++] = dl * (((bytes[q + l] >> shift) & 3) - (bytes[o + l] & m ? 0 : 4));
          }
        }
      }
    }
  }
  return out;
}

/** Scale and min `j` of Q4_K's and Q5_K's 12 bytes of eight 6-bit pairs (`get_scale_min_k4`). */
function scaleMinK4(bytes: Uint8Array, s: number, j: number): [number, number] {
  if (j < 4) return [bytes[s + j] & 63, bytes[s + j + 4] & 63];
  return [
    (bytes[s + j + 4] & 15) | ((bytes[s + j - 4] >> 6) << 4),
    (bytes[s + j + 4] >> 4) | ((bytes[s + j] >> 6) << 4),
  ];
}

/** Q4_K (`fifthBit` false) and Q5_K (true): eight 32-element sub-blocks of scale and min. */
function dequantizeK(fifthBit: boolean): Dequantizer {
  const blockBytes = fifthBit ? 176 : 144, qs = fifthBit ? 48 : 16;
  return (bytes, count) => {
    const out = new Float32Array(count), v = view(bytes);
    for (let i = 0, o = 0; i < count; i += QK_K, o += blockBytes) {
      const d = v.getFloat16(o, true), dmin = v.getFloat16(o + 2, true);
      let y = i;
      for (let j = 0; j < 4; j++) {
        const q = o + qs + 32 * j;
        for (let half = 0; half < 2; half++) {
          const [sc, m] = scaleMinK4(bytes, o + 4, 2 * j + half);
          const dl = f32(d * sc), ml = f32(dmin * m);
          const bit = 1 << (2 * j + half);
          for (let l = 0; l < 32; l++) {
            const low = half ? bytes[q + l] >> 4 : bytes[q + l] & 15;
            const high = fifthBit && bytes[o + 16 + l] & bit ? 16 : 0;
            out[y++] = f32(dl * (low + high)) - ml;
          }
        }
      }
    }
    return out;
  };
}

function dequantizeQ6_K(bytes: Uint8Array, count: number): Float32Array {
  const out = new Float32Array(count), v = view(bytes);
  for (let i = 0, o = 0; i < count; i += QK_K, o += 210) {
    const d = v.getFloat16(o + 208, true);
    for (let n = 0; n < 2; n++) {
      const ql = o + 64 * n, qh = o + 128 + 32 * n, sc = o + 192 + 8 * n, y = i + 128 * n;
      for (let l = 0; l < 32; l++) {
        const is = l >> 4, h = bytes[qh + l];
        const q1 = ((bytes[ql + l] & 15) | ((h & 3) << 4)) - 32;
        const q2 = ((bytes[ql + l + 32] & 15) | (((h >> 2) & 3) << 4)) - 32;
        const q3 = ((bytes[ql + l] >> 4) | (((h >> 4) & 3) << 4)) - 32;
        const q4 = ((bytes[ql + l + 32] >> 4) | (((h >> 6) & 3) << 4)) - 32;
        out[y + l] = f32(d * v.getInt8(sc + is)) * q1;
        out[y + l + 32] = f32(d * v.getInt8(sc + is + 2)) * q2;
        out[y + l + 64] = f32(d * v.getInt8(sc + is + 4)) * q3;
        out[y + l + 96] = f32(d * v.getInt8(sc + is + 6)) * q4;
      }
    }
  }
  return out;
}

function dequantizeIQ4_XS(bytes: Uint8Array, count: number): Float32Array {
  const out = new Float32Array(count), v = view(bytes);
  for (let i = 0, o = 0; i < count; i += QK_K, o += 136) {
    const d = v.getFloat16(o, true), high = v.getUint16(o + 2, true);
    for (let ib = 0; ib < 8; ib++) {
      const ls = ((bytes[o + 4 + (ib >> 1)] >> (4 * (ib & 1))) & 15) | (((high >> (2 * ib)) & 3) << 4);
      const dl = f32(d * (ls - 32)), q = o + 8 + 16 * ib, y = i + 32 * ib;
      for (let j = 0; j < 16; j++) {
        out[y + j] = dl * IQ4_LEVELS[bytes[q + j] & 15];
        out[y + j + 16] = dl * IQ4_LEVELS[bytes[q + j] >> 4];
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Quantization (ggml-quants.c `quantize_row_*_ref`, what `ggml_quantize_chunk` runs without an
// importance matrix)

const nearestScratch = new Float32Array(1);
const nearestBits = new Int32Array(nearestScratch.buffer);

/** ggml's `nearest_int`: round half to even through the bits of `v + 1.5·2²³` in f32. */
function nearestInt(v: number): number {
  // Within ggml's asserted range the bits are the f32 sum's integer part, without the scratch.
  if (Math.abs(v) <= 4194303) return f32(v + 12582912) - 12582912;
  nearestScratch[0] = v + 12582912;
  return (nearestBits[0] & 0x007fffff) - 0x00400000;
}

/**
 * C's `(int8_t)` of a float as x86-64 compilers emit it: truncation to int32 (0x80000000 when out
 * of range or NaN), then the low byte. Only a block whose largest value is below 2.4e-38, where
 * 1/d overflows and every value dequantizes to 0 anyway, reaches the undefined cases.
 */
function cInt8(v: number): number {
  const t = Math.trunc(v);
  return t >= -(2 ** 31) && t < 2 ** 31 ? (t << 24) >> 24 : 0;
}

/** C's `roundf`: halves away from zero. */
function roundHalfAway(v: number): number {
  return Math.sign(v) * Math.floor(Math.abs(v) + 0.5);
}

/** `v` rounded to f16 and back, as ggml stores a scale and reads it again. */
function viaF16(v: number): number {
  return Math.f16round(v);
}

function quantizeQ8_0(x: Float32Array): Uint8Array {
  const out = new Uint8Array((x.length / 32) * 34), v = view(out);
  for (let i = 0, o = 0; i < x.length; i += 32, o += 34) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[i + j]));
    const d = f32(amax / 127), id = d ? f32(1 / d) : 0;
    v.setFloat16(o, d, true);
    for (let j = 0; j < 32; j++) v.setInt8(o + 2 + j, roundHalfAway(f32(x[i + j] * id)));
  }
  return out;
}

/** The value of largest magnitude among `x[i .. i+32)`, the first of equals (Q4_0's and Q5_0's scale). */
function signedMax(x: Float32Array, i: number): number {
  let amax = 0, max = 0;
  for (let j = 0; j < 32; j++) {
    if (amax < Math.abs(x[i + j])) [amax, max] = [Math.abs(x[i + j]), x[i + j]];
  }
  return max;
}

function quantizeQ4_0(x: Float32Array): Uint8Array {
  const out = new Uint8Array((x.length / 32) * 18), v = view(out);
  for (let i = 0, o = 0; i < x.length; i += 32, o += 18) {
    // The value of largest magnitude maps to −8.
    const d = f32(signedMax(x, i) / -8), id = d ? f32(1 / d) : 0;
    v.setFloat16(o, d, true);
    const code = (value: number): number => Math.min(15, cInt8(f32(f32(value * id) + 8.5))) & 255;
    for (let j = 0; j < 16; j++) out[o + 2 + j] = code(x[i + j]) | (code(x[i + j + 16]) << 4);
  }
  return out;
}

function quantizeQ5_0(x: Float32Array): Uint8Array {
  const out = new Uint8Array((x.length / 32) * 22), v = view(out);
  for (let i = 0, o = 0; i < x.length; i += 32, o += 22) {
    // As Q4_0, with 32 levels: the value of largest magnitude maps to −16.
    const d = f32(signedMax(x, i) / -16), id = d ? f32(1 / d) : 0;
    v.setFloat16(o, d, true);
    const code = (value: number): number => Math.min(31, cInt8(f32(f32(value * id) + 16.5))) & 255;
    let qh = 0;
    for (let j = 0; j < 16; j++) {
      const lo = code(x[i + j]), hi = code(x[i + j + 16]);
      out[o + 6 + j] = (lo & 15) | ((hi & 15) << 4);
      qh |= (((lo & 16) >> 4) << j) | (((hi & 16) >> 4) << (j + 16));
    }
    v.setUint32(o + 2, qh >>> 0, true);
  }
  return out;
}

/**
 * ggml's `make_qkx2_quants`: the scale and (negated) min of one sub-block of `x` with codes 0…nmax
 * in `L`, the best weighted error over `nstep + 1` trial scales around the range's.
 */
function makeQkx2Quants(
  x: Float32Array,
  weights: Float32Array,
  L: Uint8Array,
  options: { nmax: number; rmin: number; rdelta: number; nstep: number },
): { scale: number; min: number } {
  const { nmax, rmin, rdelta, nstep } = options;
  const n = x.length, Laux = new Uint8Array(n);
  let min = x[0], max = x[0], sumW = weights[0], sumX = f32(sumW * x[0]);
  for (let i = 1; i < n; i++) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    sumW = f32(sumW + weights[i]);
    sumX = f32(sumX + f32(weights[i] * x[i]));
  }
  if (min > 0) min = 0;
  if (max === min) {
    L.fill(0);
    return { scale: 0, min: -min };
  }
  let iscale = f32(nmax / f32(max - min));
  let scale = f32(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < n; i++) {
    L[i] = Math.max(0, Math.min(nmax, nearestInt(f32(iscale * f32(x[i] - min)))));
    const diff = f32(f32(f32(scale * L[i]) + min) - x[i]);
    bestError = f32(bestError + f32(weights[i] * f32(diff * diff)));
  }
  for (let is = 0; is <= nstep; is++) {
    iscale = f32(f32(f32(rmin + f32(f32(rdelta) * is)) + nmax) / f32(max - min));
    let sumL = 0, sumL2 = 0, sumXL = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.max(0, Math.min(nmax, nearestInt(f32(iscale * f32(x[i] - min)))));
      Laux[i] = l;
      const w = weights[i];
      sumL = f32(sumL + f32(w * l));
      sumL2 = f32(sumL2 + f32(f32(w * l) * l));
      sumXL = f32(sumXL + f32(f32(w * l) * x[i]));
    }
    const D = f32(f32(sumW * sumL2) - f32(sumL * sumL));
    if (D > 0) {
      let thisScale = f32(f32(f32(sumW * sumXL) - f32(sumX * sumL)) / D);
      let thisMin = f32(f32(f32(sumL2 * sumX) - f32(sumL * sumXL)) / D);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = f32(sumXL / sumL2);
      }
      let curError = 0;
      for (let i = 0; i < n; i++) {
        const diff = f32(f32(f32(thisScale * Laux[i]) + thisMin) - x[i]);
        curError = f32(curError + f32(weights[i] * f32(diff * diff)));
      }
      if (curError < bestError) {
        L.set(Laux);
        bestError = curError;
        scale = thisScale;
        min = thisMin;
      }
    }
  }
  return { scale, min: -min };
}

function quantizeQ4_K(x: Float32Array): Uint8Array {
  const out = new Uint8Array((x.length / QK_K) * 144), v = view(out);
  const L = new Uint8Array(QK_K), weights = new Float32Array(32);
  const scales = new Float32Array(8), mins = new Float32Array(8);
  for (let i = 0, o = 0; i < x.length; i += QK_K, o += 144) {
    let maxScale = 0, maxMin = 0;
    for (let j = 0; j < 8; j++) {
      const xs = x.subarray(i + 32 * j, i + 32 * j + 32);
      let sumX2 = 0;
      for (let l = 0; l < 32; l++) sumX2 = f32(sumX2 + f32(xs[l] * xs[l]));
      const avX = f32(Math.sqrt(f32(sumX2 / 32)));
      for (let l = 0; l < 32; l++) weights[l] = avX + Math.abs(xs[l]);
      const r = makeQkx2Quants(xs, weights, L.subarray(32 * j, 32 * j + 32), {
        nmax: 15,
        rmin: -1,
        rdelta: 0.1,
        nstep: 20,
      });
      scales[j] = r.scale;
      mins[j] = r.min;
      if (r.scale > maxScale) maxScale = r.scale;
      if (r.min > maxMin) maxMin = r.min;
    }
    const invScale = maxScale > 0 ? f32(63 / maxScale) : 0, invMin = maxMin > 0 ? f32(63 / maxMin) : 0;
    const s = o + 4;
    for (let j = 0; j < 8; j++) {
      const ls = Math.min(63, nearestInt(f32(invScale * scales[j])) & 255);
      const lm = Math.min(63, nearestInt(f32(invMin * mins[j])) & 255);
      if (j < 4) {
        out[s + j] = ls;
        out[s + j + 4] = lm;
      } else {
        out[s + j + 4] = (ls & 15) | ((lm & 15) << 4);
        out[s + j - 4] |= (ls >> 4) << 6;
        out[s + j] |= (lm >> 4) << 6;
      }
    }
    v.setFloat16(o, f32(maxScale / 63), true);
    v.setFloat16(o + 2, f32(maxMin / 63), true);
    const d = viaF16(f32(maxScale / 63)), dmin = viaF16(f32(maxMin / 63));
    for (let j = 0; j < 8; j++) {
      const [sc, m] = scaleMinK4(out, s, j);
      const dj = f32(d * sc);
      if (!dj) continue;
      const dm = f32(dmin * m);
      for (let l = 0; l < 32; l++) {
        L[32 * j + l] = Math.max(0, Math.min(15, nearestInt(f32(f32(x[i + 32 * j + l] + dm) / dj))));
      }
    }
    for (let j = 0; j < 4; j++) {
      for (let l = 0; l < 32; l++) out[o + 16 + 32 * j + l] = L[64 * j + l] | (L[64 * j + l + 32] << 4);
    }
  }
  return out;
}

/**
 * ggml's `make_qx_quants` with `rmse_type` 1 and no weights: the signed scale of one sub-block of
 * `x`, codes `l + nmax` in `L`, the best of 19 trial scales by the x²-weighted error.
 */
function makeQxQuants(x: Float32Array, L: Int8Array, nmax: number): number {
  let max = 0, amax = 0;
  for (let i = 0; i < x.length; i++) {
    if (Math.abs(x[i]) > amax) [amax, max] = [Math.abs(x[i]), x[i]];
  }
  if (amax < f32(1e-15)) {
    L.fill(0);
    return 0;
  }
  const clamp = (l: number): number => Math.max(-nmax, Math.min(nmax - 1, l));
  // The x²-weighted sums of x·l and l² for codes at `iscale`.
  const sums = (iscale: number): { sumlx: number; suml2: number } => {
    let sumlx = 0, suml2 = 0;
    for (let i = 0; i < x.length; i++) {
      const l = clamp(nearestInt(f32(iscale * x[i])));
      const w = f32(x[i] * x[i]);
      sumlx = f32(sumlx + f32(f32(w * x[i]) * l));
      suml2 = f32(suml2 + f32(f32(w * l) * l));
    }
    return { sumlx, suml2 };
  };
  const fill = (iscale: number): void => {
    for (let i = 0; i < x.length; i++) L[i] = nmax + clamp(nearestInt(f32(iscale * x[i])));
  };
  let iscale = f32(-nmax / max);
  fill(iscale);
  let { sumlx, suml2 } = sums(iscale);
  let scale = suml2 ? f32(sumlx / suml2) : 0;
  let best = f32(scale * sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = f32(-f32(nmax + f32(f32(0.1) * is)) / max);
    ({ sumlx, suml2 } = sums(iscale));
    if (suml2 > 0 && f32(sumlx * sumlx) > f32(best * suml2)) {
      fill(iscale);
      scale = f32(sumlx / suml2);
      best = f32(scale * sumlx);
    }
  }
  return scale;
}

function quantizeQ6_K(x: Float32Array): Uint8Array {
  const out = new Uint8Array((x.length / QK_K) * 210), v = view(out);
  const L = new Int8Array(QK_K), scales = new Float32Array(16);
  for (let i = 0, o = 0; i < x.length; i += QK_K, o += 210) {
    let maxScale = 0, maxAbsScale = 0;
    for (let ib = 0; ib < 16; ib++) {
      const scale = makeQxQuants(
        x.subarray(i + 16 * ib, i + 16 * ib + 16),
        L.subarray(16 * ib, 16 * ib + 16),
        32,
      );
      scales[ib] = scale;
      if (Math.abs(scale) > maxAbsScale) [maxAbsScale, maxScale] = [Math.abs(scale), scale];
    }
    if (maxAbsScale < f32(1e-15)) continue; // an all-zero block: zero bytes
    const iscale = f32(-128 / maxScale);
    v.setFloat16(o + 208, f32(1 / iscale), true);
    for (let ib = 0; ib < 16; ib++) {
      v.setInt8(o + 192 + ib, Math.min(127, nearestInt(f32(iscale * scales[ib]))));
    }
    const d16 = viaF16(f32(1 / iscale));
    for (let j = 0; j < 16; j++) {
      const d = f32(d16 * v.getInt8(o + 192 + j));
      if (!d) continue;
      for (let l = 0; l < 16; l++) {
        L[16 * j + l] = Math.max(-32, Math.min(31, nearestInt(f32(x[i + 16 * j + l] / d)))) + 32;
      }
    }
    for (let n = 0; n < 2; n++) {
      const ql = o + 64 * n, qh = o + 128 + 32 * n, base = 128 * n;
      for (let l = 0; l < 32; l++) {
        const q0 = L[base + l], q1 = L[base + l + 32], q2 = L[base + l + 64], q3 = L[base + l + 96];
        out[ql + l] = (q0 & 15) | ((q2 & 15) << 4);
        out[ql + l + 32] = (q1 & 15) | ((q3 & 15) << 4);
        out[qh + l] = (q0 >> 4) | ((q1 >> 4) << 2) | ((q2 >> 4) << 4) | ((q3 >> 4) << 6);
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The table

const plain = (name: "F32" | "F16" | "BF16"): { dequantize: Dequantizer; quantize: Quantizer } => ({
  dequantize: (bytes) => decodeFloats(name, bytes),
  quantize: (values) => encodeFloats(name, values).slice(),
});

/** Every ggml type GGUF files may hold (ggml.h `enum ggml_type`; numbers 4, 5 and 31–33, 36–38 are retired). */
export const GGML_TYPES: readonly GgmlType[] = [
  { id: 0, name: "F32", blockSize: 1, blockBytes: 4, ...plain("F32") },
  { id: 1, name: "F16", blockSize: 1, blockBytes: 2, ...plain("F16") },
  {
    id: 2,
    name: "Q4_0",
    blockSize: 32,
    blockBytes: 18,
    dequantize: dequantizeNibbles(Q4_0_LEVELS),
    quantize: quantizeQ4_0,
  },
  { id: 3, name: "Q4_1", blockSize: 32, blockBytes: 20, dequantize: dequantizeQ4_1 },
  {
    id: 6,
    name: "Q5_0",
    blockSize: 32,
    blockBytes: 22,
    dequantize: dequantizeQ5(false),
    quantize: quantizeQ5_0,
  },
  { id: 7, name: "Q5_1", blockSize: 32, blockBytes: 24, dequantize: dequantizeQ5(true) },
  { id: 8, name: "Q8_0", blockSize: 32, blockBytes: 34, dequantize: dequantizeQ8_0, quantize: quantizeQ8_0 },
  { id: 9, name: "Q8_1", blockSize: 32, blockBytes: 36 },
  { id: 10, name: "Q2_K", blockSize: QK_K, blockBytes: 84, dequantize: dequantizeQ2_K },
  { id: 11, name: "Q3_K", blockSize: QK_K, blockBytes: 110, dequantize: dequantizeQ3_K },
  {
    id: 12,
    name: "Q4_K",
    blockSize: QK_K,
    blockBytes: 144,
    dequantize: dequantizeK(false),
    quantize: quantizeQ4_K,
  },
  { id: 13, name: "Q5_K", blockSize: QK_K, blockBytes: 176, dequantize: dequantizeK(true) },
  {
    id: 14,
    name: "Q6_K",
    blockSize: QK_K,
    blockBytes: 210,
    dequantize: dequantizeQ6_K,
    quantize: quantizeQ6_K,
  },
  { id: 15, name: "Q8_K", blockSize: QK_K, blockBytes: 292 },
  { id: 16, name: "IQ2_XXS", blockSize: QK_K, blockBytes: 66 },
  { id: 17, name: "IQ2_XS", blockSize: QK_K, blockBytes: 74 },
  { id: 18, name: "IQ3_XXS", blockSize: QK_K, blockBytes: 98 },
  { id: 19, name: "IQ1_S", blockSize: QK_K, blockBytes: 50 },
  { id: 20, name: "IQ4_NL", blockSize: 32, blockBytes: 18, dequantize: dequantizeNibbles(IQ4_LEVELS) },
  { id: 21, name: "IQ3_S", blockSize: QK_K, blockBytes: 110 },
  { id: 22, name: "IQ2_S", blockSize: QK_K, blockBytes: 82 },
  { id: 23, name: "IQ4_XS", blockSize: QK_K, blockBytes: 136, dequantize: dequantizeIQ4_XS },
  { id: 24, name: "I8", blockSize: 1, blockBytes: 1 },
  { id: 25, name: "I16", blockSize: 1, blockBytes: 2 },
  { id: 26, name: "I32", blockSize: 1, blockBytes: 4 },
  { id: 27, name: "I64", blockSize: 1, blockBytes: 8 },
  { id: 28, name: "F64", blockSize: 1, blockBytes: 8 },
  { id: 29, name: "IQ1_M", blockSize: QK_K, blockBytes: 56 },
  { id: 30, name: "BF16", blockSize: 1, blockBytes: 2, ...plain("BF16") },
  { id: 34, name: "TQ1_0", blockSize: QK_K, blockBytes: 54 },
  { id: 35, name: "TQ2_0", blockSize: QK_K, blockBytes: 66 },
  { id: 39, name: "MXFP4", blockSize: 32, blockBytes: 17 },
  { id: 40, name: "NVFP4", blockSize: 64, blockBytes: 36 },
  { id: 41, name: "Q1_0", blockSize: 128, blockBytes: 18 },
  { id: 42, name: "Q2_0", blockSize: 64, blockBytes: 18 },
];

const BY_ID = new Map(GGML_TYPES.map((t) => [t.id, t]));
const BY_NAME = new Map(GGML_TYPES.map((t) => [t.name, t]));

/** The ggml type numbered `id`, or undefined for a number ggml does not define. */
export function ggmlType(id: number): GgmlType | undefined {
  return BY_ID.get(id);
}

/** The ggml type called `name` ("Q4_K"), or undefined. */
export function ggmlTypeNamed(name: string): GgmlType | undefined {
  return BY_NAME.get(name);
}

/** The name of ggml type `id` ("type 99" for a number ggml does not define). */
export function ggmlTypeName(id: number): string {
  return BY_ID.get(id)?.name ?? `type ${id}`;
}

/** Names of the types {@linkcode quantize} writes. */
export const QUANTIZE_TYPES: readonly string[] = GGML_TYPES.filter((t) => t.quantize).map((t) => t.name);

/** Names of the types {@linkcode dequantize} reads. */
export const DEQUANTIZE_TYPES: readonly string[] = GGML_TYPES.filter((t) => t.dequantize).map((t) => t.name);

/**
 * The `count` elements of ggml type `type` stored as `bytes`, as f32.
 *
 * @throws {RangeError} when the type has no dequantizer or `bytes` is not `count` elements' worth.
 */
export function dequantize(type: GgmlType, bytes: Uint8Array, count: number): Float32Array {
  if (!type.dequantize) throw new RangeError(`ggml type ${type.name} cannot be dequantized`);
  if (count % type.blockSize !== 0 || bytes.length !== (count / type.blockSize) * type.blockBytes) {
    throw new RangeError(`${bytes.length} bytes are not ${count} ${type.name} elements`);
  }
  return type.dequantize(bytes, count);
}

/** Options of {@linkcode quantize}. */
export interface QuantizeOptions {
  /** Elements per row (default all of them: one row); each row must be whole blocks, as ggml requires. */
  rowLength?: number;
}

/**
 * `rows` (row-major f32) as the bytes of ggml type `name` ("F32", "F16", "BF16", "Q8_0", "Q5_0",
 * "Q4_0", "Q4_K" or "Q6_K"), bit-identical to llama.cpp's `ggml_quantize_chunk` without an importance
 * matrix.
 *
 * @throws {RangeError} for another type, or rows that are not whole blocks of the type.
 */
export function quantize(name: string, rows: Float32Array, options: QuantizeOptions = {}): Uint8Array {
  const type = BY_NAME.get(name);
  if (!type?.quantize) {
    throw new RangeError(`cannot quantize to ${name}: the types are ${QUANTIZE_TYPES.join(", ")}`);
  }
  const rowLength = options.rowLength ?? rows.length;
  if (rowLength % type.blockSize !== 0 || rows.length % rowLength !== 0) {
    throw new RangeError(
      `rows of ${rowLength} elements (${rows.length} in all) are not whole ${type.name} blocks of ${type.blockSize}`,
    );
  }
  return type.quantize(rows);
}
