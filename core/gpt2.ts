/**
 * GPT-2: its parameter table (Hugging Face names and layout), its `config.json`, and the model on
 * WebGPU: activations for one batch shape (B,T), and the recorded forward and backward passes
 * built from the kernels in `@inheritune/kernels`.
 *
 * Shapes: B batch, T time, C channels, NH heads, V vocabulary, L blocks, BT = B·T rows.
 * Linear weights are stored `[in, out]` (Conv1D), so `Y = X·W + b`; the LM head is tied to `wte`.
 * The forward pass computes per-position losses and their mean; the backward pass accumulates
 * every parameter gradient (call `recordZeroGrads` between optimizer steps).
 *
 * @module
 */
import {
  attentionBackward,
  attentionForward,
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
  matmul,
  type Recorder,
  residualForward,
  type View,
} from "@inheritune/kernels";
import { type GPT2Config, numberReader } from "./config.ts";
import type { BlockActivations, CreateOptions, Family } from "./family.ts";
import type { ParamMap, ParamSpec } from "./params.ts";
import { type ActivationSpec, TransformerModel } from "./_transformer.ts";

// ---------------------------------------------------------------------------------------------
// The parameter table

/** The per-block tensor names after `h.{i}.`, in table order. */
export const GPT2_BLOCK_TENSORS = [
  "ln_1.weight",
  "ln_1.bias",
  "attn.c_attn.weight",
  "attn.c_attn.bias",
  "attn.c_proj.weight",
  "attn.c_proj.bias",
  "ln_2.weight",
  "ln_2.bias",
  "mlp.c_fc.weight",
  "mlp.c_fc.bias",
  "mlp.c_proj.weight",
  "mlp.c_proj.bias",
] as const;

/** One of {@linkcode GPT2_BLOCK_TENSORS}. */
export type GPT2BlockTensor = (typeof GPT2_BLOCK_TENSORS)[number];

/**
 * llama.cpp's names (GGUF architecture `gpt2`) of the table's tensors, by key (a block's after
 * `blk.{i}.`). The four Conv1D weights are stored transposed, `[out, in]`, as llama.cpp's
 * converter writes them.
 */
export const GPT2_GGUF_NAMES: Readonly<Record<string, { name: string; transposed?: true }>> = {
  "wte.weight": { name: "token_embd.weight" },
  "wpe.weight": { name: "position_embd.weight" },
  "ln_1.weight": { name: "attn_norm.weight" },
  "ln_1.bias": { name: "attn_norm.bias" },
  "attn.c_attn.weight": { name: "attn_qkv.weight", transposed: true },
  "attn.c_attn.bias": { name: "attn_qkv.bias" },
  "attn.c_proj.weight": { name: "attn_output.weight", transposed: true },
  "attn.c_proj.bias": { name: "attn_output.bias" },
  "ln_2.weight": { name: "ffn_norm.weight" },
  "ln_2.bias": { name: "ffn_norm.bias" },
  "mlp.c_fc.weight": { name: "ffn_up.weight", transposed: true },
  "mlp.c_fc.bias": { name: "ffn_up.bias" },
  "mlp.c_proj.weight": { name: "ffn_down.weight", transposed: true },
  "mlp.c_proj.bias": { name: "ffn_down.bias" },
  "ln_f.weight": { name: "output_norm.weight" },
  "ln_f.bias": { name: "output_norm.bias" },
};

function blockSpec(config: GPT2Config, layer: number, key: GPT2BlockTensor): ParamSpec {
  const C = config.n_embd;
  const part = key.startsWith("ln_1.") || key.startsWith("attn.") ? "attn" : "mlp";
  const spec = (shape: number[], init: ParamSpec["init"], decay = false): ParamSpec => ({
    name: `h.${layer}.${key}`,
    shape,
    layer,
    key,
    part,
    init,
    decay,
  });
  switch (key) {
    case "ln_1.weight":
    case "ln_2.weight":
      return spec([C], "ones");
    case "ln_1.bias":
    case "ln_2.bias":
    case "attn.c_proj.bias":
    case "mlp.c_proj.bias":
      return spec([C], "zeros");
    case "attn.c_attn.weight":
      return spec([C, 3 * C], "normal", true);
    case "attn.c_attn.bias":
      return spec([3 * C], "zeros");
    case "attn.c_proj.weight":
      return spec([C, C], "residual", true);
    case "mlp.c_fc.weight":
      return spec([C, 4 * C], "normal", true);
    case "mlp.c_fc.bias":
      return spec([4 * C], "zeros");
    case "mlp.c_proj.weight":
      return spec([4 * C, C], "residual", true);
  }
}

function outside(name: string, shape: number[], init: ParamSpec["init"], decay: boolean): ParamSpec {
  return { name, shape, layer: -1, key: name, part: "other", init, decay };
}

