"""Expected dequantized values for tests/core/ggml_quants_test.ts, from gguf's `quants.dequantize`
(llama.cpp's Python package, which implements every ggml block format with the formulas of
ggml-quants.c):

- for llama.cpp's own quantizer output in tests/fixtures/ggml_quants/ (`TYPE_N_{im,noim}_expected.bin`,
  see that folder's README.md): `TYPE_N_{im,noim}_dequantized.bin`, little-endian f32;
- blocks with extreme scales, for every type the loader reads: `extreme_TYPE.bin` (16 blocks) and
  `extreme_TYPE_dequantized.bin`. Quant bytes are random (seeded); the f16 scale fields take, one
  block each, 16 values that include ±65504 (the largest f16), the smallest normal, the smallest and
  largest subnormal, ±0 (negative zero) and ±1; the packed 4-, 6- and 8-bit sub-block scales are
  set so that the 16 blocks together hold every code of their width.

Run in a throwaway virtual environment (the test suite itself never needs Python):

    python3 -m venv /tmp/venvq && /tmp/venvq/bin/pip install gguf numpy
    /tmp/venvq/bin/python scripts/quant_fixtures.py
"""

import os

import gguf
import numpy as np
from gguf.quants import dequantize

DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "ggml_quants")
T = gguf.GGMLQuantizationType

# f16 bit patterns of the scale fields, one per block: the largest finite value, the smallest normal,
# the smallest and largest subnormal, both zeros, ±1 and some ordinary values.
F16 = [0x7BFF, 0xFBFF, 0x0400, 0x8400, 0x0001, 0x8001, 0x03FF, 0x0000, 0x8000, 0x3C00, 0xBC00, 0x3555,
       0x7800, 0x1400, 0x2E66, 0xD640]
BLOCKS = len(F16)


def put_f16(block, at, bits):
    block[at:at + 2] = np.frombuffer(np.uint16(bits).tobytes(), np.uint8)


def codes(b, n, width):
    """Sub-block scale codes of block b: over the 16 blocks, every `width`-bit code appears."""
    return [(b * n + j) % (1 << width) for j in range(n)]


def pack_k4(sc, m):
    """Q4_K/Q5_K's 12 bytes of eight 6-bit scales and mins (ggml-quants.c's packing)."""
    out = np.zeros(12, np.uint8)
    for j in range(8):
        if j < 4:
            out[j], out[j + 4] = sc[j], m[j]
        else:
            out[j + 4] = (sc[j] & 0xF) | ((m[j] & 0xF) << 4)
            out[j - 4] |= (sc[j] >> 4) << 6
            out[j] |= (m[j] >> 4) << 6
    return out


def pack_q3k(sc):
    """Q3_K's 12 bytes of sixteen 6-bit scales."""
    out = np.zeros(12, np.uint8)
    for j, l in enumerate(sc):
        if j < 8:
            out[j] = l & 0xF
        else:
            out[j - 8] |= (l & 0xF) << 4
        out[j % 4 + 8] |= (l >> 4) << (2 * (j // 4))
    return out


def block(qtype, b, rng):
    """Block b of the extreme-scale fixture of `qtype`."""
    size = gguf.GGML_QUANT_SIZES[qtype][1]
    blk = rng.integers(0, 256, size, dtype=np.uint8)
    d, dmin = F16[b], F16[(7 * b) % BLOCKS]  # block 8 has both scales -0
    if qtype in (T.Q4_0, T.Q5_0, T.Q8_0, T.IQ4_NL):
        put_f16(blk, 0, d)
    elif qtype in (T.Q4_1, T.Q5_1):
        put_f16(blk, 0, d)
        put_f16(blk, 2, dmin)
    elif qtype == T.Q2_K:  # scales[16] (4-bit scale | 4-bit min), qs[64], d, dmin
        blk[0:16] = [(b * 16 + j) % 256 for j in range(16)]
        put_f16(blk, 80, d)
        put_f16(blk, 82, dmin)
    elif qtype == T.Q3_K:  # hmask[32], qs[64], scales[12], d
        blk[96:108] = pack_q3k(codes(b, 16, 6))
        put_f16(blk, 108, d)
    elif qtype in (T.Q4_K, T.Q5_K):  # d, dmin, scales[12], ...
        put_f16(blk, 0, d)
        put_f16(blk, 2, dmin)
        blk[4:16] = pack_k4(codes(b, 8, 6), [63 - c for c in codes(b, 8, 6)])
    elif qtype == T.Q6_K:  # ql[128], qh[64], int8 scales[16], d
        blk[192:208] = codes(b, 16, 8)
        put_f16(blk, 208, d)
    elif qtype == T.IQ4_XS:  # d, scales_h (u16: 2 high bits each), scales_l[4] (low nibbles), qs[128]
        sc = codes(b, 8, 6)
        put_f16(blk, 0, d)
        put_f16(blk, 2, sum((s >> 4) << (2 * i) for i, s in enumerate(sc)))
        blk[4:8] = [(sc[2 * i] & 0xF) | ((sc[2 * i + 1] & 0xF) << 4) for i in range(4)]
    else:
        raise ValueError(qtype)
    return blk


def write(name, data):
    with open(os.path.join(DIR, name), "wb") as f:
        f.write(np.ascontiguousarray(data).tobytes())


def main():
    written = 0
    for name in sorted(os.listdir(DIR)):
        if not name.endswith("_expected.bin"):
            continue
        qtype = T[name.split("_")[0].upper() + "_" + name.split("_")[1].upper()]
        raw = np.fromfile(os.path.join(DIR, name), np.uint8)
        values = dequantize(raw, qtype).astype("<f4")
        inp = np.fromfile(os.path.join(DIR, name.replace("_expected", "_input")), "<f4")
        assert values.size == inp.size, name
        write(name.replace("_expected.bin", "_dequantized.bin"), values)
        print(f"{name}: {values.size} values, max |dequantized - input| {np.abs(values - inp).max():.4g}")
        written += 1
    rng = np.random.default_rng(23)
    for qtype in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K,
                  T.IQ4_NL, T.IQ4_XS):
        raw = np.concatenate([block(qtype, b, rng) for b in range(BLOCKS)])
        values = dequantize(raw, qtype).astype("<f4")
        write(f"extreme_{qtype.name.lower()}.bin", raw)
        write(f"extreme_{qtype.name.lower()}_dequantized.bin", values)
        zeros = int((values.view(np.uint32) == 0x80000000).sum())
        print(f"extreme {qtype.name}: {raw.size} bytes, {values.size} values, {zeros} negative zeros, "
              f"max |value| {np.abs(values).max():.4g}")
    print(f"{written} llama.cpp files dequantized")


if __name__ == "__main__":
    main()
