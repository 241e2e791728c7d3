/**
 * GPT-2's byte-to-character table of byte-level BPE: each byte written as a printable character
 * (printable Latin-1 as itself, the others from U+0100 up, so a space is "Ġ"), and its inverse.
 *
 * @module
 */

/** Characters by byte. */
export const BYTE_CHARS: readonly string[] = (() => {
  const printable = (b: number): boolean => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
  const chars: string[] = [];
  let shifted = 0;
  for (let b = 0; b < 256; b++) chars[b] = String.fromCodePoint(printable(b) ? b : 256 + shifted++);
  return chars;
})();

/** Bytes by character. */
export const CHAR_BYTES: ReadonlyMap<string, number> = new Map(BYTE_CHARS.map((c, b) => [c, b]));

/** The byte-level form of `bytes`. */
export function byteLevelString(bytes: Iterable<number>): string {
  let s = "";
  for (const b of bytes) s += BYTE_CHARS[b];
  return s;
}