/** The GPT-2 parameter table of `config`: `wte, wpe`, then each block, then `ln_f`. */
export function gpt2ParamSpecs(config: GPT2Config): ParamSpec[] {
  const C = config.n_embd;
  const specs = [
    outside("wte.weight", [config.vocab_size, C], "normal", true),
    outside("wpe.weight", [config.n_positions, C], "normal", true),
  ];
  for (let l = 0; l < config.n_layer; l++) {
    for (const key of GPT2_BLOCK_TENSORS) specs.push(blockSpec(config, l, key));
  }
  specs.push(outside("ln_f.weight", [C], "ones", false), outside("ln_f.bias", [C], "zeros", false));
  return specs;
}

/** GPT-2 in `model.ts`'s registry. */
export const GPT2_FAMILY: Family<GPT2Config> = {
  title: "GPT-2",
  paramSpecs: gpt2ParamSpecs,
  blockParamName: (layer, key) => `h.${layer}.${key}`,
  create: (gpu, config, params, options) => GPT2.create(gpu, config, params, options),
  toHfConfig: (config) => ({
    model_type: "gpt2",
    architectures: ["GPT2LMHeadModel"],
    n_layer: config.n_layer,
    n_head: config.n_head,
    n_embd: config.n_embd,
    vocab_size: config.vocab_size,
    n_positions: config.n_positions,
    n_ctx: config.n_positions,
    layer_norm_epsilon: config.layer_norm_epsilon,
    activation_function: "gelu_new",
    tie_word_embeddings: true,
    tokenizer: config.tokenizer ?? "gpt2",
  }),
  fromHfConfig(c, fail) {
    if (c.activation_function !== undefined && c.activation_function !== "gelu_new") {
      fail(`activation_function ${c.activation_function} is not gelu_new (tanh GELU)`);
    }
    const size = numberReader((key) => c[key], fail);
    const config: GPT2Config = {
      n_layer: size("n_layer"),
      n_head: size("n_head"),
      n_embd: size("n_embd"),
      vocab_size: size("vocab_size"),
      n_positions: size("n_positions", c.n_ctx as number | undefined),
      layer_norm_epsilon: size("layer_norm_epsilon", 1e-5),
      tokenizer: (c.tokenizer ?? "gpt2") as string,
    };
    if (typeof config.tokenizer !== "string") fail(`tokenizer must be a string`);
    if (c.n_inner !== undefined && c.n_inner !== null && c.n_inner !== 4 * config.n_embd) {
      fail(`n_inner ${c.n_inner} is not 4·n_embd = ${4 * config.n_embd}`);
    }
    return config;
  },
  hfTensors: () => ({
    fused: [],
    tableName: (stored) => stored.startsWith("transformer.") ? stored.slice(12) : stored,
    tied: {
      alias: "lm_head.weight",
      table: "wte.weight",
      aliasAlone: false,
      differs: "only a tied LM head is supported",
    },
  }),
};

// ---------------------------------------------------------------------------------------------
// The activation table

/** Activations of GPT-2 for batches of B×T: per block, then global, then the backward scratch. */
function activationSpecs(config: GPT2Config, { B, T }: CreateOptions): ActivationSpec[] {
  const C = config.n_embd, BT = B * T;
  const block = (name: string, size: number): ActivationSpec => ({ name, size, perLayer: true });
  const grad = (name: string, size: number): ActivationSpec => ({ name, size, training: true });
  return [
    block("residual", BT * C), // (BT,C) block input, the residual stream
    block("ln1", BT * C), // (BT,C)
    block("ln1Mean", BT), // (BT)
    block("ln1Rstd", BT), // (BT)
    block("qkv", BT * 3 * C), // (BT,3C)
    block("atty", BT * C), // (BT,C) attention output before c_proj
    block("lse", B * config.n_head * T), // (B,NH,T) attention log-sum-exp
    block("attproj", BT * C), // (BT,C)
    block("residual2", BT * C), // (BT,C) = residual + attproj
    block("ln2", BT * C), // (BT,C)
    block("ln2Mean", BT), // (BT)
    block("ln2Rstd", BT), // (BT)
    block("fch", BT * 4 * C), // (BT,4C)
    block("fchGelu", BT * 4 * C), // (BT,4C)
    block("fcproj", BT * C), // (BT,C)
    { name: "residualOut", size: BT * C }, // (BT,C) output of the last block
    { name: "lnf", size: BT * C }, // (BT,C)
    { name: "lnfMean", size: BT }, // (BT)
    { name: "lnfRstd", size: BT }, // (BT)
    grad("attnDelta", B * config.n_head * T), // (B,NH,T) attention backward scratch
    grad("dres", BT * C), // (BT,C) gradient of the residual stream, flowing down the blocks
    grad("dln", BT * C), // (BT,C)
    grad("datty", BT * C), // (BT,C)
    grad("dqkv", BT * 3 * C), // (BT,3C)
    grad("dfchGelu", BT * 4 * C), // (BT,4C)
    grad("dfch", BT * 4 * C), // (BT,4C)
  ];
}

