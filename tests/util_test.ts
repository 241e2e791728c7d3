/** The shared numeric assertions themselves: a NaN or ±Infinity on either side always fails. */
import assert from "node:assert/strict";
import { assertThrows } from "./_assert.ts";
import { assertClose, assertCloseNorm, firstNonFinite, maxNormRelError, maxRelError } from "./_util.ts";

const NON_FINITE = [NaN, Infinity, -Infinity];

Deno.test("assertClose fails on NaN or ±Infinity in actual at any position, naming it", () => {
  for (const bad of NON_FINITE) {
    for (let i = 0; i < 3; i++) {
      const actual = [1, 1, 1];
      actual[i] = bad;
      assertThrows(
        () => assertClose(actual, [1, 1, 1], 1e-6, "x"),
        new RegExp(`x: element ${i} is not finite`),
      );
      assertThrows(() => assertCloseNorm(actual, [1, 1, 1], 1e-6, "x"), /x: element \d is not finite/);
    }
  }
});

Deno.test("assertClose fails on NaN or ±Infinity in expected", () => {
  for (const bad of NON_FINITE) {
    assertThrows(() => assertClose([1, 1], [1, bad], 1, "e"), /e: element 1 is not finite/);
    assertThrows(() => assertCloseNorm([1, 1], [bad, 1], 1, "e"), /e: element 0 is not finite/);
  }
});

Deno.test("a NaN does not hide a larger error elsewhere: the error measures are Infinity", () => {
  assert.equal(maxRelError([2, NaN, 1], [1, 1, 1]), Infinity);
  assert.equal(maxNormRelError([2, NaN, 1], [1, 1, 1]), Infinity);
  assert.equal(maxRelError([NaN, 1, 1], [1, 1, 1]), Infinity);
  assert.equal(firstNonFinite([1, 2], [1, 2]), -1);
  assert.equal(firstNonFinite([1, 2], [1, -Infinity]), 1);
});

Deno.test("finite errors are measured and compared against the tolerance", () => {
  assert.equal(maxRelError([2, 1, 1], [1, 1, 1]), 1);
  assert.equal(maxNormRelError([1, 1.5], [1, 2]), 0.25);
  assertClose([1, 1.0000001], [1, 1], 1e-6, "close");
  assertThrows(
    () => assertClose([1, 1.1], [1, 1], 1e-6, "far"),
    /far: max relative error 1\.000e-1 > 0\.000001/,
  );
  assertThrows(() => assertCloseNorm([1, 1.5], [1, 2], 0.1, "n"), /n: max norm-wise relative error/);
  assertThrows(() => assertClose([1], [1, 1], 1, "len"), /length 1 != expected 2/);
});
