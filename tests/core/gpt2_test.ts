/**
 * The GPT-2 forward and backward passes and AdamW against PyTorch: fixtures written by
 * `scripts/gpt2_fixtures.py`, `gpt2_tiny` (L=2, NH=2, C=32, V=67, B=3, T=16) and `gpt2_c64`
 * (C=64, V=64, B=2: shapes for which a CPU adapter reads matmul and attention operands from
 * textures, while gpt2_tiny's go through the buffer kernels).
 */
import assert from "node:assert/strict";
import { createView, getGpu, read, Recorder, write } from "@inheritune/kernels";
import { AdamW, createModel, loadModel, readSafetensors } from "@inheritune/core";
import { assertClose, assertCloseNorm } from "../_util.ts";

const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;

async function fixture(name = "gpt2_tiny") {
  const model = await loadModel(FIXTURES + name);
  const { tensors, metadata } = await readSafetensors(FIXTURES + `${name}_expected.safetensors`);
  const get = (name: string): Float32Array => {
    const t = tensors.get(name);
    if (!t) throw new Error(`fixture lacks ${name}`);
    return t.data;
  };
  return { ...model, get, metadata, B: Number(metadata.B), T: Number(metadata.T) };
}

// maxVocabChunk 64 splits gpt2_tiny's V=67 into two classifier chunks, as GPT-2's vocabulary would be
for (const [name, chunks] of [["gpt2_tiny", [undefined, 64]], ["gpt2_c64", [undefined]]] as const) {
  Deno.test(`GPT-2 logits, loss and every gradient equal PyTorch's (${name})`, async () => {
    const gpu = await getGpu();
    const fx = await fixture(name);
    for (const maxVocabChunk of chunks) {
      const model = createModel(gpu, fx.config, fx.params, {
        B: fx.B,
        T: fx.T,
        training: true,
        maxVocabChunk,
      });
      write(gpu, model.tokens, Uint32Array.from(fx.get("tokens")));
      write(gpu, model.targets, Uint32Array.from(fx.get("targets")));
      const logits = createView(gpu, fx.B * fx.T * fx.config.vocab_size);
      const rec = new Recorder(gpu);
      model.recordZeroGrads(rec);
      model.recordForward(rec);
      model.recordLogits(rec, logits);
      model.recordBackward(rec, 1 / (fx.B * fx.T));
      rec.submit();
      assertClose(await read(gpu, logits), fx.get("logits"), 1e-4, "logits");
      assertClose(await read(gpu, model.loss), fx.get("loss"), 1e-5, "loss");
      const grads = await model.downloadGrads();
      for (const [name, g] of grads) assertCloseNorm(g, fx.get(`grad.${name}`), 1e-4, `grad ${name}`);
      model.destroy();
    }
  });
}

Deno.test("two AdamW steps with clipping equal PyTorch's parameters", async () => {
  const gpu = await getGpu();
  const fx = await fixture();
  const model = createModel(gpu, fx.config, fx.params, { B: fx.B, T: fx.T, training: true });
  const opt = new AdamW(model, {
    beta1: Number(fx.metadata.beta1),
    beta2: Number(fx.metadata.beta2),
    eps: Number(fx.metadata.eps),
    weightDecay: Number(fx.metadata.weight_decay),
    gradClip: Number(fx.metadata.clip),
  });
  write(gpu, model.tokens, Uint32Array.from(fx.get("tokens")));
  write(gpu, model.targets, Uint32Array.from(fx.get("targets")));
  const rec = new Recorder(gpu);
  model.recordZeroGrads(rec);
  model.recordForward(rec);
  model.recordBackward(rec, 1 / (fx.B * fx.T));
  opt.record(rec, model);
  const norms: number[] = [];
  const losses: number[] = [];
  for (let step = 0; step < 2; step++) {
    opt.prepare(Number(fx.metadata.lr));
    rec.submit();
    norms.push(await opt.gradNorm());
    losses.push((await read(gpu, model.loss))[0]);
  }
  assertClose([norms[0], norms[1]], [fx.get("gradnorm1")[0], fx.get("gradnorm2")[0]], 1e-4, "grad norms");
  assertClose([losses[0], losses[1]], [fx.get("loss")[0], fx.get("loss2")[0]], 1e-5, "losses");
  assert.ok(norms.some((n) => n > Number(fx.metadata.clip)), "the fixture exercises clipping");
  const params = await model.downloadParams();
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
  model.destroy();
});
