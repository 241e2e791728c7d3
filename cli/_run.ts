/**
 * How every command line of the project ends: the CLI's commands and the bench scripts.
 *
 * @module
 */
import { UserError } from "@inheritune/data";

/**
 * Whether the user can fix what `e` reports, which exits 2: our {@linkcode UserError}s, Deno's
 * missing-file and permission errors, and parseArgs' errors (codes `ERR_PARSE_ARGS_*`).
 */
function isUserError(e: unknown): boolean {
  if (
    e instanceof UserError || e instanceof Deno.errors.NotFound || e instanceof Deno.errors.PermissionDenied
  ) {
    return true;
  }
  const code = (e as { code?: unknown } | null)?.code;
  return e instanceof Error && typeof code === "string" && code.startsWith("ERR_PARSE_ARGS");
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
