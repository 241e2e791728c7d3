/**
 * What every family's GPU model shares: parameters and gradients allocated from the family's
 * parameter table, activations allocated from its activation table (llm.c's
 * `fill_in_activation_sizes`: one list, one allocation loop, one `destroy`), the token, target
 * and loss buffers, and the LM head fused with the loss (`classifier.ts`).
 *
 * @module
 */
import {
  classifierBackward,
  classifierForward,
  type ClassifierScratch,
  createArena,
  createClassifierScratch,
  createView,
  type Gpu,
  GpuError,
  lossMean,
  matmul,
  readAll,
  type Recorder,
  softcapForward,
  type View,
  write,
} from "@inheritune/kernels";
import { type ModelConfig, validateConfig } from "./config.ts";
import { numel, type ParamMap, paramMapProblem, type ParamSpec } from "./params.ts";
import type { BlockActivations, CreateOptions, LanguageModel, ParamGroup } from "./family.ts";

/** One activation buffer of a family's table. */
export interface ActivationSpec {
  /** Name; a per-block activation of block l is `name.l`. */
  name: string;
  /** Elements. */
  size: number;
  /** One buffer per block. */
  perLayer?: boolean;
  /** Allocated only when training (gradients flowing backward, backward scratch). */
  training?: boolean;
}

/** The parts of a GPU language model that do not depend on the family. */
export abstract class TransformerModel<C extends ModelConfig> implements LanguageModel {
  /** The device. */
  readonly gpu: Gpu;
  /** Architecture. */
  readonly config: C;
  /** The parameter table the buffers were allocated from. */
  readonly specs: readonly ParamSpec[];
  /** Sequences per batch. */
  readonly B: number;
  /** Tokens per sequence. */
  readonly T: number;
  /** Parameters by table name. */
  readonly params: Map<string, View> = new Map();
  /** Gradients by table name (empty when not training). */
  readonly grads: Map<string, View> = new Map();
  /** The parameters and gradients as whole buffers, by weight-decay group. */
  readonly groups: ParamGroup[] = [];
  /** Input token ids (B,T), u32; write a batch here before submitting. */
  readonly tokens: View;
  /** Target token ids (B,T), u32 (`IGNORE_INDEX` to skip a position). */
  readonly targets: View;
  /** Per-position cross-entropy (B,T) after a forward pass. */
  readonly losses: View;
  /** Mean of `losses` (1) after a forward pass. */
  readonly loss: View;
  /** Whether gradients and backward buffers were allocated. */
  readonly training: boolean;
  readonly #acts = new Map<string, View>();
  readonly #owned: View[] = [];
  readonly #clsLse: View; // (BT) log-sum-exp of the logits, saved for the backward pass
  readonly #clsScratch: ClassifierScratch;

