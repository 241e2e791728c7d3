/**
 * The command lines users copy parse as written: the README's command table (its notation made
 * concrete), the README's shell blocks, and every command's --help usage and examples.
 */
import assert from "node:assert/strict";
import { COMMANDS } from "../../cli.ts";
import type { CommandSpec, FlagDef } from "../../cli/_flags.ts";
import { parseCommand } from "../../cli/_flags.ts";
import { COMMAND as EXPERIMENT } from "../../cli/experiment.ts";
import { runsExperiment } from "../../cli/train.ts";

const ROOT = new URL("../../", import.meta.url);
const README = await Deno.readTextFile(new URL("README.md", ROOT));
const TASKS: Record<string, string> = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT))).tasks;

/** The spec that parses `deno task <name> <args>`: train's own, or the experiment's. */
async function specFor(name: string, args: string[]): Promise<CommandSpec> {
  if (name === "train" && runsExperiment(args)) return EXPERIMENT;
  return (await COMMANDS[name]()).COMMAND;
}

/** Every spec with its usage line as the README writes it. */
async function specs(): Promise<CommandSpec[]> {
  const registered = await Promise.all(Object.values(COMMANDS).map(async (load) => (await load()).COMMAND));
  return [...registered, EXPERIMENT];
}

/** The words of a shell command line, quotes removed. */
function shellWords(line: string): string[] {
  return [...line.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]);
}

/** Parses `line` (`deno task <name> ...`) with its command's spec; returns the spec's name. */
async function parseLine(line: string): Promise<string> {
  const [deno, task, name, ...args] = shellWords(line);
  assert.deepEqual([deno, task], ["deno", "task"], line);
  assert.ok(Object.hasOwn(COMMANDS, name), `${line}: no command ${name}`);
  const spec = await specFor(name, args);
  assert.notEqual(silently(() => parseCommand(spec, args)), null, line);
  return spec.name;
}

/** `fn()` with console.log silenced (a --help example prints its help). */
function silently<T>(fn: () => T): T {
  const log = console.log;
  console.log = () => {};
  try {
    return fn();
  } finally {
    console.log = log;
  }
}

/** The values flag `f` accepts, when they are a fixed set. */
function choices(f: FlagDef): readonly string[] | undefined {
  return f.type === "string" || f.type === "list" ? f.choices : undefined;
}

/** A value of flag `f` for placeholder `arg` that parses: its default, its least, or a choice. */
function sample(f: Exclude<FlagDef, { type: "boolean" }>, arg: string): string {
  if (f.type === "int" || f.type === "number") return String(f.default ?? f.bare ?? f.min ?? 1);
  return choices(f)?.[0] ?? arg;
}

/**
 * A concrete command line from usage notation (`[...]` optional, `A | B` and `a|b` either,
 * `--flag X...` several values, a trailing `...` more flags): each flag with a value in place of
 * its placeholder, which must be the flag's `arg`, and two values for `X...`, which only a
 * repeatable flag may take. Returns the arguments and the flags that got two values.
 */
function fromNotation(spec: CommandSpec, notation: string): { args: string[]; several: string[] } {
  const words = notation.split(/\s+/).map((w) => w.replace(/^\[+|\]+$/g, ""))
    .flatMap((w) => w.startsWith("--") ? w.split("|") : [w])
    .filter((w) => w !== "" && w !== "|" && w !== "...");
  const args: string[] = [];
  const several: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const where = `${spec.name} usage, ${words.slice(0, i + 1).join(" ")}`;
    assert.match(words[i], /^--[a-z]/, `${where}: a value without its flag`);
    const name = words[i].slice(2);
    const f = spec.flags[name];
    assert.ok(f, `${where}: --help lists no --${name}`);
    args.push(words[i]);
    if (f.type === "boolean") continue;
    const value = words[++i];
    assert.ok(value !== undefined && !value.startsWith("--"), `${where}: --${name} without its value`);
    const placeholder = value.match(/^([A-Z][A-Z0-9_]*)(\.\.\.)?$/);
    if (!placeholder) {
      // Literal values, e.g. `--only attn|mlp`, `--blocks 0,1,7`: each a choice of the flag's.
      const alternatives = value.split("|");
      for (const v of alternatives.flatMap((a) => f.type === "list" ? a.split(",") : [a])) {
        assert.ok(choices(f)?.includes(v) ?? true, `${where}: ${v} is not one of ${choices(f)}`);
      }
      assert.ok(!f.multiple, `${where}: --${name} takes several values; write it ${f.arg}...`);
      args.push(alternatives[0]);
      continue;
    }
    const [, arg, dots] = placeholder;
    assert.equal(arg, f.arg?.replace(/^\[|\]$/g, ""), `${where}: --help writes --${name} ${f.arg}`);
    assert.equal(dots !== undefined, f.multiple === true, `${where}: "..." if and only if repeatable`);
    args.push(sample(f, arg));
    if (dots) {
      args.push(sample(f, arg));
      several.push(name);
    }
  }
  return { args, several };
}

/** The README's section `title`, up to the next heading of its level. */
function section(title: string): string {
  const start = README.indexOf(`\n## ${title}\n`);
  assert.ok(start >= 0, `README has no section ${title}`);
  const end = README.indexOf("\n## ", start + 1);
  return README.slice(start, end < 0 ? undefined : end);
}

Deno.test("the README's command table parses, each placeholder its flag's and X... a repeatable flag", async () => {
  const lines = [...section("Commands").matchAll(/^- `deno task ([a-z]+)([^`]*)`/gm)];
  const seen = new Set<string>();
  for (const [, name, rest] of lines) {
    if (!Object.hasOwn(COMMANDS, name)) {
      assert.ok(Object.hasOwn(TASKS, name), `README: deno task ${name} is neither a command nor a task`);
      continue;
    }
    const notation = rest.trim();
    const spec = await specFor(name, notation.split(/\s+/).filter((w) => w !== ""));
    const { args, several } = fromNotation(spec, notation);
    const values = parseCommand(spec, args) as Record<string, unknown>;
    for (const flag of several) {
      assert.equal((values[flag] as unknown[]).length, 2, `${name}: --${flag} X... takes two values`);
    }
    seen.add(spec.name);
  }
  assert.deepEqual([...seen].sort(), (await specs()).map((s) => s.name).sort(), "a line for every command");
});

Deno.test("every command's --help usage line, as notation, parses too", async () => {
  for (const spec of await specs()) {
    // The experiment's usage follows `train --experiment`: its first word is that flag's value.
    const usage = spec === EXPERIMENT ? `--experiment ${spec.usage}` : spec.usage;
    assert.notEqual(parseCommand(spec, fromNotation(spec, usage).args), null, spec.name);
  }
});

Deno.test("every --help example and every command in the README's shell blocks parses", async () => {
  const lines: string[] = [];
  for (const spec of await specs()) lines.push(...spec.examples);
  for (const [, block] of README.matchAll(/```sh\n([\s\S]*?)```/g)) {
    for (const line of block.split("\n")) {
      if (line.startsWith("deno task ")) lines.push(line.replace(/\s+#.*$/, ""));
    }
  }
  const parsed = new Set<string>();
  for (const line of lines) {
    const name = line.split(/\s+/)[2];
    if (Object.hasOwn(COMMANDS, name)) parsed.add(await parseLine(line));
    else assert.ok(Object.hasOwn(TASKS, name), `${line}: neither a command nor a task`);
  }
  assert.ok(parsed.size >= Object.keys(COMMANDS).length, [...parsed].join(", "));
});
