/**
 * Llama 3's `tokenizer.json` in the team's shared folder beside the repository: its licence keeps
 * it out of the repository, so the tests that need it run only where it is.
 */

/** Where it is. */
export const LLAMA3: URL = new URL("../../../shared/tokenizers/llama3/tokenizer.json", import.meta.url);

/** Whether it is there. */
export const HAS_LLAMA3: boolean = await Deno.stat(LLAMA3).then(() => true, () => false);
