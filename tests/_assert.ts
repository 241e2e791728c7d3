/** `assertThrows` in the shape of Deno std's, on top of `node:assert/strict`. */
import assert from "node:assert/strict";

/** Asserts that `fn` throws an error whose message matches `pattern`; returns that error. */
export function assertThrows(fn: () => unknown, pattern: RegExp): Error {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof Error, `expected an error matching ${pattern}, nothing was thrown`);
  assert.match(caught.message, pattern);
  return caught;
}

/** Asserts that `fn` rejects with an error whose message matches `pattern`; returns that error. */
export async function assertRejects(fn: () => Promise<unknown>, pattern: RegExp): Promise<Error> {
  let caught: unknown;
  try {
    await fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof Error, `expected a rejection matching ${pattern}, none came`);
  assert.match(caught.message, pattern);
  return caught;
}

/**
 * Asserts that `fn` rejects with a one-line error that starts with `path` and matches `pattern`,
 * as errors users can cause with a file must read.
 */
export async function assertRejectsNaming(
  fn: () => Promise<unknown>,
  path: string,
  pattern: RegExp,
): Promise<Error> {
  const e = await assertRejects(fn, pattern);
  assert.ok(e.message.startsWith(path), `${e.message} names ${path}`);
  assert.ok(!e.message.includes("\n"), `${e.message} is one line`);
  return e;
}
