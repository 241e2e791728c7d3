/**
 * AdamW on the GPU over the parameter table: first and second moments per tensor, gradient
 * clipping by the global norm computed on the GPU (no readback), weight decay on 2-D weights only.
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
import type { LanguageModel } from "./model.ts";
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
  readonly #m = new Map<string, View>();
  readonly #v = new Map<string, View>();
  readonly #hyper: View;
  readonly #scale: View; // [clip scale, global norm]
  readonly #partials: View;
  readonly #opts: Required<AdamWOptions>;

  /** Allocates zero moments for every parameter of `model`. */
  constructor(model: LanguageModel, options: AdamWOptions = {}) {
    this.#gpu = model.gpu;
    this.#opts = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, gradClip: 1.0, ...options };
    for (const [name, p] of model.params) {
      this.#m.set(name, createView(model.gpu, p.length, `m ${name}`));
      this.#v.set(name, createView(model.gpu, p.length, `v ${name}`));
    }
    this.#hyper = createView(model.gpu, 16, "adamw hyper");
    this.#scale = createView(model.gpu, 2, "clip scale");
    this.#partials = createView(model.gpu, Math.max(1, model.grads.size * 64), "grad norm partials");
  }

  /** Records the update of every parameter of `model` from its gradients. */
  record(rec: Recorder, model: LanguageModel): void {
    const grads = [...model.grads.values()];
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
    for (const spec of model.specs) {
      const param = model.params.get(spec.name)!;
      adamwUpdate(rec, {
        param,
        grad: model.grads.get(spec.name)!,
        m: this.#m.get(spec.name)!,
        v: this.#v.get(spec.name)!,
        hyper: this.#hyper,
        scale: this.#scale,
        weightDecay: spec.decay ? this.#opts.weightDecay : 0,
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
