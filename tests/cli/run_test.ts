/** Exit codes of runCommand: 2 for errors the user can fix, 1 for the rest. */
import assert from "node:assert/strict";
import { parseArgs } from "node:util";
import { UserError } from "@inheritune/data";
import { runCommand } from "../../cli/_run.ts";

const ROOT = new URL("../../", import.meta.url);

/**
 * Every error class the project exports: those of each workspace member's `mod.ts` (deno.json's
 * `workspace`) and of each module of `cli/`, found by walking their exports, so that a new error
 * class is tested without an edit here.
 */
async function exportedErrorClasses(): Promise<(new (message: string) => Error)[]> {
  const { workspace } = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  const modules = (workspace as string[]).map((dir) => new URL(`${dir}/mod.ts`, ROOT));
  for await (const entry of Deno.readDir(new URL("cli/", ROOT))) {
    if (entry.isFile && entry.name.endsWith(".ts")) modules.push(new URL(`cli/${entry.name}`, ROOT));
  }
  const classes = new Set<new (message: string) => Error>();
  for (const url of modules) {
    for (const value of Object.values(await import(url.href))) {
      if (typeof value === "function" && value.prototype instanceof Error) classes.add(value as never);
    }
  }
  return [...classes];
}

/** runCommand's exit code and the lines it printed when `main` throws `error`. */
async function exitFor(error: unknown): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => lines.push(args.join(" "));
  try {
    const code = await runCommand("test", () => Promise.reject(error));
    return { code, lines };
  } finally {
    console.error = original;
  }
}

Deno.test("every member's user error extends UserError and exits 2 with one line", async () => {
  const classes = await exportedErrorClasses();
  assert.ok(classes.includes(UserError), "the walk finds UserError itself");
  assert.ok(classes.length > 1, "the walk finds the members' own errors");
  for (const ErrorClass of classes) {
    const e = new ErrorClass("--x is required");
    assert.equal(e.name, ErrorClass.name, "the name printed for the error is its class's");
    assert.ok(e instanceof UserError, e.name);
    assert.deepEqual(await exitFor(e), { code: 2, lines: [`test: ${e.message}`] }, e.name);
  }
});

Deno.test("missing files, permissions and parseArgs errors exit 2; other errors exit 1", async () => {
  assert.equal((await exitFor(new Deno.errors.NotFound("no such file"))).code, 2);
  assert.equal((await exitFor(new Deno.errors.PermissionDenied("denied"))).code, 2);
  let parseError: unknown;
  try {
    parseArgs({ args: ["--bogus"], options: {} });
  } catch (e) {
    parseError = e;
  }
  assert.equal((await exitFor(parseError)).code, 2);
  assert.equal((await exitFor(new Error("a bug"))).code, 1);
  assert.equal((await exitFor(new TypeError("x is undefined"))).code, 1);
  assert.equal((await exitFor("a string")).code, 1);
});
