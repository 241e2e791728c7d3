/**
 * AdamW on the GPU over a model's parameter buffers: first and second moments laid out as the
 * parameters (one buffer per parameter buffer), gradient clipping by the global norm computed on
 * the GPU (no readback), weight decay on 2-D weights only. Clearing, summing and updating run per
 * buffer, not per tensor (`ParamGroup`).
 *
 * @module
 */
import {
  adamwUpdate,
  clipScale,
  createView,
  type Gpu,
  gradNormSquared,
  read,
  type Recorder,
  type View,
  write,
  writeAdamwHyper,
} from "@inheritune/kernels";
import type { ParamMap } from "./params.ts";
import type { LanguageModel } from "./family.ts";
import { CheckpointError } from "./safetensors.ts";
import { OPTIMIZER_FILE } from "./train_state.ts";
import { downloadAll } from "./_transformer.ts";

/** AdamW hyper-parameters (PyTorch names; defaults as GPT-2/nanoGPT). */
export interface AdamWOptions {
  /** β1 (0.9). */
  beta1?: number;
  /** β2 (0.95). */
  beta2?: number;
  /** ε (1e-8). */
  eps?: number;
  /** Decoupled weight decay on 2-D weights (0.1). */
  weightDecay?: number;
  /** Clip the global gradient norm to this (1.0); 0 disables clipping. */
  gradClip?: number;
}

/** AdamW state of one model: moments on the GPU, the step counter on the CPU. */
export class AdamW {
  /** Completed optimizer steps. */
  step = 0;
  readonly #gpu: Gpu;
  readonly #m = new Map<string, View>(); // per tensor, views into #moments
  readonly #v = new Map<string, View>();
  /** Per parameter buffer: its span, its gradient's, both moments', and the group's decay. */
  readonly #spans: { param: View; grad: View; m: View; v: View; decay: boolean }[] = [];
  readonly #hyper: View;
  readonly #scale: View; // [clip scale, global norm]
  readonly #partials: View;
  readonly #opts: Required<AdamWOptions>;

  /** Allocates zero moments for every parameter of `model`. */
  constructor(model: LanguageModel, options: AdamWOptions = {}) {
    this.#gpu = model.gpu;
    this.#opts = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, gradClip: 1.0, ...options };
    for (const group of model.groups) {
      group.params.forEach((param, i) => {
        const m = createView(model.gpu, param.length, `m ${i}`);
        const v = createView(model.gpu, param.length, `v ${i}`);
        this.#spans.push({ param, grad: group.grads[i], m, v, decay: group.decay });
      });
    }
    // Each tensor's moments sit at its offset in its parameter buffer.
    for (const [name, p] of model.params) {
      const span = this.#spans.find((s) => s.param.buffer === p.buffer)!;
      const at = (moment: View): View => ({
        buffer: moment.buffer,
        offset: p.offset - span.param.offset,
        length: p.length,
      });
      this.#m.set(name, at(span.m));
      this.#v.set(name, at(span.v));
    }
    this.#hyper = createView(model.gpu, 16, "adamw hyper");
    this.#scale = createView(model.gpu, 2, "clip scale");
    this.#partials = createView(model.gpu, Math.max(1, this.#spans.length), "grad norm partials");
  }

  /** Records the update of every parameter of the model from its gradients. */
  record(rec: Recorder): void {
    const grads = this.#spans.map((s) => s.grad);
    if (this.#opts.gradClip > 0) {
      gradNormSquared(rec, { partials: this.#partials, grads });
      clipScale(rec, {
        scale: this.#scale,
        partials: this.#partials,
        count: grads.length,
        maxNorm: this.#opts.gradClip,
      });
    } else {
      write(this.#gpu, this.#scale, new Float32Array([1, 0]));
    }
    for (const { param, grad, m, v, decay } of this.#spans) {
      adamwUpdate(rec, {
        param,
        grad,
        m,
        v,
        hyper: this.#hyper,
        scale: this.#scale,
        weightDecay: decay ? this.#opts.weightDecay : 0,
        n: param.length,
      });
    }
  }

  /** Sets the learning rate of the next step and advances the step counter (call before submitting). */
  prepare(lr: number): void {
    this.step += 1;
    const { beta1, beta2, eps } = this.#opts;
    writeAdamwHyper(this.#gpu, this.#hyper, { lr, beta1, beta2, eps, step: this.step });
  }

  /** The global gradient norm of the last step (before clipping); waits for the GPU. */
  async gradNorm(): Promise<number> {
    return (await read(this.#gpu, this.#scale))[1];
  }

  /** Both moments, named `m.<param>` and `v.<param>`, for saving the training state. */
  async download(): Promise<ParamMap> {
    const named = new Map<string, View>();
    for (const [name, view] of this.#m) named.set(`m.${name}`, view);
    for (const [name, view] of this.#v) named.set(`v.${name}`, view);
    return await downloadAll(this.#gpu, named);
  }

  /**
   * Restores moments saved by {@linkcode AdamW.download} and the step counter.
   *
   * @throws {CheckpointError} when a moment of the model is missing or has another size.
   */
  restore(moments: ParamMap, step: number): void {
    for (const [prefix, views] of [["m", this.#m], ["v", this.#v]] as const) {
      for (const [name, view] of views) {
        const data = moments.get(`${prefix}.${name}`);
        if (!data || data.length !== view.length) {
          throw new CheckpointError(
            `${OPTIMIZER_FILE}: ${prefix}.${name} ${
              data ? `has ${data.length} elements, the model ${view.length}` : "is missing"
            }`,
          );
        }
        write(this.#gpu, view, data);
      }
    }
    this.step = step;
  }
}
