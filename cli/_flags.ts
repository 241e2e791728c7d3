/**
 * Flag parsing shared by the commands. Each command's {@linkcode CommandSpec} lists its flags; a
 * {@linkcode FlagDef} carries the flag's type, default and bounds and is the only place they are
 * written: {@linkcode parseCommand} returns typed, defaulted, checked values (as Deno std's
 * `parseArgs` does) and {@linkcode helpText} shows the same defaults. A repeatable flag takes every
 * word after it up to the next flag, as argparse's `nargs="+"`: `--input a.txt b.txt --out c`.
 * Errors name the flag in one line.
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

/** What every flag definition has. */
interface FlagBase {
  /** One-letter alias. */
  short?: string;
  /** What it does, one line. */
  help: string;
}

/** What every flag that takes a value has. */
interface ValueFlagBase extends FlagBase {
  /** Placeholder of its value in the help and the README, e.g. "N" or "DIR". */
  arg?: string;
  /** Whether leaving it out is a usage error. */
  required?: boolean;
  /**
   * Whether it takes several values: every word after it up to the next flag, as argparse's
   * `nargs="+"` (`--input a.txt b.txt`), and it may be repeated; its value is then an array.
   */
  multiple?: boolean;
  /** Another flag (its name) without which this one is a usage error. */
  needs?: string;
}

/** A flag whose value is a string. */
export interface StringFlagDef extends ValueFlagBase {
  /** Kind of value. */
  type: "string";
  /**
   * The value when the flag is left out (an array for a `multiple` one). Leave it out when the
   * default depends on other flags or on the model, and state that rule in `help`.
   */
  default?: string | readonly string[];
  /** The value of the flag given without one (last, or before another flag): `--experiment`. */
  bare?: string;
  /** The values it accepts, when they are a fixed set. */
  choices?: readonly string[];
}

/** A flag whose value is a number: `int` ones must be integers. */
export interface NumberFlagDef extends ValueFlagBase {
  /** Kind of value. */
  type: "int" | "number";
  /** The value when the flag is left out (see {@linkcode StringFlagDef.default}). */
  default?: number;
  /** The value of the flag given without one: `--serve` alone. */
  bare?: number;
  /** Smallest value accepted. */
  min?: number;
  /** Largest value accepted. */
  max?: number;
}

/** A flag whose value is a comma-separated list (`--reinit ln_f,wpe`), read as an array. */
export interface ListFlagDef extends ValueFlagBase {
  /** Kind of value. */
  type: "list";
  /** The value when the flag is left out (see {@linkcode StringFlagDef.default}). */
  default?: readonly string[];
  /** The items it accepts, when they are a fixed set. */
  choices?: readonly string[];
}

/** A switch (`--json`): true when given, else false. */
export interface BooleanFlagDef extends FlagBase {
  /** Kind of value. */
  type: "boolean";
}

/**
 * One flag of a command: its type, default and bounds, and its line of help. It is the one place
 * each of these is written: {@linkcode parseCommand} returns the value typed, defaulted and checked,
 * and {@linkcode helpText} shows the same default.
 */
export type FlagDef = StringFlagDef | NumberFlagDef | ListFlagDef | BooleanFlagDef;

/** The flag naming a required model to read (`--model`, `--reference`): a folder or one file. */
export const MODEL_FLAG = {
  type: "string",
  arg: "MODEL",
  help: "model folder, .gguf, .safetensors or .bin file",
  required: true,
} as const satisfies FlagDef;

/** A command's flags and help text: the one place its command line is described. */
export interface CommandSpec {
  /** The task name, `deno task <name>`. */
  name: string;
  /** One line for the list of commands. */
  summary: string;
  /**
   * The command line after the name, as the README's command table shows it: `[...]` optional,
   * `A | B` either, `--flag X...` several values, each flag's value written as its `arg`.
   */
  usage: string;
  /** Flags by name, in help order. */
  flags: Record<string, FlagDef>;
  /** Example command lines. */
  examples: string[];
  /** More lines of help after the flags. */
  notes?: string[];
}

