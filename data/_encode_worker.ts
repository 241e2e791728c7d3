/**
 * A tokenizer thread of `_encode_pool.ts`: the first message is the tokenizer's recipe (answered
 * "ready" once built and its hash checked), every later one a job, answered with its ids.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { type EncodeJob, encodePieces, type TokenizerRecipe, type WorkerReply } from "./_encode_pool.ts";
import { loadTokenizer, tokenizerFromFiles } from "./tokenizer.ts";
import type { Tokenizer } from "./tokenizer_types.ts";

let tokenizer: Tokenizer | null = null;

async function build(recipe: TokenizerRecipe): Promise<Tokenizer> {
  const built = "builtin" in recipe
    ? await loadTokenizer(recipe.builtin)
    : tokenizerFromFiles(new Map([[recipe.file, recipe.bytes]]), "worker");
  if (!built || built.hash !== recipe.hash) {
    throw new Error("the worker's tokenizer differs from the original");
  }
  return built;
}

self.onmessage = async (e: MessageEvent<TokenizerRecipe | (EncodeJob & { id: number })>): Promise<void> => {
  const reply = (r: WorkerReply, transfer: Transferable[] = []): void => self.postMessage(r, transfer);
  try {
    if (!tokenizer) {
      tokenizer = await build(e.data as TokenizerRecipe);
      return reply({ type: "ready" });
    }
    const job = e.data as EncodeJob & { id: number };
    const { ids, ends } = encodePieces(tokenizer, job);
    reply({ type: "done", id: job.id, ids, ends }, [ids.buffer, ends.buffer]);
  } catch (err) {
    reply({ type: "error", message: (err as Error).message });
  }
};
