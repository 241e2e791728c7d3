/**
 * LLaMA: its parameter table (Hugging Face names and layout), its `config.json`, and the model on
 * WebGPU: activations for one batch shape (B,T), and the recorded forward and backward passes.
 *
 * Shapes: B batch, T time, C channels, NH query heads, NKV key/value heads, hs = C/NH head size,
 * KV = NKV·hs, H the MLP's hidden size, V vocabulary, L blocks, BT = B·T rows. Linear weights are
 * stored `[out, in]` (`nn.Linear`), so `Y = X·Wᵀ`; there are no biases. One block:
 *
 *   x1 = rmsnorm(x)·w_in           q, k, v = x1·Wqᵀ, x1·Wkᵀ, x1·Wvᵀ
 *   qkv = [rope(q), rope(k), v]    y = x + attention(qkv)·Woᵀ      (grouped-query, causal)
 *   y1 = rmsnorm(y)·w_post         out = y + (silu(y1·Wgᵀ) · y1·Wuᵀ)·Wdᵀ
 *
 * RoPE uses Hugging Face's rotate-half pairs (d, d + hs/2); checkpoints in the Meta/GGUF
 * interleaved layout are permuted when they are loaded (`checkpoint.ts`).
 *
 * @module
 */
import {
  attentionBackward,
  attentionForward,
  encoderBackward,
  encoderForward,
  gluBackward,
  gluForward,
  type Gpu,
  GpuError,
  linearForward,
  matmul,
  type Recorder,
  residualForward,
  rmsnormBackward,
  rmsnormForward,
  ropeBackward,
  ropeForward,
  ropeTables,
  upload,
  type View,
} from "@inheritune/kernels";
import { DEFAULT_ROPE_THETA, type LlamaConfig, numberReader } from "./config.ts";
import type { BlockActivations, CreateOptions, Family } from "./family.ts";
import type { ParamMap, ParamSpec } from "./params.ts";
import { type ActivationSpec, TransformerModel } from "./_transformer.ts";

// ---------------------------------------------------------------------------------------------
// The parameter table

/** The per-block tensor names after `model.layers.{i}.`, in table order. */
export const LLAMA_BLOCK_TENSORS = [
  "input_layernorm.weight",
  "self_attn.q_proj.weight",
  "self_attn.k_proj.weight",
  "self_attn.v_proj.weight",
  "self_attn.o_proj.weight",
  "post_attention_layernorm.weight",
  "mlp.gate_proj.weight",
  "mlp.up_proj.weight",
  "mlp.down_proj.weight",
] as const;

/** One of {@linkcode LLAMA_BLOCK_TENSORS}. */
export type LlamaBlockTensor = (typeof LLAMA_BLOCK_TENSORS)[number];

/** The token embedding's name. */
export const LLAMA_EMBED = "model.embed_tokens.weight";
/** The untied LM head's name. */
export const LLAMA_HEAD = "lm_head.weight";
/** The final RMSNorm's name. */
export const LLAMA_NORM = "model.norm.weight";

function blockName(layer: number, key: string): string {
  return `model.layers.${layer}.${key}`;
}

/** Shape `[out, in]` of each block tensor (`[C]` for the norms). */
function blockShape(config: LlamaConfig, key: LlamaBlockTensor): number[] {
  const C = config.n_embd, KV = (C / config.n_head) * config.n_kv_head, H = config.n_hidden;
  switch (key) {
    case "input_layernorm.weight":
    case "post_attention_layernorm.weight":
      return [C];
    case "self_attn.q_proj.weight":
    case "self_attn.o_proj.weight":
      return [C, C];
    case "self_attn.k_proj.weight":
    case "self_attn.v_proj.weight":
      return [KV, C];
    case "mlp.gate_proj.weight":
    case "mlp.up_proj.weight":
      return [H, C];
    case "mlp.down_proj.weight":
      return [C, H];
  }
}

/**
 * The LLaMA parameter table of `config`: the token embedding, each block, the final norm, and the
 * LM head when it is not tied. Weights are initialised N(0, 0.02) (Hugging Face's
 * `initializer_range`), norms to ones.
 */