const BLOCK_ACTS = [
  "residual",
  "ln1",
  "ln1Mean",
  "ln1Rstd",
  "qkv",
  "atty",
  "lse",
  "attproj",
  "residual2",
  "ln2",
  "ln2Mean",
  "ln2Rstd",
  "fch",
  "fchGelu",
  "fcproj",
] as const;

// ---------------------------------------------------------------------------------------------
// The model

/** A GPT-2 instance on the GPU: parameters, optional gradients, activations for one (B,T). */
export class GPT2 extends TransformerModel<GPT2Config> {
  private constructor(gpu: Gpu, config: GPT2Config, params: ParamMap, options: CreateOptions) {
    super(gpu, config, {
      specs: gpt2ParamSpecs(config),
      activations: activationSpecs(config, options),
      params,
      options,
    });
  }

  /** Uploads `params` and allocates everything one (B,T) batch needs. */
  static create(gpu: Gpu, config: GPT2Config, params: ParamMap, options: CreateOptions): GPT2 {
    return new GPT2(gpu, config, params, options);
  }

  /** Final LayerNorm output (BT,C). */
  get hidden(): View {
    return this.act("lnf");
  }

  /** The tied LM head, `wte` (V,C). */
  get head(): View {
    return this.params.get("wte.weight")!;
  }

  /** The gradient of `wte`, which both the head and the embedding add into. */
  protected get headGrad(): View {
    return this.grads.get("wte.weight")!;
  }

  #p(l: number, t: GPT2BlockTensor): View {
    return this.params.get(`h.${l}.${t}`)!;
  }

  #g(l: number, t: GPT2BlockTensor): View {
    return this.grads.get(`h.${l}.${t}`)!;
  }

  /** Block `l`'s saved activations by name. */
  #block(l: number): Record<(typeof BLOCK_ACTS)[number], View> {
    return Object.fromEntries(BLOCK_ACTS.map((name) => [name, this.act(name, l)])) as Record<
      (typeof BLOCK_ACTS)[number],
      View
    >;
  }

  /** The input of block `l`: the embedding output for l = 0, the residual stream after block l-1. */
  #blockInput(l: number): View {
    return l < this.config.n_layer ? this.act("residual", l) : this.act("residualOut");
  }

  /** Records the forward pass up to the final LayerNorm: `tokens` → `hidden`. */
  recordHidden(rec: Recorder): void {
    const { B, T, config } = this;
    const C = config.n_embd, NH = config.n_head, V = config.vocab_size, BT = B * T;
    const eps = config.layer_norm_epsilon;
    const wte = this.params.get("wte.weight")!;
    encoderForward(rec, {
      out: this.#blockInput(0),
      tokens: this.tokens,
      wte,
      wpe: this.params.get("wpe.weight")!,
      B,
      T,
      C,
      V,
    });
    for (let l = 0; l < config.n_layer; l++) {
      const a = this.#block(l);
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
      residualForward(rec, { out: this.#blockInput(l + 1), a: a.residual2, b: a.fcproj, n: BT * C });
    }
    layernormForward(rec, {
      out: this.hidden,
      mean: this.act("lnfMean"),
      rstd: this.act("lnfRstd"),
      inp: this.#blockInput(config.n_layer),
      weight: this.params.get("ln_f.weight")!,
      bias: this.params.get("ln_f.bias")!,
      N: BT,
      C,
      eps,
    });
  }

  /**
   * Records the backward pass of the last recorded forward: accumulates into every gradient.
   * `dlossScale` is d(total loss)/d(each position's loss), e.g. 1/(B·T·accumulation steps).
   */
  recordBackward(rec: Recorder, dlossScale: number): void {
    this.requireTraining();
    const dres = this.act("dres"), dln = this.act("dln"), datty = this.act("datty"), dqkv = this.act("dqkv");
    const dfchGelu = this.act("dfchGelu"), dfch = this.act("dfch");
    const { B, T, config } = this;
    const C = config.n_embd, NH = config.n_head, V = config.vocab_size, BT = B * T;
    rec.clear(dres);
    rec.clear(dln);
    this.recordClassifierBackward(rec, dlossScale, dln);
    layernormBackward(rec, {
      dinp: dres,
      dweight: this.grads.get("ln_f.weight")!,
      dbias: this.grads.get("ln_f.bias")!,
      dout: dln,
      inp: this.#blockInput(config.n_layer),
      weight: this.params.get("ln_f.weight")!,
      mean: this.act("lnfMean"),
      rstd: this.act("lnfRstd"),
      N: BT,
      C,
    });
    for (let l = config.n_layer - 1; l >= 0; l--) {
      const a = this.#block(l);
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
        delta: this.act("attnDelta"),
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
  blockActivations(l: number): BlockActivations {
    if (!Number.isInteger(l) || l < 0 || l >= this.config.n_layer) {
      throw new GpuError(`block ${l} does not exist: the model has ${this.config.n_layer}`);
    }
    return { input: this.#blockInput(l), qkv: this.act("qkv", l), output: this.#blockInput(l + 1) };
  }
}
