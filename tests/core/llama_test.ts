/**
 * The LLaMA forward and backward passes and AdamW against PyTorch (Hugging Face Llama semantics):
 * fixtures written by `scripts/llama_fixtures.py`, `llama_gqa_tied` (grouped-query attention,
 * tied head), `llama_mha_untied` (multi-head attention, untied head, odd sizes) and `llama_c64`
 * (shapes for which a CPU adapter reads matmul, attention and norm operands from textures).
 */
import assert from "node:assert/strict";
import { assertPassMatches, assertStepsMatch, fixture, forwardBackward, twoSteps } from "./_fixtures.ts";

// maxVocabChunk 64 splits llama_gqa_tied's V=67 into two classifier chunks.
const CASES = [["llama_gqa_tied", [undefined, 64]], ["llama_mha_untied", [undefined]], ["llama_c64", [
  undefined,
]]] as const;

for (const [name, chunks] of CASES) {
  Deno.test(`LLaMA logits, loss and every gradient equal PyTorch's (${name})`, async () => {
    const fx = await fixture(name);
    assert.equal(fx.config.family, "llama");
    for (const maxVocabChunk of chunks) assertPassMatches(fx, await forwardBackward(fx, { maxVocabChunk }));
  });
}

for (const name of ["llama_gqa_tied", "llama_mha_untied"]) {
  Deno.test(`two LLaMA AdamW steps with clipping equal PyTorch's parameters (${name})`, async () => {
    const fx = await fixture(name);
    assertStepsMatch(fx, await twoSteps(fx));
  });
}