export function llamaParamSpecs(config: LlamaConfig): ParamSpec[] {
  const C = config.n_embd, V = config.vocab_size;
  const outside = (name: string, shape: number[]): ParamSpec => ({
    name,
    shape,
    layer: -1,
    key: name,
    part: "other",
    init: shape.length === 1 ? "ones" : "normal",
    decay: shape.length > 1,
  });
  const specs = [outside(LLAMA_EMBED, [V, C])];
  for (let l = 0; l < config.n_layer; l++) {
    LLAMA_BLOCK_TENSORS.forEach((key, i) => {
      const shape = blockShape(config, key);
      specs.push({
        name: blockName(l, key),
        shape,
        layer: l,
        key,
        part: i < 5 ? "attn" : "mlp",
        init: shape.length === 1 ? "ones" : "normal",
        decay: shape.length > 1,
      });
    });
  }
  specs.push(outside(LLAMA_NORM, [C]));
  if (!config.tie_embeddings) specs.push(outside(LLAMA_HEAD, [V, C]));
  return specs;
}

/** LLaMA in `model.ts`'s registry. */
export const LLAMA_FAMILY: Family<LlamaConfig> = {
  paramSpecs: llamaParamSpecs,
  blockParamName: blockName,
  create: (gpu, config, params, options) => Llama.create(gpu, config, params, options),
  toHfConfig: (config) => ({
    model_type: "llama",
    architectures: ["LlamaForCausalLM"],
    hidden_size: config.n_embd,
    intermediate_size: config.n_hidden,
    num_hidden_layers: config.n_layer,
    num_attention_heads: config.n_head,
    num_key_value_heads: config.n_kv_head,
    head_dim: config.n_embd / config.n_head,
    max_position_embeddings: config.n_positions,
    vocab_size: config.vocab_size,
    rms_norm_eps: config.norm_eps,
    rope_theta: config.rope_theta,
    rope_scaling: null,
    tie_word_embeddings: config.tie_embeddings,
    hidden_act: "silu",
    attention_bias: false,
    mlp_bias: false,
    initializer_range: 0.02,
    torch_dtype: "float32",
    ...(config.bos_token_id !== undefined ? { bos_token_id: config.bos_token_id } : {}),
    ...(config.eos_token_id !== undefined ? { eos_token_id: config.eos_token_id } : {}),
    ...(config.tokenizer !== undefined ? { tokenizer: config.tokenizer } : {}),
  }),
  fromHfConfig(c, fail) {
    const num = numberReader((key) => c[key], fail);
    if (c.hidden_act !== undefined && c.hidden_act !== "silu") fail(`hidden_act ${c.hidden_act} is not silu`);
    if (c.rope_scaling !== undefined && c.rope_scaling !== null) {
      fail(`rope_scaling ${JSON.stringify(c.rope_scaling)} is not supported (plain RoPE only)`);
    }
    for (const key of ["attention_bias", "mlp_bias"]) if (c[key] === true) fail(`${key} is not supported`);
    const config: LlamaConfig = {
      family: "llama",
      n_layer: num("num_hidden_layers"),
      n_head: num("num_attention_heads"),
      n_embd: num("hidden_size"),
      n_kv_head: num("num_key_value_heads", c.num_attention_heads as number | undefined),
      n_hidden: num("intermediate_size"),
      vocab_size: num("vocab_size"),
      n_positions: num("max_position_embeddings", 2048),
      norm_eps: num("rms_norm_eps", 1e-6),
      rope_theta: num("rope_theta", DEFAULT_ROPE_THETA),
      tie_embeddings: c.tie_word_embeddings === true,
    };
    if (c.head_dim !== undefined && c.head_dim !== null && c.head_dim !== config.n_embd / config.n_head) {
      fail(
        `head_dim ${c.head_dim} is not hidden_size / num_attention_heads = ${config.n_embd / config.n_head}`,
      );
    }
    for (const key of ["bos_token_id", "eos_token_id"] as const) {
      if (typeof c[key] === "number") config[key] = c[key] as number;
    }
    if (typeof c.tokenizer === "string") config.tokenizer = c.tokenizer;
    return config;
  },
};

// ---------------------------------------------------------------------------------------------
// The activation table