type Scalar<F> = F extends { type: "boolean" } ? boolean
  : F extends { type: "int" | "number" } ? number
  : F extends { type: "list" } ? string[]
  : string;
type Value<F> = F extends { multiple: true } ? (F extends { type: "list" } ? string[] : Scalar<F>[])
  : Scalar<F>;
type Filled<F> = F extends { type: "boolean" } | { default: unknown } | { required: true } ? Value<F>
  : Value<F> | undefined;

/**
 * The values {@linkcode parseCommand} returns for spec `S`: each flag's value as its type says,
 * undefined only for one left out that has no default and is not required.
 */
export type FlagValues<S extends CommandSpec> = { -readonly [K in keyof S["flags"]]: Filled<S["flags"][K]> };

/** How the help shows a default: lists with commas, the empty string as "". */
function showValue(value: string | number | readonly string[]): string {
  if (typeof value === "number") return String(value);
  if (typeof value === "string") return value === "" ? '""' : value;
  return value.join(",");
}

/** `--help` of `spec`: usage, summary, every flag with its default, examples. */
export function helpText(spec: CommandSpec): string {
  const rows = Object.entries(spec.flags).map(([name, f]) => {
    let left = `--${name}${f.short ? `, -${f.short}` : ""}`;
    let right = f.help;
    if (f.type !== "boolean") {
      if (f.arg) left += ` ${f.arg}${f.multiple ? "..." : ""}`;
      const shown = f.default ?? ("bare" in f ? f.bare : undefined);
      if (shown !== undefined) right += ` (default ${showValue(shown)})`;
      if (f.required) right += " (required)";
    }
    return [left, right];
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
 * Parses `args` against `spec`'s flags into typed values: defaults filled in, numbers checked
 * against their bounds, lists split, required flags and each flag's `needs` enforced. Unknown
 * flags and stray words are usage errors; words after a repeatable flag are its values, up to the
 * next word that starts with "-". With `--help` or `-h`, prints {@linkcode helpText} and returns
 * null.
 *
 * @throws {UsageError} naming the flag, in one line.
 */
export function parseCommand<S extends CommandSpec>(spec: S, args: string[]): FlagValues<S> | null {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(helpText(spec));
    return null;
  }
  const options: ParseArgsOptions = {};
  for (const [name, f] of Object.entries(spec.flags)) {
    options[name] = {
      type: f.type === "boolean" ? "boolean" : "string",
      ...(f.short ? { short: f.short } : {}),
      ...(f.type !== "boolean" && f.multiple ? { multiple: true } : {}),
    };
  }
  const raw = parseFlags(spreadValues(spec.flags, args), options);
  const values: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(spec.flags)) {
    const given = raw[name];
    if (f.type === "boolean") {
      values[name] = given === true;
      continue;
    }
    if (given === undefined) {
      if (f.required) throw new UsageError(`--${name} is required`);
      values[name] = Array.isArray(f.default) ? [...f.default] : f.default;
      continue;
    }
    if (f.needs !== undefined && raw[f.needs] === undefined) {
      throw new UsageError(`--${name} needs --${f.needs}`);
    }
    const read = (text: string) => flagValue(f, name, text);
    values[name] = Array.isArray(given) ? given.flatMap(read) : read(given as string);
  }
  return values as FlagValues<S>;
}

/** One value of flag `--name` read as `f` says (a list: its items). */
function flagValue(
  f: Exclude<FlagDef, BooleanFlagDef>,
  name: string,
  text: string,
): string | number | string[] {
  if (f.type !== "string" && f.type !== "list") {
    return numberFlag(text, name, { min: f.min, max: f.max, integer: f.type === "int" });
  }
  if (f.required && text === "") throw new UsageError(`--${name} is required`);
  const items = f.type === "list" ? text.split(",").map((s) => s.trim()).filter((s) => s !== "") : [text];
  const { choices } = f;
  for (const item of items) {
    if (choices && !choices.includes(item)) {
      throw new UsageError(`--${name} must be one of ${choices.join(", ")}, got ${JSON.stringify(item)}`);
    }
  }
  return f.type === "list" ? items : text;
}

/**
 * `args` with every value of a repeatable flag behind its own copy of the flag (`--input a b` →
 * `--input a --input b`), as parseArgs reads them, and a bare flag's `bare` value written out.
 * A word after a one-value flag's value is a usage error naming that flag.
 */
function spreadValues(flags: Record<string, FlagDef>, args: string[]): string[] {
  const byWord = new Map<string, [string, FlagDef]>();
  for (const [name, f] of Object.entries(flags)) {
    byWord.set(`--${name}`, [name, f]);
    if (f.short) byWord.set(`-${f.short}`, [name, f]);
  }
  const out: string[] = [];
  let list: string | undefined; // the repeatable flag whose values go on
  let single: string | undefined; // the one-value flag whose value was just read
  for (let i = 0; i < args.length; i++) {
    const word = args[i];
    if (word.startsWith("-")) {
      list = single = undefined;
      out.push(word);
      const eq = word.indexOf("=");
      const known = byWord.get(eq < 0 ? word : word.slice(0, eq));
      if (!known) {
        // parseArgs names the unknown flag (or the stray "-" or "--") before the words after it.
        out.push(...args.slice(i + 1));
        break;
      }
      const [name, f] = known;
      if (f.type === "boolean") continue;
      if (eq < 0) {
        const next = args[i + 1];
        if (next === undefined || next.startsWith("-")) {
          if ("bare" in f && f.bare !== undefined) {
            out[out.length - 1] = `${word}=${f.bare}`;
            continue;
          }
          // A flag next means the value is missing; anything else ("-1") parseArgs calls ambiguous.
          if (next === undefined || byWord.has(next.split("=")[0])) {
            throw new UsageError(`--${name} needs a value`);
          }
          continue;
        }
        out.push(next);
        i++;
      }
      if (f.multiple) list = eq < 0 ? word : word.slice(0, eq);
      else single = name;
    } else if (list !== undefined) {
      out.push(list, word);
    } else {
      throw new UsageError(
        single === undefined
          ? `unexpected ${JSON.stringify(word)}: each value follows its flag (see --help)`
          : `--${single} takes one value; unexpected ${JSON.stringify(word)} after it`,
      );
    }
  }
  return out;
}

type ParseArgsOptions = NonNullable<ParseArgsConfig["options"]>;

/** Parses `args` strictly (unknown flags and stray positionals are usage errors). */
function parseFlags(
  args: string[],
  options: ParseArgsOptions,
): Record<string, string | boolean | string[] | undefined> {
  try {
    const { values } = parseArgs({ args, options, strict: true, allowPositionals: false });
    return values as Record<string, string | boolean | string[] | undefined>;
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
  // Digit groups may be separated by "_", as in TypeScript: 1_000_000.
  const n = typeof value === "string" ? Number(value.replace(/(\d)_(?=\d)/g, "$1")) : NaN;
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

/** The inheritance flags of `train` and `inherit`, as {@linkcode parseCommand} returns them. */
export interface InheritFlags {
  /** `--layers`. */
  layers?: number;
  /** `--select`. */
  select?: string;
  /** `--blocks`. */
  blocks?: string[];
  /** `--only`. */
  only: string;
  /** `--reinit`. */
  reinit?: string[];
}

/**
 * `--layers`, `--select`, `--blocks`, `--only` and `--reinit` as inheritance options; `--select`
 * defaults to `list` when `--blocks` comes without `--layers`, else to the library's default.
 */
export function inheritFlags(f: InheritFlags, seed: number): InheritOptions {
  const blocks = f.blocks?.map((b) => {
    const n = Number(b);
    if (!Number.isInteger(n)) {
      throw new UsageError(`--blocks must list block indices, got ${JSON.stringify(b)}`);
    }
    return n;
  });
  const select = f.select ?? (blocks && f.layers === undefined ? "list" : INHERIT_DEFAULTS.select);
  return {
    layers: f.layers,
    select: select as Selection,
    blocks,
    only: f.only as InheritOptions["only"],
    reinit: f.reinit,
    seed,
  };
}
