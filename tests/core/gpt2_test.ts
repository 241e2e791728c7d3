/**
 * The GPT-2 forward and backward passes and AdamW against PyTorch: fixtures written by
 * `scripts/gpt2_fixtures.py`, `gpt2_tiny` (L=2, NH=2, C=32, V=67, B=3, T=16) and `gpt2_c64`
 * (C=64, V=64, B=2: shapes for which a CPU adapter reads matmul and attention operands from
 * textures, while gpt2_tiny's go through the buffer kernels).
 */
import assert from "node:assert/strict";
import { assertClose, assertCloseNorm } from "../_util.ts";
import { assertEveryGradient, fixture, forwardBackward, twoSteps } from "./_fixtures.ts";

// maxVocabChunk 64 splits gpt2_tiny's V=67 into two classifier chunks, as GPT-2's vocabulary would be
for (const [name, chunks] of [["gpt2_tiny", [undefined, 64]], ["gpt2_c64", [undefined]]] as const) {
  Deno.test(`GPT-2 logits, loss and every gradient equal PyTorch's (${name})`, async () => {
    const fx = await fixture(name);
    for (const maxVocabChunk of chunks) {
      const pass = await forwardBackward(fx, { maxVocabChunk });
      assertClose(pass.logits, fx.get("logits"), 1e-4, "logits");
      assertClose([pass.loss], fx.get("loss"), 1e-5, "loss");
      assertEveryGradient(fx, pass.grads);
    }
  });
}

Deno.test("two AdamW steps with clipping equal PyTorch's parameters", async () => {
  const fx = await fixture("gpt2_tiny");
  const { norms, losses, params } = await twoSteps(fx);
  assertClose([norms[0], norms[1]], [fx.get("gradnorm1")[0], fx.get("gradnorm2")[0]], 1e-4, "grad norms");
  assertClose([losses[0], losses[1]], [fx.get("loss")[0], fx.get("loss2")[0]], 1e-5, "losses");
  assert.ok(norms.some((n) => n > Number(fx.metadata.clip)), "the fixture exercises clipping");
  const C = fx.config.n_embd;
  const lr = Number(fx.metadata.lr);
  for (const [name, p] of params) {
    const want = fx.get(`step2.${name}`);
    if (!name.endsWith("attn.c_attn.bias")) {
      assertCloseNorm(p, want, 1e-4, `step 2 ${name}`);
      continue;
    }
    // The key bias's gradient is exactly zero in exact arithmetic (adding a constant to every key
    // leaves each query's softmax unchanged), so both implementations hold f32 rounding noise
    // there, which AdamW's g/√v turns into steps of up to ±lr. Those entries can only be bounded.
    const kBias = (i: number) => i >= C && i < 2 * C;
    assertCloseNorm(
      p.filter((_, i) => !kBias(i)),
      want.filter((_, i) => !kBias(i)),
      1e-4,
      `step 2 ${name} q,v`,
    );
    const start = fx.params.get(name)!;
    for (let i = C; i < 2 * C; i++) {
      assert.ok(Math.abs(p[i] - start[i]) <= 2 * lr * 1.0001, `${name}[${i}] moved > 2 lr`);
    }
  }
});
