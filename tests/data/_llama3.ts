/**
 * Llama 3's `tokenizer.json`: its licence keeps it out of the repository, so the tests that need
 * it run only where `INHERITUNE_LLAMA3_TOKENIZER` names a copy (the team's is at
 * `shared/tokenizers/llama3/tokenizer.json`); the suite itself reads nothing outside the checkout.
 */

/** Where it is, when the environment names it. */
export const LLAMA3: string | undefined = Deno.env.get("INHERITUNE_LLAMA3_TOKENIZER") || undefined;

/** Whether it is there. */
export const HAS_LLAMA3: boolean = LLAMA3 !== undefined &&
  await Deno.stat(LLAMA3).then(() => true, () => false);
