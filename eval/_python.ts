/**
 * Python's string rules where lm-evaluation-harness's task definitions rely on them and
 * JavaScript's differ: `str.isspace` (JavaScript's `\s` lacks U+001C–U+001F and U+0085 and has
 * U+FEFF), hence `strip`/`rstrip`/`split()`; `len` in code points, not UTF-16 units.
 *
 * @module
 */

/** One character for which Python's `str.isspace()` is true. */
const SPACE = "[\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";
const LEADING = new RegExp(`^${SPACE}+`);
const TRAILING = new RegExp(`${SPACE}+$`);
const RUNS = new RegExp(`${SPACE}+`);

/** Python's `s.rstrip()`. */
export function pyRstrip(s: string): string {
  return s.replace(TRAILING, "");
}

/** Python's `s.strip()`. */
export function pyStrip(s: string): string {
  return pyRstrip(s).replace(LEADING, "");
}

/** Python's `s.split()`: the runs of non-space characters. */
export function pySplit(s: string): string[] {
  return pyStrip(s).split(RUNS).filter((w) => w !== "");
}

/** Python's `len(s)`: code points. */
export function pyLen(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/**
 * Python's `s.capitalize()`: first character upper case (Python title-cases it, which differs
 * only for a few digraphs and ligatures such as "ǆ" and "ß"), the rest lower case.
 */
export function pyCapitalize(s: string): string {
  const [first, ...rest] = s;
  return first === undefined ? s : first.toUpperCase() + rest.join("").toLowerCase();
}