/** Activations of LLaMA for batches of B×T: per block, the shared scratch, the backward scratch. */
function activationSpecs(config: LlamaConfig, { B, T }: CreateOptions): ActivationSpec[] {
  const C = config.n_embd, BT = B * T, NH = config.n_head, H = config.n_hidden;
  const KV = (C / NH) * config.n_kv_head, W = C + 2 * KV;
  const block = (name: string, size: number): ActivationSpec => ({ name, size, perLayer: true });
  const grad = (name: string, size: number): ActivationSpec => ({ name, size, training: true });
  return [
    block("residual", BT * C), // (BT,C) block input, the residual stream
    block("ln1", BT * C), // (BT,C)
    block("ln1Rstd", BT), // (BT)
    block("qkv", BT * W), // (BT,C+2KV) rotated q, rotated k, v
    block("atty", BT * C), // (BT,C) attention output before o_proj
    block("lse", B * NH * T), // (B,NH,T) attention log-sum-exp
    block("residual2", BT * C), // (BT,C) = residual + attention
    block("ln2", BT * C), // (BT,C)
    block("ln2Rstd", BT), // (BT)
    block("gate", BT * H), // (BT,H)
    block("up", BT * H), // (BT,H)
    block("swiglu", BT * H), // (BT,H) silu(gate)·up
    { name: "q", size: BT * C }, // (BT,C) scratch: projections before RoPE, any block
    { name: "k", size: BT * KV }, // (BT,KV)
    { name: "v", size: BT * KV }, // (BT,KV)
    { name: "proj", size: BT * C }, // (BT,C) scratch: o_proj or down_proj output before the residual
    { name: "residualOut", size: BT * C }, // (BT,C) output of the last block
    { name: "norm", size: BT * C }, // (BT,C) final RMSNorm output
    { name: "normRstd", size: BT }, // (BT)
    grad("attnDelta", B * NH * T), // (B,NH,T) attention backward scratch
    grad("dres", BT * C), // (BT,C) gradient of the residual stream, flowing down the blocks
    grad("dln", BT * C), // (BT,C) gradient of a norm's output
    grad("datty", BT * C), // (BT,C)
    grad("dqkv", BT * W), // (BT,C+2KV)
    grad("dq", BT * C), // (BT,C)
    grad("dk", BT * KV), // (BT,KV)
    grad("dv", BT * KV), // (BT,KV)
    grad("dswiglu", BT * H), // (BT,H)
    grad("dgate", BT * H), // (BT,H)
    grad("dup", BT * H), // (BT,H)
  ];
}

// ---------------------------------------------------------------------------------------------
// The model

/** A LLaMA instance on the GPU: parameters, optional gradients, activations for one (B,T). */
export class Llama extends TransformerModel<LlamaConfig> {
  readonly #cos: View; // (T, hs/2) RoPE angle tables
  readonly #sin: View;

  private constructor(gpu: Gpu, config: LlamaConfig, params: ParamMap, options: CreateOptions) {
    super(gpu, config, {
      specs: llamaParamSpecs(config),
      activations: activationSpecs(config, options),
      params,
      options,
    });
    const tables = ropeTables({
      hs: config.n_embd / config.n_head,
      maxT: options.T,
      theta: config.rope_theta,
    });
    this.#cos = this.own(upload(gpu, tables.cos, "rope cos"));
    this.#sin = this.own(upload(gpu, tables.sin, "rope sin"));
  }

  /** Uploads `params` and allocates everything one (B,T) batch needs. */
  static create(gpu: Gpu, config: LlamaConfig, params: ParamMap, options: CreateOptions): Llama {
    return new Llama(gpu, config, params, options);
  }

  /** Final RMSNorm output (BT,C). */
  get hidden(): View {
    return this.act("norm");
  }

  /** The LM head (V,C): `lm_head`, or the token embedding when tied. */
  get head(): View {
    return this.params.get(this.config.tie_embeddings ? LLAMA_EMBED : LLAMA_HEAD)!;
  }

  /** The gradient of {@linkcode Llama.head}. */
  protected get headGrad(): View {
    return this.grads.get(this.config.tie_embeddings ? LLAMA_EMBED : LLAMA_HEAD)!;
  }

