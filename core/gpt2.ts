/**
 * GPT-2 on WebGPU: the parameter, gradient and activation buffers for one batch shape (B,T),
 * and the recorded forward and backward passes built from the kernels in `@inheritune/kernels`.
 *
 * Shapes: B batch, T time, C channels, NH heads, V vocabulary, L blocks, BT = B·T rows.
 * The forward pass computes per-position losses and their mean; the backward pass accumulates
 * every parameter gradient (call {@linkcode GPT2.recordZeroGrads} between optimizer steps).
 *
 * @module
 */
import {
  attentionBackward,
  attentionForward,
  classifierBackward,
  classifierForward,
  type ClassifierScratch,
  createAttentionScratch,
  createClassifierScratch,
  createView,
  encoderBackward,
  encoderForward,
  geluBackward,
  geluForward,
  type Gpu,
  GpuError,
  layernormBackward,
  layernormForward,
  linearBackward,
  linearForward,
  lossMean,
  matmul,
  readAll,
  type Recorder,
  residualForward,
  upload,
  type View,
} from "@inheritune/kernels";
import { type GPTConfig, validateConfig } from "./config.ts";
import { type BlockTensor, numel, type ParamMap, paramSpecs } from "./params.ts";

/** Activations of one block, saved by the forward pass for the backward pass. */
interface BlockActs {
  /** Block input, the residual stream (BT,C). */
  residual: View;
  ln1: View; // (BT,C)
  ln1Mean: View; // (BT)
  ln1Rstd: View; // (BT)
  qkv: View; // (BT,3C)
  atty: View; // (BT,C) attention output before c_proj
  lse: View; // (B,NH,T) attention log-sum-exp
  attproj: View; // (BT,C)
  residual2: View; // (BT,C) = residual + attproj
  ln2: View; // (BT,C)
  ln2Mean: View; // (BT)
  ln2Rstd: View; // (BT)
  fch: View; // (BT,4C)
  fchGelu: View; // (BT,4C)
  fcproj: View; // (BT,C)
}

/** Batch shape of a model instance. */
export interface BatchShape {
  /** Sequences per batch. */
  B: number;
  /** Tokens per sequence (≤ n_positions). */
  T: number;
}

/** Options of {@linkcode GPT2.create}. */
export interface CreateOptions extends BatchShape {
  /** Allocate gradients and backward scratch (false for evaluation only). */
  training?: boolean;
  /** Largest vocabulary chunk of the classifier (tests force several chunks with it). */
  maxVocabChunk?: number;
}

/** A GPT-2 instance on the GPU: parameters, optional gradients, activations for one (B,T). */
export class GPT2 {
  /** The device. */
  readonly gpu: Gpu;
  /** Architecture. */
  readonly config: GPTConfig;
  /** Sequences per batch. */
  readonly B: number;
  /** Tokens per sequence. */
  readonly T: number;
  /** Parameters by table name. */
  readonly params: Map<string, View>;
  /** Gradients by table name (empty when not training). */
  readonly grads: Map<string, View>;
  /** Input token ids (B,T), u32; write a batch here before submitting. */
  readonly tokens: View;
  /** Target token ids (B,T), u32 (`IGNORE_INDEX` to skip a position). */
  readonly targets: View;
  /** Per-position cross-entropy (B,T) after a forward pass. */
  readonly losses: View;
  /** Mean of `losses` (1) after a forward pass. */
  readonly loss: View;
  /** Final LayerNorm output (BT,C). */
  readonly lnf: View;

  #blocks: BlockActs[] = [];
  #residualOut: View; // (BT,C) output of the last block
  #lnfMean: View;
  #lnfRstd: View;
  #clsLse: View; // (BT)
  #clsScratch: ClassifierScratch;
  #attnScratch?: View; // (B,NH,T) attention backward delta
  // backward scratch
  #dres?: View; // (BT,C) gradient of the residual stream, flowing down through the blocks
  #dln?: View; // (BT,C)
  #datty?: View; // (BT,C)
  #dqkv?: View; // (BT,3C)
  #dfchGelu?: View; // (BT,4C)
  #dfch?: View; // (BT,4C)

