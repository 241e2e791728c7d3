/**
 * Flag parsing shared by the commands: `node:util` parseArgs plus typed number checks that fail
 * with one line naming the flag.
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { INHERIT_DEFAULTS, type InheritOptions, type Selection } from "@inheritune/core";
import { UserError } from "@inheritune/data";

/** A usage error: the command line is wrong. Printed as one line, exit code 2. */
export class UsageError extends UserError {
  /** Creates the error with its one-line message. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Option specs for {@linkcode parseFlags}. */
export type FlagSpec = NonNullable<ParseArgsConfig["options"]>;

/** One flag of a command: how parseArgs reads it, and its line of help. */
export interface FlagDef {
  /** A value (`--steps 100`) or a switch (`--json`). */
  type: "string" | "boolean";
  /** One-letter alias. */
  short?: string;
  /** Whether it may be repeated. */
  multiple?: boolean;
  /** Placeholder of its value in the help, e.g. "N" or "DIR". */
  arg?: string;
  /** What it does, one line. */
  help: string;
  /** The default the help shows: take it from the command's defaults object, never a literal. */
  default?: string | number | boolean;
}

/** The flag naming a required model to read (`--model`, `--reference`): a folder or one file. */
export const MODEL_FLAG: FlagDef = {
  type: "string",
  arg: "MODEL",
  help: "model folder, .gguf, .safetensors or .bin file (required)",
};

/** A command's flags and help text: the one place its command line is described. */
export interface CommandSpec {
  /** The task name, `deno task <name>`. */
  name: string;
  /** One line for the list of commands. */
  summary: string;
  /** The command line after the name, as the README's command table shows it. */
  usage: string;
  /** Flags by name, in help order. */
  flags: Record<string, FlagDef>;
  /** Example command lines. */
  examples: string[];
  /** More lines of help after the flags. */
  notes?: string[];
}

/** The values parsed for a command's flags. */
export type FlagValues<S extends CommandSpec> = Record<
  keyof S["flags"],
  string | boolean | string[] | undefined
>;

/** `--help` of `spec`: usage, summary, every flag with its default, examples. */
export function helpText(spec: CommandSpec): string {
  const rows = Object.entries(spec.flags).map(([name, f]) => {
    const left = `--${name}${f.short ? `, -${f.short}` : ""}${f.arg ? ` ${f.arg}` : ""}`;
    const dflt = f.default === undefined ? "" : ` (default ${f.default})`;
    return [left, `${f.help}${dflt}`];
  });
  rows.push(["--help, -h", "this text"]);
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  return [
    `Usage: deno task ${spec.name} ${spec.usage}`,
    "",
    spec.summary,
    "",
    ...rows.map(([left, right]) => `  ${left.padEnd(width)}${right}`),
    ...(spec.notes ? ["", ...spec.notes] : []),
    "",
    spec.examples.length > 1 ? "Examples:" : "Example:",
    ...spec.examples.map((e) => `  ${e}`),
  ].join("\n");
}

/**
 * Parses `args` against `spec`'s flags (strictly: unknown flags and stray words are usage
 * errors); with `--help` or `-h`, prints {@linkcode helpText} and returns null.
 */
export function parseCommand<S extends CommandSpec>(spec: S, args: string[]): FlagValues<S> | null {
  const options: FlagSpec = { help: { type: "boolean", short: "h" } };
  for (const [name, f] of Object.entries(spec.flags)) {
    options[name] = {
      type: f.type,
      ...(f.short ? { short: f.short } : {}),
      ...(f.multiple ? { multiple: true } : {}),
    };
  }
  if (args.includes("--help") || args.includes("-h")) {
    console.log(helpText(spec));
    return null;
  }
  return parseFlags(args, options) as FlagValues<S>;
}

/** Parses `args` strictly (unknown flags and stray positionals are usage errors). */
export function parseFlags<T extends FlagSpec>(
  args: string[],
  options: T,
): Record<keyof T, string | boolean | string[] | undefined> {
  try {
    const { values } = parseArgs({ args, options, strict: true, allowPositionals: false });
    return values as unknown as Record<keyof T, string | boolean | string[] | undefined>;
  } catch (e) {
    const message = (e as Error).message;
    // parseArgs takes "--lr -1" for a flag without its value; say how to write a negative one.
    const flag = message.match(/^Option '(--[\w-]+)' argument is ambiguous/)?.[1];
    throw new UsageError(
      flag
        ? `${flag} needs a value; write one that starts with "-" as ${flag}=-VALUE`
        : message.split("\n")[0],
    );
  }
}

/** Reads flag `--name` as a number within [min, max]; `fallback` when absent. */
export function numberFlag(
  value: unknown,
  name: string,
  options: { fallback?: number; min?: number; max?: number; integer?: boolean } = {},
): number {
  if (value === undefined) {
    if (options.fallback === undefined) throw new UsageError(`--${name} is required`);
    return options.fallback;
  }
  const n = Number(value);
  const kind = options.integer ? "an integer" : "a number";
  if (
    typeof value !== "string" || value.trim() === "" || !Number.isFinite(n) ||
    (options.integer && !Number.isInteger(n))
  ) {
    throw new UsageError(`--${name} must be ${kind}, got ${JSON.stringify(value)}`);
  }
  if (options.min !== undefined && n < options.min) {
    throw new UsageError(`--${name} must be ≥ ${options.min}, got ${n}`);
  }
  if (options.max !== undefined && n > options.max) {
    throw new UsageError(`--${name} must be ≤ ${options.max}, got ${n}`);
  }
  return n;
}

/** Reads an integer flag (see {@linkcode numberFlag}). */
export function intFlag(
  value: unknown,
  name: string,
  options: { fallback?: number; min?: number; max?: number } = {},
): number {
  return numberFlag(value, name, { ...options, integer: true });
}

/** Reads a required string flag. */
export function stringFlag(value: unknown, name: string): string {
  if (typeof value !== "string" || value === "") throw new UsageError(`--${name} is required`);
  return value;
}

/** Reads `--layers`, `--select`, `--blocks`, `--only` and `--reinit` into inheritance options. */
export function inheritFlags(f: Record<string, unknown>, seed: number): InheritOptions {
  const blocks = f.blocks === undefined ? undefined : String(f.blocks).split(",").map((b) => {
    const n = Number(b);
    if (b.trim() === "" || !Number.isInteger(n)) {
      throw new UsageError(`--blocks must list block indices, got ${JSON.stringify(f.blocks)}`);
    }
    return n;
  });
  const select =
    (f.select ?? (blocks && f.layers === undefined ? "list" : INHERIT_DEFAULTS.select)) as Selection;
  const only = (f.only ?? INHERIT_DEFAULTS.only) as InheritOptions["only"];
  const reinit = f.reinit === undefined ? undefined : String(f.reinit).split(",").map((s) => s.trim());
  return {
    layers: f.layers === undefined ? undefined : intFlag(f.layers, "layers"),
    select,
    blocks,
    only,
    reinit,
    seed,
  };
}
