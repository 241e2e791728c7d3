/**
 * The `inheritune` command line: `deno task <command> [flags]`, or `deno run -A cli.ts <command>`.
 * A thin layer over the members' library functions; each command module exports its `COMMAND`
 * (flags, defaults and help) and `main(args)`.
 *
 * Exit codes: 0 ok; 2 for usage or input errors, printed as one line on stderr naming the problem;
 * 1 for other failures (also one line; set INHERITUNE_DEBUG=1 for the stack); 130 and 143 for a
 * training run that saved its checkpoint and stopped on SIGINT or SIGTERM.
 *
 * @module
 */
import type { CommandSpec } from "./cli/_flags.ts";
import { runCommand } from "./cli/_run.ts";

/** A command module. */
export interface CommandModule {
  /** Its flags, defaults and help. */
  COMMAND: CommandSpec;
  /** Runs the command with the arguments after its name. */
  main(args: string[]): Promise<void>;
}

/** Every command, by name, in the order the overview lists them: the tests walk this table. */
export const COMMANDS: Record<string, () => Promise<CommandModule>> = {
  prepare: () => import("./cli/prepare.ts"),
  tokenize: () => import("./cli/tokenize.ts"),
  train: () => import("./cli/train.ts"),
  inherit: () => import("./cli/inherit.ts"),
  eval: () => import("./cli/eval.ts"),
  analyze: () => import("./cli/analyze.ts"),
  generate: () => import("./cli/generate.ts"),
  export: () => import("./cli/export.ts"),
  serve: () => import("./cli/serve.ts"),
};

/** The list of commands, one line each. */
async function overview(): Promise<string> {
  const lines = [
    "Usage: deno task <command> [flags]   (deno task <command> --help for its flags)",
    "",
    "Commands:",
  ];
  for (const [name, load] of Object.entries(COMMANDS)) {
    lines.push(`  ${name.padEnd(10)}${(await load()).COMMAND.summary}`);
  }
  lines.push(
    "",
    "  test      the test suites (deno task test)",
    "  bench     the benchmarks (deno task bench)",
  );
  return lines.join("\n");
}

async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    console.log(await overview());
    return 0;
  }
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!load) {
    console.error(
      `inheritune: unknown command ${JSON.stringify(name)}; commands: ${Object.keys(COMMANDS).join(", ")}`,
    );
    return 2;
  }
  return await runCommand(`inheritune ${name}`, async () => (await load()).main(rest));
}

if (import.meta.main) {
  const code = await run(Deno.args);
  // A command that ended as asked but for a reason worth an exit code (train's SIGINT) sets Deno.exitCode.
  Deno.exit(code === 0 ? Deno.exitCode : code);
}