  /** Validates the shapes, uploads `params` and allocates the tables' buffers. */
  protected constructor(
    gpu: Gpu,
    config: C,
    init: { specs: ParamSpec[]; activations: ActivationSpec[]; params: ParamMap; options: CreateOptions },
  ) {
    validateConfig(config);
    const { B, T } = init.options;
    if (!Number.isInteger(B) || B <= 0 || !Number.isInteger(T) || T <= 0) {
      throw new GpuError(`batch shape B=${B}, T=${T} must be positive integers`);
    }
    if (T > config.n_positions) {
      throw new GpuError(`context T=${T} exceeds the model's n_positions ${config.n_positions}`);
    }
    this.gpu = gpu;
    this.config = config;
    this.specs = init.specs;
    this.B = B;
    this.T = T;
    this.training = init.options.training ?? false;
    // Checkpoints are checked where they are read; parameters that do not fit here are a caller's bug.
    const problem = paramMapProblem(init.specs, init.params);
    if (problem) throw new Error(`createModel: ${problem}`);
    // Parameters and gradients in arenas, one pair per weight-decay group (see `createArena`).
    for (const decay of [true, false]) {
      const specs = init.specs.filter((s) => s.decay === decay);
      if (specs.length === 0) continue;
      const lengths = specs.map((s) => numel(s.shape));
      const what = decay ? "decayed" : "undecayed";
      const params = createArena(gpu, lengths, `${what} parameters`);
      const grads = this.training ? createArena(gpu, lengths, `${what} gradients`) : undefined;
      specs.forEach((s, i) => {
        this.params.set(s.name, params.views[i]);
        write(gpu, params.views[i], init.params.get(s.name)!);
        if (grads) this.grads.set(s.name, grads.views[i]);
      });
      this.groups.push({ decay, params: params.spans, grads: grads?.spans ?? [] });
      for (const v of [...params.spans, ...(grads?.spans ?? [])]) this.own(v);
    }
    for (const a of init.activations) {
      if (a.training && !this.training) continue;
      const names = a.perLayer
        ? Array.from({ length: config.n_layer }, (_, l) => `${a.name}.${l}`)
        : [a.name];
      for (const name of names) this.#acts.set(name, createView(gpu, a.size, name));
    }
    const BT = B * T;
    this.tokens = this.own(createView(gpu, BT, "tokens"));
    this.targets = this.own(createView(gpu, BT, "targets"));
    this.losses = this.own(createView(gpu, BT, "losses"));
    this.loss = this.own(createView(gpu, 1, "loss"));
    this.#clsLse = this.own(createView(gpu, BT, "classifier lse"));
    this.#clsScratch = createClassifierScratch(gpu, {
      BT,
      C: config.n_embd,
      V: config.vocab_size,
      maxChunk: init.options.maxVocabChunk,
    });
    this.own(this.#clsScratch.logits);
    this.own(this.#clsScratch.state);
  }

  /** Final normalised hidden states (BT,C), the LM head's input, after a forward pass. */
  abstract get hidden(): View;

  /** The LM head `(V,C)`: the token embedding when tied. */
  abstract get head(): View;

  /** The gradient of {@linkcode TransformerModel.head}. */
  protected abstract get headGrad(): View;

  /** Records the forward pass up to the final norm: `tokens` → `hidden`. */
  abstract recordHidden(rec: Recorder): void;

  /** The soft-cap `c` of the logits, `c·tanh(logit/c)`, where the family has one. */
  protected get logitSoftcap(): number | undefined {
    return undefined;
  }

  /** Records the forward pass: `tokens` → `losses` (per position) and `loss` (mean). */
  recordForward(rec: Recorder): void {
    this.recordHidden(rec);
    this.#recordClassifier(rec);
  }

  /**
   * Records the backward pass of the last recorded forward: accumulates into every gradient.
   * `dlossScale` is d(total loss)/d(each position's loss), e.g. 1/(B·T·accumulation steps).
   */
  abstract recordBackward(rec: Recorder, dlossScale: number): void;

  /** Views of block `l`'s saved input and output (BT,C) and its attention input `qkv`. */
  abstract blockActivations(l: number): BlockActivations;

  /** Activation `name` (of block `layer` for a per-block one). */
  protected act(name: string, layer?: number): View {
    const view = this.#acts.get(layer === undefined ? name : `${name}.${layer}`);
    if (!view) {
      throw new GpuError(`activation ${name}${layer === undefined ? "" : `.${layer}`} is not allocated`);
    }
    return view;
  }

  /** Registers a buffer that {@linkcode TransformerModel.destroy} releases; returns it. */
  protected own(view: View): View {
    this.#owned.push(view);
    return view;
  }

  /** Throws unless the model was created with its training buffers. */
  protected requireTraining(): void {
    if (!this.training) throw new GpuError("model was created without training buffers");
  }

  /** Records the LM head, the per-position losses and their mean, from {@linkcode hidden}. */
  #recordClassifier(rec: Recorder): void {
    const { config } = this;
    const BT = this.B * this.T;
    classifierForward(rec, {
      losses: this.losses,
      lse: this.#clsLse,
      inp: this.hidden,
      wte: this.head,
      targets: this.targets,
      scratch: this.#clsScratch,
      BT,
      C: config.n_embd,
      V: config.vocab_size,
      softcap: this.logitSoftcap,
    });
    lossMean(rec, { out: this.loss, losses: this.losses, n: BT });
  }

  /** Records the LM head's backward pass: `dhidden += ∂L/∂hidden`, the head's gradient accumulated. */
  protected recordClassifierBackward(rec: Recorder, dlossScale: number, dhidden: View): void {
    classifierBackward(rec, {
      dinp: dhidden,
      dwte: this.headGrad,
      inp: this.hidden,
      wte: this.head,
      targets: this.targets,
      lse: this.#clsLse,
      scratch: this.#clsScratch,
      BT: this.B * this.T,
      C: this.config.n_embd,
      V: this.config.vocab_size,
      dlossScale,
      softcap: this.logitSoftcap,
    });
  }

  /** Records zeroing every gradient (the start of an optimizer step): one clear per gradient buffer. */
  recordZeroGrads(rec: Recorder): void {
    for (const group of this.groups) for (const g of group.grads) rec.clear(g);
  }

  /** Records the logits (BT,V) of the last forward pass into `out` (small models: one binding). */
  recordLogits(rec: Recorder, out: View): void {
    matmul(rec, {
      out,
      a: this.hidden,
      b: this.head,
      M: this.B * this.T,
      N: this.config.vocab_size,
      K: this.config.n_embd,
      transB: true,
    });
    const cap = this.logitSoftcap;
    if (cap !== undefined) {
      softcapForward(rec, { logits: out, n: this.B * this.T * this.config.vocab_size, cap });
    }
  }

  /** Copies every parameter back to the CPU, by table name. */
  async downloadParams(): Promise<ParamMap> {
    return await downloadAll(this.gpu, this.params);
  }

  /** Copies every gradient back to the CPU, by table name. */
  async downloadGrads(): Promise<ParamMap> {
    return await downloadAll(this.gpu, this.grads);
  }

  /** Releases every buffer. */
  destroy(): void {
    const seen = new Set<GPUBuffer>();
    for (const v of [...this.#acts.values(), ...this.#owned]) {
      if (!seen.has(v.buffer)) v.buffer.destroy();
      seen.add(v.buffer);
    }
  }
}

/** Copies named views back to the CPU in one round trip. */
export async function downloadAll(gpu: Gpu, views: Map<string, View>): Promise<ParamMap> {
  const data = await readAll(gpu, [...views.values()]);
  return new Map([...views.keys()].map((name, i) => [name, data[i]]));
}
