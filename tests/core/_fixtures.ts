/**
 * The PyTorch fixtures of the model tests (`scripts/gpt2_fixtures.py`, `scripts/llama_fixtures.py`,
 * `scripts/family_fixtures.py`) and the checks every family's tests make against them.
 */
import assert from "node:assert/strict";
import { createView, getGpu, read, Recorder, write } from "@inheritune/kernels";
import {
  AdamW,
  type Checkpoint,
  createModel,
  family,
  loadModel,
  type ParamMap,
  paramSpecs,
  readSafetensors,
} from "@inheritune/core";
import { assertClose, assertCloseNorm } from "../_util.ts";

/** The fixtures folder. */
export const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;

/**
 * The family fixtures of `scripts/family_fixtures.py`: each one's family, whether the GPU kernels
 * run all of its features at the fixture's T (the tests that run a model take those whose `runs`
 * is true: flipping it adds a family to them), and whether it has a GGUF file that loads as the same
 * configuration (llama3_tiny's states its RoPE scaling as llama.cpp's divisors, tested apart).
 */
export const FAMILY_FIXTURES = [
  { name: "llama3_tiny", family: "llama", runs: true, gguf: false },
  { name: "qwen2_tiny", family: "qwen2", runs: true, gguf: true },
  { name: "qwen3_tiny", family: "qwen3", runs: true, gguf: true },
  { name: "mistral_tiny", family: "mistral", runs: true, gguf: false },
  { name: "phi3_tiny", family: "phi3", runs: true, gguf: true },
  { name: "gemma3_text_tiny", family: "gemma3_text", runs: true, gguf: true },
] as const;

/** A fixture: the initial model, the expected tensors by name, the AdamW metadata and the batch shape. */
export interface Fixture extends Checkpoint {
  /** An expected tensor; throws when the fixture lacks it. */
  get(name: string): Float32Array;
  /** The fixture file's metadata (AdamW settings). */
  metadata: Record<string, string>;
  /** Batch size. */
  B: number;
  /** Sequence length. */
  T: number;
}

/** Loads fixture `name`: `tests/fixtures/<name>/` and `<name>_expected.safetensors`. */
export async function fixture(name: string): Promise<Fixture> {
  const model = await loadModel(FIXTURES + name);
  const { tensors, metadata } = await readSafetensors(FIXTURES + `${name}_expected.safetensors`);
  const expected = new Map([...tensors].map(([k, t]) => [k, t.data]));
  // The expected gradients and steps of a fused tensor (Phi-3's qkv_proj, gate_up_proj), split
  // into the parameter table's parts by rows, as loadModel splits the weights.
  const sizes = new Map(paramSpecs(model.config).map((s) => [s.name, s.shape.reduce((a, b) => a * b, 1)]));
  for (const { stored, parts } of family(model.config).hfTensors(model.config).fused) {
    for (const prefix of ["grad.", "step2."]) {
      const data = expected.get(prefix + stored);
      let at = 0;
      for (const part of parts) {
        const n = sizes.get(part)!;
        if (data) expected.set(prefix + part, data.subarray(at, at += n));
      }
    }
  }
  const get = (tensor: string): Float32Array => {
    const t = expected.get(tensor);
    if (!t) throw new Error(`fixture ${name} lacks ${tensor}`);
    return t;
  };
  return { ...model, get, metadata, B: Number(metadata.B), T: Number(metadata.T) };
}

/** What one forward and backward pass of a fixture's batch gave. */
export interface FixturePass {
  /** Logits (B,T,V). */
  logits: Float32Array;
  /** Mean loss. */
  loss: number;
  /** Every gradient, by parameter name. */
  grads: ParamMap;
}

/** Runs the fixture's batch forward and backward on the GPU. */
export async function forwardBackward(
  fx: Fixture,
  options: { maxVocabChunk?: number } = {},
): Promise<FixturePass> {
  const gpu = await getGpu();
  const model = createModel(gpu, fx.config, fx.params, { B: fx.B, T: fx.T, training: true, ...options });
  try {
    write(gpu, model.tokens, Uint32Array.from(fx.get("tokens")));
    write(gpu, model.targets, Uint32Array.from(fx.get("targets")));
    const logits = createView(gpu, fx.B * fx.T * fx.config.vocab_size);
    const rec = new Recorder(gpu);
    model.recordZeroGrads(rec);
    model.recordForward(rec);
    model.recordLogits(rec, logits);
    model.recordBackward(rec, 1 / (fx.B * fx.T));
    rec.submit();
    return {
      logits: await read(gpu, logits),
      loss: (await read(gpu, model.loss))[0],
      grads: await model.downloadGrads(),
    };
  } finally {
    model.destroy();
  }
}

