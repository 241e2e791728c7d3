/**
 * The one place where text may be cut between words for every tokenizer here: before a plain
 * space that follows a letter or digit. No tokenizer's pre-tokenizer or vocabulary joins a letter
 * or digit to the space after it (each tokenizer says whether its vocabulary does, in
 * `splitsAtSpaces`), so the ids of a text equal those of its pieces cut there, the later pieces
 * encoded as continuations.
 *
 * @module
 */

const LETTER_OR_DIGIT = /^[\p{L}\p{N}]$/u;

/** Whether the character before index `i` of `s` is a letter or digit (`\p{L}` or `\p{N}`). */
export function letterOrDigitBefore(s: string, i: number): boolean {
  if (i <= 0) return false;
  const c = s.charCodeAt(i - 1);
  if (c < 0x80) return (c >= 48 && c <= 57) || ((c | 32) >= 97 && (c | 32) <= 122);
  const astral = c >= 0xdc00 && c <= 0xdfff && i >= 2;
  return LETTER_OR_DIGIT.test(s.slice(astral ? i - 2 : i - 1, i));
}

/** The last index `i > 0` of `s` where a space follows a letter or digit (a safe cut), or 0. */
export function lastWordBoundary(s: string): number {
  for (let i = s.lastIndexOf(" "); i > 0; i = s.lastIndexOf(" ", i - 1)) {
    if (letterOrDigitBefore(s, i)) return i;
  }
  return 0;
}
