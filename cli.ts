/**
 * The `inheritune` command line: `deno task <command> [flags]`. A thin layer over the members'
 * library functions; each command module exports `main(args): Promise<void>`.
 *
 * Exit codes: 0 ok; 2 for usage or input errors, printed as one line on stderr naming the problem;
 * 1 for other failures (also one line; set INHERITUNE_DEBUG=1 for the stack).
 *
 * @module
 */

type Command = () => Promise<{ main(args: string[]): Promise<void> }>;

const COMMANDS: Record<string, Command> = {
  prepare: () => import("./data/cli.ts"),
  train: () => import("./cli/train.ts"),
  eval: () => import("./cli/eval.ts"),
  serve: () => import("./cli/serve.ts"),
  inherit: () => import("./cli/inherit.ts"),
  analyze: () => import("./cli/analyze.ts"),
};

/** Error names that mean the user can fix the input: exit 2. */
const USER_ERRORS = new Set([
  "UsageError",
  "ConfigError",
  "InheritError",
  "DataError",
  "CheckpointError",
  "GpuError",
  "NotFound",
  "PermissionDenied",
]);

function isUserError(e: unknown): e is Error {
  if (!(e instanceof Error)) return false;
  const code = (e as { code?: unknown }).code;
  return USER_ERRORS.has(e.name) || (typeof code === "string" && code.startsWith("ERR_PARSE_ARGS"));
}

async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const load = name ? COMMANDS[name] : undefined;
  if (!load) {
    const names = Object.keys(COMMANDS).join(", ");
    console.error(`inheritune: unknown command ${JSON.stringify(name ?? "")}; commands: ${names}`);
    return 2;
  }
  try {
    await (await load()).main(rest);
    return 0;
  } catch (e) {
    const message = e instanceof Error ? e.message.split("\n")[0] : String(e);
    console.error(`inheritune ${name}: ${message}`);
    if (Deno.env.get("INHERITUNE_DEBUG") && e instanceof Error) console.error(e.stack);
    return isUserError(e) ? 2 : 1;
  }
}

if (import.meta.main) Deno.exit(await run(Deno.args));