/**
 * Asserts that `grads` holds a gradient for every parameter of the fixture, and no other, each
 * equal to PyTorch's. A parameter left out of the model's gradient table has no entry, which a loop
 * over the entries present cannot notice; one whose gradient the backward pass never writes stays
 * zero and fails the comparison.
 */
export function assertEveryGradient(fx: Fixture, grads: ParamMap): void {
  assert.deepEqual([...grads.keys()].sort(), [...fx.params.keys()].sort(), "gradient names");
  for (const [name, g] of grads) assertCloseNorm(g, fx.get(`grad.${name}`), 1e-4, `grad ${name}`);
}

/** What two AdamW steps on a fixture's batch gave. */
export interface FixtureSteps {
  /** Global gradient norms before clipping, per step. */
  norms: number[];
  /** Losses before each step. */
  losses: number[];
  /** Parameters after the second step. */
  params: ParamMap;
}

/** Takes two AdamW steps with the fixture's settings on its batch. */
export async function twoSteps(fx: Fixture): Promise<FixtureSteps> {
  const gpu = await getGpu();
  const model = createModel(gpu, fx.config, fx.params, { B: fx.B, T: fx.T, training: true });
  try {
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
    opt.record(rec);
    const norms: number[] = [];
    const losses: number[] = [];
    for (let step = 0; step < 2; step++) {
      opt.prepare(Number(fx.metadata.lr));
      rec.submit();
      norms.push(await opt.gradNorm());
      losses.push((await read(gpu, model.loss))[0]);
    }
    return { norms, losses, params: await model.downloadParams() };
  } finally {
    model.destroy();
  }
}

/**
 * Asserts a pass's logits (1e-5), loss (1e-5) and every gradient (1e-4) against the fixture's; the
 * tensors norm-wise, since logits near zero carry the f32 rounding of the largest.
 */
export function assertPassMatches(fx: Fixture, pass: FixturePass): void {
  assertCloseNorm(pass.logits, fx.get("logits"), 1e-5, "logits");
  assertClose([pass.loss], fx.get("loss"), 1e-5, "loss");
  assertEveryGradient(fx, pass.grads);
}

/**
 * Asserts two AdamW steps' gradient norms, losses and parameters (1e-4) against the fixture's. An
 * element whose first gradient is below 1e-5 of its tensor's largest is f32 rounding noise (Qwen2's
 * key bias on RoPE's slowest pair, which the softmax ignores), which Adam scales up to a whole step
 * of either size: such an element is only checked to have moved at most the two steps' 2·lr.
 */
export function assertStepsMatch(fx: Fixture, { norms, losses, params }: FixtureSteps): void {
  assertClose(norms, [fx.get("gradnorm1")[0], fx.get("gradnorm2")[0]], 1e-4, "grad norms");
  assertClose(losses, [fx.get("loss")[0], fx.get("loss2")[0]], 1e-5, "losses");
  assert.ok(norms.some((n) => n > Number(fx.metadata.clip)), "the fixture exercises clipping");
  const lr = Number(fx.metadata.lr);
  for (const [name, p] of params) {
    const grad = fx.get(`grad.${name}`), start = fx.params.get(name)!, expected = fx.get(`step2.${name}`);
    const largest = grad.reduce((m, g) => Math.max(m, Math.abs(g)), 0);
    const noise = (i: number): boolean => Math.abs(grad[i]) < 1e-5 * largest;
    for (let i = 0; i < p.length; i++) {
      if (noise(i)) assert.ok(Math.abs(p[i] - start[i]) <= 2 * lr * (1 + 1e-3), `step 2 ${name}[${i}]`);
    }
    const kept = (a: Float32Array): Float32Array => a.map((v, i) => noise(i) ? expected[i] : v);
    assertCloseNorm(kept(p), expected, 1e-4, `step 2 ${name}`);
  }
}
