/** Exit codes of runCommand: 2 for errors the user can fix, 1 for the rest. */
import assert from "node:assert/strict";
import { parseArgs } from "node:util";
import { CheckpointError, ConfigError, InheritError } from "@inheritune/core";
import { DataError, UserError } from "@inheritune/data";
import { GpuError } from "@inheritune/kernels";
import { UsageError } from "../../cli/_flags.ts";
import { runCommand } from "../../cli/_run.ts";

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
  const errors = [
    new UserError("u"),
    new DataError("d"),
    new GpuError("g"),
    new ConfigError("c"),
    new CheckpointError("k"),
    new InheritError("i"),
    new UsageError("--x is required"),
  ];
  for (const e of errors) {
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
