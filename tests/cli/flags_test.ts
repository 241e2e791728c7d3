/** parseCommand: repeatable flags take several values; values come typed, defaulted and checked. */
import assert from "node:assert/strict";
import { type CommandSpec, helpText, parseCommand } from "../../cli/_flags.ts";
import { COMMAND as PREPARE } from "../../cli/prepare.ts";
import { COMMAND as EVAL } from "../../cli/eval.ts";

const SPEC = {
  name: "demo",
  summary: "a command of every kind of flag",
  usage: "--out DIR [--files FILE...] [--steps N] [--lr X] [--names A,B] [--mode M] [--port [P]]",
  flags: {
    out: { type: "string", arg: "DIR", help: "output", required: true },
    files: { type: "string", arg: "FILE", help: "inputs", multiple: true },
    steps: { type: "int", arg: "N", help: "steps", default: 10, min: 1, max: 1000 },
    lr: { type: "number", arg: "X", help: "rate", default: 6e-4, min: 0 },
    names: { type: "list", arg: "A,B", help: "names", default: ["a", "b"], choices: ["a", "b", "c"] },
    mode: { type: "string", arg: "M", help: "mode", choices: ["fast", "slow"] },
    port: { type: "int", arg: "[P]", help: "serve", bare: 8000, min: 0, max: 65535 },
    host: { type: "string", arg: "H", help: "address", default: "127.0.0.1", needs: "port" },
    json: { type: "boolean", help: "as JSON" },
  },
  examples: ["deno task demo --out x"],
} as const satisfies CommandSpec;

/** The usage error `args` raise, as "UsageError: message". */
function usageError(spec: CommandSpec, args: string[]): string {
  try {
    parseCommand(spec, args);
  } catch (e) {
    return `${(e as Error).name}: ${(e as Error).message}`;
  }
  throw new Error(`${args.join(" ")} parsed`);
}

Deno.test("a repeatable flag takes every value after it, as argparse's nargs='+', and may be repeated", () => {
  // The README's own notation, `prepare --input PATH...`: refused before repeatable flags took lists.
  const prepare = parseCommand(PREPARE, ["--input", "a.txt", "b.txt", "--out", "c"])!;
  assert.deepEqual(prepare.input, ["a.txt", "b.txt"]);
  assert.equal(prepare.out, "c");
  assert.deepEqual(parseCommand(PREPARE, ["-i", "a.txt", "b.txt", "-o", "c"])!.input, ["a.txt", "b.txt"]);
  assert.deepEqual(parseCommand(PREPARE, ["-i", "a", "-i", "b", "c", "-o", "d"])!.input, ["a", "b", "c"]);
  assert.deepEqual(parseCommand(PREPARE, ["--input=a", "b", "--out", "c"])!.input, ["a", "b"]);
  assert.deepEqual(parseCommand(PREPARE, ["--out", "c"])!.input, ["brown"]);

  const ev = parseCommand(EVAL, ["--model", "m1", "m2", "--model", "m3", "--tasks", "a.jsonl", "b.jsonl"])!;
  assert.deepEqual(ev.model, ["m1", "m2", "m3"]);
  assert.deepEqual(ev.tasks, ["a.jsonl", "b.jsonl"]);
  assert.deepEqual(
    parseCommand(EVAL, ["--tasks", "cloze,cloze-word", "x.jsonl", "--tasks", "y.jsonl"])!.tasks,
    ["cloze", "cloze-word", "x.jsonl", "y.jsonl"],
  );
});

Deno.test("a word starting with '-' ends a list; words after a one-value flag's value are errors", () => {
  assert.deepEqual(parseCommand(SPEC, ["--files", "a", "b", "--json", "--out", "o"])!.files, ["a", "b"]);
  assert.equal(
    usageError(SPEC, ["--out", "o", "p"]),
    'UsageError: --out takes one value; unexpected "p" after it',
  );
  assert.equal(
    usageError(SPEC, ["--steps", "5", "6", "--out", "o"]),
    'UsageError: --steps takes one value; unexpected "6" after it',
  );
  assert.equal(
    usageError(SPEC, ["stray", "--out", "o"]),
    'UsageError: unexpected "stray": each value follows its flag (see --help)',
  );
  assert.equal(
    usageError(SPEC, ["--json", "yes", "--out", "o"]),
    'UsageError: unexpected "yes": each value follows its flag (see --help)',
  );
  assert.match(usageError(SPEC, ["--bogus", "x", "--out", "o"]), /^UsageError: Unknown option '--bogus'/);
  // A value that starts with "-" goes after "=": the list stops at "-1".
  assert.match(
    usageError(SPEC, ["--lr", "-1", "--out", "o"]),
    /--lr needs a value; write one .* as --lr=-VALUE/,
  );
  assert.equal(parseCommand(SPEC, ["--lr=-0", "--out", "o"])!.lr, -0);
  for (const e of [["--out", "o", "--files"], ["--files", "--out", "o"]]) {
    assert.equal(usageError(SPEC, e), "UsageError: --files needs a value");
  }
});