  private constructor(gpu: Gpu, config: GPTConfig, params: ParamMap, options: CreateOptions) {
    validateConfig(config);
    const { B, T } = options;
    if (!Number.isInteger(B) || B <= 0 || !Number.isInteger(T) || T <= 0) {
      throw new GpuError(`batch shape B=${B}, T=${T} must be positive integers`);
    }
    if (T > config.n_positions) {
      throw new GpuError(`context T=${T} exceeds the model's n_positions ${config.n_positions}`);
    }
    this.gpu = gpu;
    this.config = config;
    this.B = B;
    this.T = T;
    const C = config.n_embd, BT = B * T, NH = config.n_head;
    this.params = new Map();
    this.grads = new Map();
    for (const spec of paramSpecs(config)) {
      const data = params.get(spec.name);
      if (!data) throw new GpuError(`parameter ${spec.name} is missing`);
      if (data.length !== numel(spec.shape)) {
        throw new GpuError(
          `parameter ${spec.name} has ${data.length} elements, expected ${numel(spec.shape)}`,
        );
      }
      this.params.set(spec.name, upload(gpu, data, spec.name));
      if (options.training) this.grads.set(spec.name, createView(gpu, data.length, `grad ${spec.name}`));
    }
    const act = (n: number, label: string): View => createView(gpu, n, label);
    this.tokens = act(BT, "tokens");
    this.targets = act(BT, "targets");
    for (let l = 0; l < config.n_layer; l++) {
      this.#blocks.push({
        residual: act(BT * C, `h${l}.residual`),
        ln1: act(BT * C, `h${l}.ln1`),
        ln1Mean: act(BT, `h${l}.ln1Mean`),
        ln1Rstd: act(BT, `h${l}.ln1Rstd`),
        qkv: act(BT * 3 * C, `h${l}.qkv`),
        atty: act(BT * C, `h${l}.atty`),
        lse: act(B * NH * T, `h${l}.lse`),
        attproj: act(BT * C, `h${l}.attproj`),
        residual2: act(BT * C, `h${l}.residual2`),
        ln2: act(BT * C, `h${l}.ln2`),
        ln2Mean: act(BT, `h${l}.ln2Mean`),
        ln2Rstd: act(BT, `h${l}.ln2Rstd`),
        fch: act(BT * 4 * C, `h${l}.fch`),
        fchGelu: act(BT * 4 * C, `h${l}.fchGelu`),
        fcproj: act(BT * C, `h${l}.fcproj`),
      } as BlockActs);
    }
    this.#residualOut = act(BT * C, "residualOut");
    this.lnf = act(BT * C, "lnf");
    this.#lnfMean = act(BT, "lnfMean");
    this.#lnfRstd = act(BT, "lnfRstd");
    this.losses = act(BT, "losses");
    this.#clsLse = act(BT, "clsLse");
    this.loss = act(1, "loss");
    this.#clsScratch = createClassifierScratch(gpu, {
      BT,
      C,
      V: config.vocab_size,
      maxChunk: options.maxVocabChunk,
    });
    if (options.training) {
      this.#attnScratch = createAttentionScratch(gpu, { B, T, NH });
      this.#dres = act(BT * C, "dres");
      this.#dln = act(BT * C, "dln");
      this.#datty = act(BT * C, "datty");
      this.#dqkv = act(BT * 3 * C, "dqkv");
      this.#dfchGelu = act(BT * 4 * C, "dfchGelu");
      this.#dfch = act(BT * 4 * C, "dfch");
    }
  }

  /** Uploads `params` and allocates everything one (B,T) batch needs. */
  static create(gpu: Gpu, config: GPTConfig, params: ParamMap, options: CreateOptions): GPT2 {
    return new GPT2(gpu, config, params, options);
  }

  #p(l: number, t: BlockTensor): View {
    return this.params.get(`h.${l}.${t}`)!;
  }

  #g(l: number, t: BlockTensor): View {
    return this.grads.get(`h.${l}.${t}`)!;
  }

  /** The input of block `l + 1` (or of the final LayerNorm): the residual stream after block `l`. */
  #blockOutput(l: number): View {
    return l + 1 < this.#blocks.length ? this.#blocks[l + 1].residual : this.#residualOut;
  }

  /** Records the forward pass: `tokens` → `losses` (per position) and `loss` (mean). */
  recordForward(rec: Recorder): void {
    const { B, T, config } = this;
    const C = config.n_embd, NH = config.n_head, V = config.vocab_size, BT = B * T;
    const eps = config.layer_norm_epsilon;
    const wte = this.params.get("wte.weight")!;
    encoderForward(rec, {
      out: this.#blocks[0]?.residual ?? this.#residualOut,
      tokens: this.tokens,
      wte,
      wpe: this.params.get("wpe.weight")!,
      B,
      T,
      C,
      V,
    });
    this.#blocks.forEach((a, l) => {
      layernormForward(rec, {
        out: a.ln1,
        mean: a.ln1Mean,
        rstd: a.ln1Rstd,
        inp: a.residual,
        weight: this.#p(l, "ln_1.weight"),
        bias: this.#p(l, "ln_1.bias"),
        N: BT,
        C,
        eps,
      });
      linearForward(rec, {
        out: a.qkv,
        inp: a.ln1,
        weight: this.#p(l, "attn.c_attn.weight"),
        bias: this.#p(l, "attn.c_attn.bias"),
        M: BT,
        K: C,
        N: 3 * C,
      });
      attentionForward(rec, { out: a.atty, lse: a.lse, qkv: a.qkv, B, T, C, NH });
      linearForward(rec, {
        out: a.attproj,
        inp: a.atty,
        weight: this.#p(l, "attn.c_proj.weight"),
        bias: this.#p(l, "attn.c_proj.bias"),
        M: BT,
        K: C,
        N: C,
      });
      residualForward(rec, { out: a.residual2, a: a.residual, b: a.attproj, n: BT * C });
      layernormForward(rec, {
        out: a.ln2,
        mean: a.ln2Mean,
        rstd: a.ln2Rstd,
        inp: a.residual2,
        weight: this.#p(l, "ln_2.weight"),
        bias: this.#p(l, "ln_2.bias"),
        N: BT,
        C,
        eps,
      });
      linearForward(rec, {
        out: a.fch,
        inp: a.ln2,
        weight: this.#p(l, "mlp.c_fc.weight"),
        bias: this.#p(l, "mlp.c_fc.bias"),
        M: BT,
        K: C,
        N: 4 * C,
      });
      geluForward(rec, { out: a.fchGelu, inp: a.fch, n: BT * 4 * C });
      linearForward(rec, {
        out: a.fcproj,
        inp: a.fchGelu,
        weight: this.#p(l, "mlp.c_proj.weight"),
        bias: this.#p(l, "mlp.c_proj.bias"),
        M: BT,
        K: 4 * C,
        N: C,
      });
      residualForward(rec, { out: this.#blockOutput(l), a: a.residual2, b: a.fcproj, n: BT * C });
    });
    layernormForward(rec, {
      out: this.lnf,
      mean: this.#lnfMean,
      rstd: this.#lnfRstd,
      inp: this.#residualOut,
      weight: this.params.get("ln_f.weight")!,
      bias: this.params.get("ln_f.bias")!,
      N: BT,
      C,
      eps,
    });
    classifierForward(rec, {
      losses: this.losses,
      lse: this.#clsLse,
      inp: this.lnf,
      wte,
      targets: this.targets,
      scratch: this.#clsScratch,
      BT,
      C,
      V,
    });
    lossMean(rec, { out: this.loss, losses: this.losses, n: BT });
  }

  /**
   * Records the backward pass of the last recorded forward: accumulates into every gradient.
   * `dlossScale` is d(total loss)/d(each position's loss), e.g. 1/(B·T·accumulation steps).
   */
  recordBackward(rec: Recorder, dlossScale: number): void {
    const dres = this.#dres, dln = this.#dln!, datty = this.#datty!, dqkv = this.#dqkv!;
    const dfchGelu = this.#dfchGelu!, dfch = this.#dfch!, attnScratch = this.#attnScratch!;
    if (!dres) throw new GpuError("model was created without training buffers");
    const { B, T, config } = this;
    const C = config.n_embd, NH = config.n_head, V = config.vocab_size, BT = B * T;
    const wte = this.params.get("wte.weight")!;
    rec.clear(dres);
    rec.clear(dln);
    classifierBackward(rec, {
      dinp: dln,
      dwte: this.grads.get("wte.weight")!,
      inp: this.lnf,
      wte,
      targets: this.targets,
      lse: this.#clsLse,
      scratch: this.#clsScratch,
      BT,
      C,
      V,
      dlossScale,
    });
    layernormBackward(rec, {
      dinp: dres,
      dweight: this.grads.get("ln_f.weight")!,
      dbias: this.grads.get("ln_f.bias")!,
      dout: dln,
      inp: this.#residualOut,
      weight: this.params.get("ln_f.weight")!,
      mean: this.#lnfMean,
      rstd: this.#lnfRstd,
      N: BT,
      C,
    });
    for (let l = this.#blocks.length - 1; l >= 0; l--) {
      const a = this.#blocks[l];
      // dres is d(loss)/d(block output) = d/d(fcproj) = d/d(residual2) through the skip connection.
      matmul(rec, {
        out: dfchGelu,
        a: dres,
        b: this.#p(l, "mlp.c_proj.weight"),
        M: BT,
        N: 4 * C,
        K: C,
        transB: true,
      });
      linearBackward(rec, {
        dweight: this.#g(l, "mlp.c_proj.weight"),
        dbias: this.#g(l, "mlp.c_proj.bias"),
        dout: dres,
        inp: a.fchGelu,
        weight: this.#p(l, "mlp.c_proj.weight"),
        M: BT,
        K: 4 * C,
        N: C,
      });
      geluBackward(rec, { dinp: dfch, inp: a.fch, dout: dfchGelu, n: BT * 4 * C });
      matmul(rec, {
        out: dln,
        a: dfch,
        b: this.#p(l, "mlp.c_fc.weight"),
        M: BT,
        N: C,
        K: 4 * C,
        transB: true,
      });
      linearBackward(rec, {
        dweight: this.#g(l, "mlp.c_fc.weight"),
        dbias: this.#g(l, "mlp.c_fc.bias"),
        dout: dfch,
        inp: a.ln2,
        weight: this.#p(l, "mlp.c_fc.weight"),
        M: BT,
        K: C,
        N: 4 * C,
      });
      layernormBackward(rec, {
        dinp: dres,
        dweight: this.#g(l, "ln_2.weight"),
        dbias: this.#g(l, "ln_2.bias"),
        dout: dln,
        inp: a.residual2,
        weight: this.#p(l, "ln_2.weight"),
        mean: a.ln2Mean,
        rstd: a.ln2Rstd,
        N: BT,
        C,
      });
      // dres is now d(loss)/d(residual2) = d/d(attproj).
      matmul(rec, {
        out: datty,
        a: dres,
        b: this.#p(l, "attn.c_proj.weight"),
        M: BT,
        N: C,
        K: C,
        transB: true,
      });
      linearBackward(rec, {
        dweight: this.#g(l, "attn.c_proj.weight"),
        dbias: this.#g(l, "attn.c_proj.bias"),
        dout: dres,
        inp: a.atty,
        weight: this.#p(l, "attn.c_proj.weight"),
        M: BT,
        K: C,
        N: C,
      });
      attentionBackward(rec, {
        dqkv,
        dout: datty,
        qkv: a.qkv,
        out: a.atty,
        lse: a.lse,
        delta: attnScratch,
        B,
        T,
        C,
        NH,
      });
      matmul(rec, {
        out: dln,
        a: dqkv,
        b: this.#p(l, "attn.c_attn.weight"),
        M: BT,
        N: C,
        K: 3 * C,
        transB: true,
      });
      linearBackward(rec, {
        dweight: this.#g(l, "attn.c_attn.weight"),
        dbias: this.#g(l, "attn.c_attn.bias"),
        dout: dqkv,
        inp: a.ln1,
        weight: this.#p(l, "attn.c_attn.weight"),
        M: BT,
        K: C,
        N: 3 * C,
      });
      layernormBackward(rec, {
        dinp: dres,
        dweight: this.#g(l, "ln_1.weight"),
        dbias: this.#g(l, "ln_1.bias"),
        dout: dln,
        inp: a.residual,
        weight: this.#p(l, "ln_1.weight"),
        mean: a.ln1Mean,
        rstd: a.ln1Rstd,
        N: BT,
        C,
      });
    }
    encoderBackward(rec, {
      dwte: this.grads.get("wte.weight")!,
      dwpe: this.grads.get("wpe.weight")!,
      dout: dres,
      tokens: this.tokens,
      B,
      T,
      C,
      V,
    });
  }

  /**
   * Views of block `l`'s saved activations after a forward pass, for diagnostics: its input
   * (residual stream) and output (BT,C), and its attention input `qkv` (BT,3C).
   */
  blockActivations(l: number): { input: View; qkv: View; output: View } {
    const a = this.#blocks[l];
    if (!a) throw new GpuError(`block ${l} does not exist: the model has ${this.#blocks.length}`);
    return { input: a.residual, qkv: a.qkv, output: this.#blockOutput(l) };
  }

  /** Records zeroing every gradient (the start of an optimizer step). */
  recordZeroGrads(rec: Recorder): void {
    for (const g of this.grads.values()) rec.clear(g);
  }

  /** Records the logits (BT,V) of the last forward pass into `out` (small models: one binding). */
  recordLogits(rec: Recorder, out: View): void {
    const { config } = this;
    matmul(rec, {
      out,
      a: this.lnf,
      b: this.params.get("wte.weight")!,
      M: this.B * this.T,
      N: config.vocab_size,
      K: config.n_embd,
      transB: true,
    });
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
    const views: View[] = [
      ...this.params.values(),
      ...this.grads.values(),
      this.tokens,
      this.targets,
      this.losses,
      this.loss,
      this.lnf,
      this.#residualOut,
      this.#lnfMean,
      this.#lnfRstd,
      this.#clsLse,
      this.#clsScratch.logits,
      this.#clsScratch.state,
    ];
    for (const a of this.#blocks) views.push(...Object.values(a));
    for (
      const v of [
        this.#attnScratch,
        this.#dres,
        this.#dln,
        this.#datty,
        this.#dqkv,
        this.#dfchGelu,
        this.#dfch,
      ]
    ) {
      if (v) views.push(v);
    }
    for (const v of views) {
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