  #p(l: number, key: LlamaBlockTensor): View {
    return this.params.get(blockName(l, key))!;
  }

  #g(l: number, key: LlamaBlockTensor): View {
    return this.grads.get(blockName(l, key))!;
  }

  /** The input of block `l`: the embedding output for l = 0, the residual stream after block l-1. */
  #blockInput(l: number): View {
    return l < this.config.n_layer ? this.act("residual", l) : this.act("residualOut");
  }

  /** Sizes used by both passes. */
  #dims(): {
    B: number;
    T: number;
    BT: number;
    C: number;
    NH: number;
    NKV: number;
    hs: number;
    KV: number;
    H: number;
  } {
    const { B, T, config } = this;
    const C = config.n_embd, NH = config.n_head, NKV = config.n_kv_head, hs = C / NH;
    return { B, T, BT: B * T, C, NH, NKV, hs, KV: NKV * hs, H: config.n_hidden };
  }

  /** Records the forward pass up to the final RMSNorm: `tokens` → `hidden`. */
  recordHidden(rec: Recorder): void {
    const { config } = this;
    const { B, T, BT, C, NH, NKV, hs, KV, H } = this.#dims();
    const eps = config.norm_eps;
    const [q, k, v, proj] = ["q", "k", "v", "proj"].map((n) => this.act(n));
    // y (M,N) = x (M,K) · Wᵀ with W (N,K)
    const linear = (out: View, inp: View, weight: View, K: number, N: number): void =>
      linearForward(rec, { out, inp, weight, layout: "out_in", M: BT, K, N });
    encoderForward(rec, {
      out: this.#blockInput(0),
      tokens: this.tokens,
      wte: this.params.get(LLAMA_EMBED)!,
      B,
      T,
      C,
      V: config.vocab_size,
    });
    for (let l = 0; l < config.n_layer; l++) {
      const residual = this.act("residual", l), ln1 = this.act("ln1", l), qkv = this.act("qkv", l);
      const atty = this.act("atty", l), residual2 = this.act("residual2", l), ln2 = this.act("ln2", l);
      const gate = this.act("gate", l), up = this.act("up", l), swiglu = this.act("swiglu", l);
      const weight = this.#p(l, "input_layernorm.weight");
      rmsnormForward(rec, { out: ln1, rstd: this.act("ln1Rstd", l), inp: residual, weight, N: BT, C, eps });
      linear(q, ln1, this.#p(l, "self_attn.q_proj.weight"), C, C);
      linear(k, ln1, this.#p(l, "self_attn.k_proj.weight"), C, KV);
      linear(v, ln1, this.#p(l, "self_attn.v_proj.weight"), C, KV);
      ropeForward(rec, { qkv, q, k, v, cos: this.#cos, sin: this.#sin, BT, T, NH, NKV, hs });
      attentionForward(rec, { out: atty, lse: this.act("lse", l), qkv, B, T, C, NH, NKV });
      linear(proj, atty, this.#p(l, "self_attn.o_proj.weight"), C, C);
      residualForward(rec, { out: residual2, a: residual, b: proj, n: BT * C });
      rmsnormForward(rec, {
        out: ln2,
        rstd: this.act("ln2Rstd", l),
        inp: residual2,
        weight: this.#p(l, "post_attention_layernorm.weight"),
        N: BT,
        C,
        eps,
      });
      linear(gate, ln2, this.#p(l, "mlp.gate_proj.weight"), C, H);
      linear(up, ln2, this.#p(l, "mlp.up_proj.weight"), C, H);
      gluForward(rec, { kind: "silu", out: swiglu, gate, up, n: BT * H });
      linear(proj, swiglu, this.#p(l, "mlp.down_proj.weight"), H, C);
      residualForward(rec, { out: this.#blockInput(l + 1), a: residual2, b: proj, n: BT * C });
    }
    rmsnormForward(rec, {
      out: this.hidden,
      rstd: this.act("normRstd"),
      inp: this.#blockInput(config.n_layer),
      weight: this.params.get(LLAMA_NORM)!,
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
    const { config } = this;
    const { B, T, BT, C, NH, NKV, hs, KV, H } = this.#dims();
    const [dres, dln, datty, dqkv] = ["dres", "dln", "datty", "dqkv"].map((n) => this.act(n));
    const [dq, dk, dv] = ["dq", "dk", "dv"].map((n) => this.act(n));
    const [dswiglu, dgate, dup] = ["dswiglu", "dgate", "dup"].map((n) => this.act(n));
    // For a layer y (BT,N) = x (BT,K) · Wᵀ: dx (BT,K) = dy · W, overwritten or accumulated ...
    const dinput = (dx: View, dy: View, weight: View, K: number, N: number, accumulate = false): void =>
      matmul(rec, { out: dx, a: dy, b: weight, M: BT, N: K, K: N, accumulate });
    // ... and dW (N,K) += dyᵀ · x.
    const dweight = (dw: View, dy: View, x: View, K: number, N: number): void =>
      matmul(rec, { out: dw, a: dy, b: x, M: N, N: K, K: BT, transA: true, accumulate: true });
    rec.clear(dres);
    rec.clear(dln);
    this.recordClassifierBackward(rec, dlossScale, dln);
    rmsnormBackward(rec, {
      dinp: dres,
      dweight: this.grads.get(LLAMA_NORM)!,
      dout: dln,
      inp: this.#blockInput(config.n_layer),
      weight: this.params.get(LLAMA_NORM)!,
      rstd: this.act("normRstd"),
      N: BT,
      C,
    });
    for (let l = config.n_layer - 1; l >= 0; l--) {
      const ln1 = this.act("ln1", l), ln2 = this.act("ln2", l), atty = this.act("atty", l);
      const gate = this.act("gate", l), up = this.act("up", l);
      // dres is d(loss)/d(block output) = d/d(down_proj output) = d/d(residual2) through the skip.
      dinput(dswiglu, dres, this.#p(l, "mlp.down_proj.weight"), H, C);
      dweight(this.#g(l, "mlp.down_proj.weight"), dres, this.act("swiglu", l), H, C);
      gluBackward(rec, { kind: "silu", dgate, dup, gate, up, dout: dswiglu, n: BT * H });
      dinput(dln, dgate, this.#p(l, "mlp.gate_proj.weight"), C, H);
      dinput(dln, dup, this.#p(l, "mlp.up_proj.weight"), C, H, true);
      dweight(this.#g(l, "mlp.gate_proj.weight"), dgate, ln2, C, H);
      dweight(this.#g(l, "mlp.up_proj.weight"), dup, ln2, C, H);
      rmsnormBackward(rec, {
        dinp: dres,
        dweight: this.#g(l, "post_attention_layernorm.weight"),
        dout: dln,
        inp: this.act("residual2", l),
        weight: this.#p(l, "post_attention_layernorm.weight"),
        rstd: this.act("ln2Rstd", l),
        N: BT,
        C,
      });
      // dres is now d(loss)/d(residual2) = d/d(o_proj output).
      dinput(datty, dres, this.#p(l, "self_attn.o_proj.weight"), C, C);
      dweight(this.#g(l, "self_attn.o_proj.weight"), dres, atty, C, C);
      attentionBackward(rec, {
        dqkv,
        dout: datty,
        qkv: this.act("qkv", l),
        out: atty,
        lse: this.act("lse", l),
        delta: this.act("attnDelta"),
        B,
        T,
        C,
        NH,
        NKV,
      });
      ropeBackward(rec, { dq, dk, dv, dqkv, cos: this.#cos, sin: this.#sin, BT, T, NH, NKV, hs });
      dinput(dln, dq, this.#p(l, "self_attn.q_proj.weight"), C, C);
      dinput(dln, dk, this.#p(l, "self_attn.k_proj.weight"), C, KV, true);
      dinput(dln, dv, this.#p(l, "self_attn.v_proj.weight"), C, KV, true);
      dweight(this.#g(l, "self_attn.q_proj.weight"), dq, ln1, C, C);
      dweight(this.#g(l, "self_attn.k_proj.weight"), dk, ln1, C, KV);
      dweight(this.#g(l, "self_attn.v_proj.weight"), dv, ln1, C, KV);
      rmsnormBackward(rec, {
        dinp: dres,
        dweight: this.#g(l, "input_layernorm.weight"),
        dout: dln,
        inp: this.act("residual", l),
        weight: this.#p(l, "input_layernorm.weight"),
        rstd: this.act("ln1Rstd", l),
        N: BT,
        C,
      });
    }
    encoderBackward(rec, {
      dwte: this.grads.get(LLAMA_EMBED)!,
      dout: dres,
      tokens: this.tokens,
      B,
      T,
      C,
      V: config.vocab_size,
    });
  }

  /**
   * Views of block `l`'s saved activations after a forward pass, for diagnostics: its input and
   * output (BT,C), and its attention input `qkv` (BT,C+2KV), after RoPE.
   */
  blockActivations(l: number): BlockActivations {
    if (!Number.isInteger(l) || l < 0 || l >= this.config.n_layer) {
      throw new GpuError(`block ${l} does not exist: the model has ${this.config.n_layer}`);
    }
    return { input: this.#blockInput(l), qkv: this.act("qkv", l), output: this.#blockInput(l + 1) };
  }
}

// ---------------------------------------------------------------------------------------------
// RoPE layouts

/**
 * Reorders the rows of a query or key projection `(heads·hs, C)` from the Meta / GGUF layout, in
 * which RoPE rotates interleaved pairs (2i, 2i+1) of each head, to the engine's (Hugging Face's)
 * rotate-half layout, pairs (i, i + hs/2): row `2i + j` of a head becomes row `j·hs/2 + i`. This
 * inverts the permutation of Hugging Face's `convert_llama_weights_to_hf.py`.
 */
export function fromInterleavedRope(
  weight: Float32Array,
  shape: { heads: number; hs: number },
): Float32Array {
  const { heads, hs } = shape;
  const cols = weight.length / (heads * hs), half = hs / 2;
  const out = new Float32Array(weight.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const src = (h * hs + 2 * i + j) * cols, dst = (h * hs + j * half + i) * cols;
        out.set(weight.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}
