/**
 * The `inheritune` command line: `deno task <command> [flags]`. A thin layer over the members'
 * library functions; each command module exports `main(args): Promise<void>`.
 *
 * Exit codes: 0 ok; 2 for usage or input errors, printed as one line on stderr naming the problem;
 * 1 for other failures (also one line; set INHERITUNE_DEBUG=1 for the stack).
 *
 * @module
 */

import { runCommand } from "./cli/_run.ts";

type Command = () => Promise<{ main(args: string[]): Promise<void> }>;

const COMMANDS: Record<string, Command> = {
  prepare: () => import("./cli/prepare.ts"),
  train: () => import("./cli/train.ts"),
  eval: () => import("./cli/eval.ts"),
  serve: () => import("./cli/serve.ts"),
  inherit: () => import("./cli/inherit.ts"),
  analyze: () => import("./cli/analyze.ts"),
  generate: () => import("./cli/generate.ts"),
};

async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const load = name ? COMMANDS[name] : undefined;
  if (!load) {
    const names = Object.keys(COMMANDS).join(", ");
    console.error(`inheritune: unknown command ${JSON.stringify(name ?? "")}; commands: ${names}`);
    return 2;
  }
  return await runCommand(`inheritune ${name}`, async () => (await load()).main(rest));
}

if (import.meta.main) Deno.exit(await run(Deno.args));
