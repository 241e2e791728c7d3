/**
 * The LLaMA forward and backward passes and AdamW against PyTorch (Hugging Face Llama semantics):
 * fixtures written by `scripts/llama_fixtures.py`, `llama_gqa_tied` (grouped-query attention,
 * tied head), `llama_mha_untied` (multi-head attention, untied head, odd sizes) and `llama_c64`
 * (shapes for which a CPU adapter reads matmul, attention and norm operands from textures).
 */
import assert from "node:assert/strict";
import { assertClose, assertCloseNorm } from "../_util.ts";
import { assertEveryGradient, fixture, forwardBackward, twoSteps } from "./_fixtures.ts";

// maxVocabChunk 64 splits llama_gqa_tied's V=67 into two classifier chunks.
const CASES = [["llama_gqa_tied", [undefined, 64]], ["llama_mha_untied", [undefined]], ["llama_c64", [
  undefined,
]]] as const;

for (const [name, chunks] of CASES) {
  Deno.test(`LLaMA logits, loss and every gradient equal PyTorch's (${name})`, async () => {
    const fx = await fixture(name);
    assert.equal(fx.config.family, "llama");
    for (const maxVocabChunk of chunks) {
      const pass = await forwardBackward(fx, { maxVocabChunk });
      assertClose(pass.logits, fx.get("logits"), 1e-4, "logits");
      assertClose([pass.loss], fx.get("loss"), 1e-5, "loss");
      assertEveryGradient(fx, pass.grads);
    }
  });
}

for (const name of ["llama_gqa_tied", "llama_mha_untied"]) {
  Deno.test(`two LLaMA AdamW steps with clipping equal PyTorch's parameters (${name})`, async () => {
    const fx = await fixture(name);
    const { norms, losses, params } = await twoSteps(fx);
    assertClose(norms, [fx.get("gradnorm1")[0], fx.get("gradnorm2")[0]], 1e-4, "grad norms");
    assertClose(losses, [fx.get("loss")[0], fx.get("loss2")[0]], 1e-5, "losses");
    assert.ok(norms.some((n) => n > Number(fx.metadata.clip)), "the fixture exercises clipping");
    for (const [name, p] of params) assertCloseNorm(p, fx.get(`step2.${name}`), 1e-4, `step 2 ${name}`);
  });
}