Deno.test("values come typed and defaulted from the flag definitions, and are checked", () => {
  const d = parseCommand(SPEC, ["--out", "o"])!;
  assert.deepEqual(
    { ...d },
    {
      out: "o",
      files: undefined,
      steps: 10,
      lr: 6e-4,
      names: ["a", "b"],
      mode: undefined,
      port: undefined,
      host: "127.0.0.1",
      json: false,
    },
  );
  const f = parseCommand(SPEC, [
    "--out=o",
    "--steps",
    "1_000",
    "--lr",
    "0.5",
    "--names",
    "c, a",
    "--mode",
    "slow",
    "--json",
  ])!;
  assert.deepEqual([f.steps, f.lr, f.names, f.mode, f.json], [1000, 0.5, ["c", "a"], "slow", true]);
  // A default is a fresh copy: changing one run's list leaves the definition alone.
  d.names.push("c");
  assert.deepEqual(SPEC.flags.names.default, ["a", "b"]);

  const cases: [string[], string][] = [
    [[], "--out is required"],
    [["--out", ""], "--out is required"],
    [["--out", "o", "--steps", "0"], "--steps must be ≥ 1, got 0"],
    [["--out", "o", "--steps", "1001"], "--steps must be ≤ 1000, got 1001"],
    [["--out", "o", "--steps", "2.5"], '--steps must be an integer, got "2.5"'],
    [["--out", "o", "--lr", "fast"], '--lr must be a number, got "fast"'],
    [["--out", "o", "--mode", "medium"], '--mode must be one of fast, slow, got "medium"'],
    [["--out", "o", "--names", "a,d"], '--names must be one of a, b, c, got "d"'],
    [["--out", "o", "--host", "0.0.0.0"], "--host needs --port"],
    [["--out", "o", "--port", "70000"], "--port must be ≤ 65535, got 70000"],
  ];
  for (const [args, message] of cases) assert.equal(usageError(SPEC, args), `UsageError: ${message}`);
});

Deno.test("a flag with a bare value takes it when given alone, last or before another flag", () => {
  assert.equal(parseCommand(SPEC, ["--out", "o", "--port"])!.port, 8000);
  assert.equal(parseCommand(SPEC, ["--port", "--out", "o"])!.port, 8000);
  assert.equal(parseCommand(SPEC, ["--port", "9000", "--out", "o"])!.port, 9000);
  assert.equal(parseCommand(SPEC, ["--port=0", "--host", "::1", "--out", "o"])!.host, "::1");
});

Deno.test("--help shows each flag's placeholder, several values as '...', its default and 'required'", () => {
  const help = helpText(SPEC);
  assert.match(help, /^ {2}--out DIR +output \(required\)$/m);
  assert.match(help, /^ {2}--files FILE\.\.\. +inputs$/m);
  assert.match(help, /^ {2}--steps N +steps \(default 10\)$/m);
  assert.match(help, /^ {2}--lr X +rate \(default 0\.0006\)$/m);
  assert.match(help, /^ {2}--names A,B +names \(default a,b\)$/m);
  assert.match(help, /^ {2}--port \[P\] +serve \(default 8000\)$/m);
  assert.match(help, /^ {2}--json +as JSON$/m);
  assert.match(helpText(PREPARE), /^ {2}--input, -i PATH\.\.\. +.* \(default brown\)$/m);
  const silent = console.log;
  console.log = () => {};
  try {
    assert.equal(parseCommand(SPEC, ["--steps", "x", "-h"]), null);
  } finally {
    console.log = silent;
  }
});
