/**
 * How every command line of the project ends: the CLI's commands and the bench scripts.
 *
 * @module
 */

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

/**
 * Runs `main` as the command `label` and returns its exit code: 0 when it returns; when it
 * throws, one line `label: message` on stderr (the stack too with INHERITUNE_DEBUG=1) and 2 for
 * usage or input errors (a bad flag, a missing file, a shape the GPU rejects), else 1.
 */
export async function runCommand(label: string, main: () => Promise<void>): Promise<number> {
  try {
    await main();
    return 0;
  } catch (e) {
    const message = e instanceof Error ? e.message.split("\n")[0] : String(e);
    console.error(`${label}: ${message}`);
    if (Deno.env.get("INHERITUNE_DEBUG") && e instanceof Error) console.error(e.stack);
    return isUserError(e) ? 2 : 1;
  }
}
