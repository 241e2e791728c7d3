/**
 * The LLaMA-like decoder that every family of `families.ts` is a configuration of: its parameter
 * table (tensor roles, shapes, the family's names), and the model on WebGPU: activations for one
 * batch shape (B,T), one recorded forward pass and one backward pass in which each architectural
 * feature of {@linkcode DecoderConfig} is one guarded step.
 *
 * Shapes: B batch, T time, C channels, NH query heads, NKV key/value heads, hs head size
 * (`head_dim`, C/NH unless stated), Q = NH·hs, KV = NKV·hs, H the MLP's hidden size, V
 * vocabulary, L blocks, BT = B·T rows. Linear weights are stored `[out, in]` (`nn.Linear`), so
 * `Y = X·Wᵀ`. One block, optional steps in brackets:
 *
 *   x1 = rmsnorm(x)·w_attn                   q, k, v = x1·Wqᵀ [+ bq], x1·Wkᵀ [+ bk], x1·Wvᵀ [+ bv]
 *   [q, k = rmsnorm per head ·w_q, ·w_k]     qkv = [rope_l(q), rope_l(k), v]
 *   a = attention_l(qkv)·Woᵀ                 y = x + [rmsnorm·w_attn_post](a)
 *   y1 = rmsnorm(y)·w_mlp                    m = (act(y1·Wgᵀ) · y1·Wuᵀ)·Wdᵀ
 *   out = y + [rmsnorm·w_mlp_post](m)
 *
 * Attention and RoPE of block l use that block's window, score scale, base and scaling
 * (`layerAttention`); act is SiLU (SwiGLU) or GELU-tanh (GeGLU). RoPE uses Hugging Face's
 * rotate-half pairs (d, d + hs/2); checkpoints in the Meta/GGUF interleaved layout are permuted
 * when they are loaded ({@linkcode fromInterleavedRope}) and back when a `llama` GGUF is written
 * ({@linkcode toInterleavedRope}).
 *
 * @module
 */
import {
  ATTENTION_MAX_HEAD_SIZE,
  attentionBackward,
  attentionForward,
  biasBackward,
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
  ropeLayerTables,
  scaleInPlace,
  upload,
  type View,
} from "@inheritune/kernels";
import { ConfigError, type DecoderConfig, headSize, layerAttention } from "./config.ts";
import type { BlockActivations, CreateOptions } from "./family.ts";
import type { ParamMap, ParamSpec } from "./params.ts";
import { type ActivationSpec, TransformerModel } from "./_transformer.ts";

// ---------------------------------------------------------------------------------------------
// The parameter table

/** What a tensor of a block does. */
export type BlockRole =
  | "attn_norm"
  | "q_proj"
  | "k_proj"
  | "v_proj"
  | "q_bias"
  | "k_bias"
  | "v_bias"
  | "q_norm"
  | "k_norm"
  | "o_proj"
  | "attn_post_norm"
  | "mlp_norm"
  | "gate_proj"
  | "up_proj"
  | "down_proj"
  | "mlp_post_norm";

/** What a tensor outside the blocks does. */
export type OuterRole = "embed" | "final_norm" | "head";

/** A tensor's role in the decoder. */
export type DecoderRole = BlockRole | OuterRole;

/** A decoder parameter: a table entry with its role. */
export interface DecoderParamSpec extends ParamSpec {
  /** What the tensor does, whatever the family calls it. */
  role: DecoderRole;
}

/** A family's checkpoint names of the decoder's tensors: per block (after `model.layers.{i}.`), outside. */
export interface DecoderNames {
  /** The name of each block role, after the block's prefix. */
  block: Record<BlockRole, string>;
  /** Full names of the tensors outside the blocks. */
  outer: Record<OuterRole, string>;
}

/** Hugging Face's names of the LLaMA-like families (Gemma 3 renames the MLP's norm). */
export const DECODER_NAMES: DecoderNames = {
  block: {
    attn_norm: "input_layernorm.weight",
    q_proj: "self_attn.q_proj.weight",
    k_proj: "self_attn.k_proj.weight",
    v_proj: "self_attn.v_proj.weight",
    q_bias: "self_attn.q_proj.bias",
    k_bias: "self_attn.k_proj.bias",
    v_bias: "self_attn.v_proj.bias",
    q_norm: "self_attn.q_norm.weight",
    k_norm: "self_attn.k_norm.weight",
    o_proj: "self_attn.o_proj.weight",
    attn_post_norm: "post_attention_layernorm.weight",
    mlp_norm: "post_attention_layernorm.weight",
    gate_proj: "mlp.gate_proj.weight",
    up_proj: "mlp.up_proj.weight",
    down_proj: "mlp.down_proj.weight",
    mlp_post_norm: "post_feedforward_layernorm.weight",
  },
  outer: { embed: "model.embed_tokens.weight", final_norm: "model.norm.weight", head: "lm_head.weight" },
};

/** The name of block `layer`'s tensor `key` (a name of {@linkcode DecoderNames.block}). */
export function decoderBlockName(layer: number, key: string): string {
  return `model.layers.${layer}.${key}`;
}

/** The sizes the decoder's shapes are made of. */
interface Dims {
  C: number;
  Q: number;
  KV: number;
  H: number;
  hs: number;
}

function dims(config: DecoderConfig): Dims {
  const hs = headSize(config);
  return { C: config.n_embd, Q: config.n_head * hs, KV: config.n_kv_head * hs, H: config.n_hidden, hs };
}

/** One block tensor: its role, sub-block, shape and the feature that adds it. */
interface BlockTensor {
  role: BlockRole;
  part: "attn" | "mlp";
  shape: (d: Dims) => number[];
  when?: (c: DecoderConfig) => boolean | undefined;
}

/**
 * The block's tensors in table order. Sub-blocks are stated, not inferred from positions: q/k
 * norms and biases belong to the attention, each sandwich norm to the sub-block whose output it
 * normalises.
 */
const BLOCK_TENSORS: readonly BlockTensor[] = [
  { role: "attn_norm", part: "attn", shape: (d) => [d.C] },
  { role: "q_proj", part: "attn", shape: (d) => [d.Q, d.C] },
  { role: "k_proj", part: "attn", shape: (d) => [d.KV, d.C] },
  { role: "v_proj", part: "attn", shape: (d) => [d.KV, d.C] },
  { role: "q_bias", part: "attn", shape: (d) => [d.Q], when: (c) => c.attention_bias },
  { role: "k_bias", part: "attn", shape: (d) => [d.KV], when: (c) => c.attention_bias },
  { role: "v_bias", part: "attn", shape: (d) => [d.KV], when: (c) => c.attention_bias },
  { role: "q_norm", part: "attn", shape: (d) => [d.hs], when: (c) => c.qk_norm },
  { role: "k_norm", part: "attn", shape: (d) => [d.hs], when: (c) => c.qk_norm },
  { role: "o_proj", part: "attn", shape: (d) => [d.C, d.Q] },
  { role: "attn_post_norm", part: "attn", shape: (d) => [d.C], when: (c) => c.sandwich_norms },
  { role: "mlp_norm", part: "mlp", shape: (d) => [d.C] },
  { role: "gate_proj", part: "mlp", shape: (d) => [d.H, d.C] },
  { role: "up_proj", part: "mlp", shape: (d) => [d.H, d.C] },
  { role: "down_proj", part: "mlp", shape: (d) => [d.C, d.H] },
  { role: "mlp_post_norm", part: "mlp", shape: (d) => [d.C], when: (c) => c.sandwich_norms },
];

const NORM_ROLES: ReadonlySet<DecoderRole> = new Set([
  "attn_norm",
  "q_norm",
  "k_norm",
  "attn_post_norm",
  "mlp_norm",
  "mlp_post_norm",
  "final_norm",
]);

/** Whether a role is an RMSNorm weight (stored as `w`, applied as `norm_offset + w`). */
export function isNormRole(role: DecoderRole): boolean {
  return NORM_ROLES.has(role);
}

/**
 * The decoder's parameter table of `config` under a family's `names`: the token embedding, each
 * block, the final norm, and the LM head when it is not tied. Weights are initialised N(0, 0.02)
 * (Hugging Face's `initializer_range`), biases to zeros, norms to scale 1 (weights of ones, or of
 * zeros under a norm offset of 1).
 */
export function decoderParamSpecs(config: DecoderConfig, names: DecoderNames): DecoderParamSpec[] {
  const d = dims(config), V = config.vocab_size;
  const normInit = (config.norm_offset ?? 0) === 1 ? "zeros" : "ones";
  const init = (role: DecoderRole, shape: number[]): ParamSpec["init"] =>
    isNormRole(role) ? normInit : shape.length === 1 ? "zeros" : "normal";
  const outside = (role: OuterRole, shape: number[]): DecoderParamSpec => ({
    name: names.outer[role],
    shape,
    layer: -1,
    key: names.outer[role],
    part: "other",
    role,
    init: init(role, shape),
    decay: shape.length > 1,
  });
  const specs = [outside("embed", [V, d.C])];
  const block = BLOCK_TENSORS.filter((t) => !t.when || t.when(config) === true);
  for (let l = 0; l < config.n_layer; l++) {
    for (const t of block) {
      const shape = t.shape(d), key = names.block[t.role];
      specs.push({
        name: decoderBlockName(l, key),
        shape,
        layer: l,
        key,
        part: t.part,
        role: t.role,
        init: init(t.role, shape),
        decay: shape.length > 1,
      });
    }
  }
  specs.push(outside("final_norm", [d.C]));
  if (!config.tie_embeddings) specs.push(outside("head", [V, d.C]));
  return specs;
}

// ---------------------------------------------------------------------------------------------
// What the kernels run

/**
 * What the GPU kernels cannot run for `config`, in one line; undefined when they can: the attention
 * kernels take head sizes up to `ATTENTION_MAX_HEAD_SIZE`.
 */
export function decoderKernelProblem(config: DecoderConfig): string | undefined {
  const hs = headSize(config);
  if (hs > ATTENTION_MAX_HEAD_SIZE) {
    return `head size ${hs} exceeds the attention kernels' ${ATTENTION_MAX_HEAD_SIZE}`;
  }
}

// ---------------------------------------------------------------------------------------------
// The activation table

/** Activations for batches of B×T: per block, the shared scratch, the backward scratch. */
function activationSpecs(config: DecoderConfig, { B, T }: CreateOptions): ActivationSpec[] {
  const { C, Q, KV, H } = dims(config);
  const BT = B * T, NH = config.n_head, NKV = config.n_kv_head, W = Q + 2 * KV;
  const block = (name: string, size: number, on = true): ActivationSpec[] =>
    on ? [{ name, size, perLayer: true }] : [];
  const grad = (name: string, size: number, on = true): ActivationSpec[] =>
    on ? [{ name, size, training: true }] : [];
  const qkNorm = config.qk_norm === true, sandwich = config.sandwich_norms === true;
  return [
    ...block("residual", BT * C), // (BT,C) block input, the residual stream
    ...block("ln1", BT * C), // (BT,C)
    ...block("ln1Rstd", BT), // (BT)
    ...block("qRaw", BT * Q, qkNorm), // (BT,Q) queries before their per-head norm
    ...block("kRaw", BT * KV, qkNorm), // (BT,KV)
    ...block("qRstd", BT * NH, qkNorm), // (BT,NH)
    ...block("kRstd", BT * NKV, qkNorm), // (BT,NKV)
    ...block("qkv", BT * W), // (BT,Q+2KV) rotated q, rotated k, v
    ...block("atty", BT * Q), // (BT,Q) attention output before o_proj
    ...block("lse", B * NH * T), // (B,NH,T) attention log-sum-exp
    ...block("attnOut", BT * C, sandwich), // (BT,C) o_proj output before its sandwich norm
    ...block("attnPostRstd", BT, sandwich), // (BT)
    ...block("residual2", BT * C), // (BT,C) = residual + attention
    ...block("ln2", BT * C), // (BT,C)
    ...block("ln2Rstd", BT), // (BT)
    ...block("gate", BT * H), // (BT,H)
    ...block("up", BT * H), // (BT,H)
    ...block("act", BT * H), // (BT,H) act(gate)·up
    ...block("mlpOut", BT * C, sandwich), // (BT,C) down_proj output before its sandwich norm
    ...block("mlpPostRstd", BT, sandwich), // (BT)
    { name: "q", size: BT * Q }, // (BT,Q) scratch: queries before RoPE, any block
    { name: "k", size: BT * KV }, // (BT,KV)
    { name: "v", size: BT * KV }, // (BT,KV)
    { name: "proj", size: BT * C }, // (BT,C) scratch: what a sub-block adds to the residual stream
    { name: "residualOut", size: BT * C }, // (BT,C) output of the last block
    { name: "norm", size: BT * C }, // (BT,C) final RMSNorm output
    { name: "normRstd", size: BT }, // (BT)
    ...grad("attnDelta", B * NH * T), // (B,NH,T) attention backward scratch
    ...grad("dres", BT * C), // (BT,C) gradient of the residual stream, flowing down the blocks
    ...grad("dln", BT * C), // (BT,C) gradient of a norm's output
    ...grad("dproj", BT * C, sandwich), // (BT,C) gradient of a sub-block's output before its sandwich norm
    ...grad("datty", BT * Q), // (BT,Q)
    ...grad("dqkv", BT * W), // (BT,Q+2KV)
    ...grad("dq", BT * Q), // (BT,Q)
    ...grad("dk", BT * KV), // (BT,KV)
    ...grad("dv", BT * KV), // (BT,KV)
    ...grad("dqRaw", BT * Q, qkNorm), // (BT,Q) gradient of the queries before their norm
    ...grad("dkRaw", BT * KV, qkNorm), // (BT,KV)
    ...grad("dact", BT * H), // (BT,H)
    ...grad("dgate", BT * H), // (BT,H)
    ...grad("dup", BT * H), // (BT,H)
  ];
}

// ---------------------------------------------------------------------------------------------
// The model

/** A decoder instance on the GPU: parameters, optional gradients, activations for one (B,T). */
export class Decoder extends TransformerModel<DecoderConfig> {
  readonly #names: Map<string, string>; // `${layer}.${role}` → table name
  readonly #rope: { cos: View; sin: View }[]; // per block: its (T, hs/2) RoPE angle tables

  private constructor(
    gpu: Gpu,
    config: DecoderConfig,
    init: { specs: DecoderParamSpec[]; params: ParamMap; options: CreateOptions },
  ) {
    const problem = decoderKernelProblem(config);
    if (problem) throw new ConfigError(`${config.family}: ${problem}`);
    super(gpu, config, {
      specs: init.specs,
      activations: activationSpecs(config, init.options),
      params: init.params,
      options: init.options,
    });
    this.#names = new Map(init.specs.map((s) => [`${s.layer}.${s.role}`, s.name]));
    // One pair of tables per distinct RoPE of the blocks (Gemma 3: local and global).
    const { tables, layer } = ropeLayerTables(
      Array.from({ length: config.n_layer }, (_, l) => layerAttention(config, l)),
      { hs: headSize(config), maxT: init.options.T },
    );
    const views = tables.map((t, i) => ({
      cos: this.own(upload(gpu, t.cos, `rope cos ${i}`)),
      sin: this.own(upload(gpu, t.sin, `rope sin ${i}`)),
    }));
    this.#rope = layer.map((i) => views[i]);
  }

  /**
   * Uploads `params` (the tensors of `specs`, the family's table of `config`) and allocates
   * everything one (B,T) batch needs.
   *
   * @throws {ConfigError} when the kernels cannot run `config` ({@linkcode decoderKernelProblem}).
   */
  static create(
    gpu: Gpu,
    config: DecoderConfig,
    init: { specs: DecoderParamSpec[]; params: ParamMap; options: CreateOptions },
  ): Decoder {
    return new Decoder(gpu, config, init);
  }

  /** Final RMSNorm output (BT,C). */
  get hidden(): View {
    return this.act("norm");
  }

  /** The LM head (V,C): `lm_head`, or the token embedding when tied. */
  get head(): View {
    return this.#p(-1, this.config.tie_embeddings ? "embed" : "head");
  }

  /** The soft-cap of the logits (`final_logit_softcapping`), if any. */
  protected override get logitSoftcap(): number | undefined {
    return this.config.final_logit_softcapping;
  }

  /** The gated MLP's activation. */
  get #glu(): "silu" | "gelu_tanh" {
    return this.config.mlp === "geglu_tanh" ? "gelu_tanh" : "silu";
  }

  /** The gradient of {@linkcode Decoder.head}. */
  protected get headGrad(): View {
    return this.#g(-1, this.config.tie_embeddings ? "embed" : "head");
  }

  /** The parameter of `role` in block `l` (-1: outside the blocks). */
  #p(l: number, role: DecoderRole): View {
    return this.params.get(this.#names.get(`${l}.${role}`)!)!;
  }

  /** The gradient of {@linkcode Decoder.#p}. */
  #g(l: number, role: DecoderRole): View {
    return this.grads.get(this.#names.get(`${l}.${role}`)!)!;
  }

  /** The input of block `l`: the embedding output for l = 0, the residual stream after block l-1. */
  #blockInput(l: number): View {
    return l < this.config.n_layer ? this.act("residual", l) : this.act("residualOut");
  }

  /** Sizes used by both passes. */
  #dims(): Dims & { B: number; T: number; BT: number; NH: number; NKV: number } {
    const { B, T, config } = this;
    return { ...dims(config), B, T, BT: B * T, NH: config.n_head, NKV: config.n_kv_head };
  }

  /** Records the forward pass up to the final RMSNorm: `tokens` → `hidden`. */
  recordHidden(rec: Recorder): void {
    const { config } = this;
    const { B, T, BT, C, Q, KV, H, NH, NKV, hs } = this.#dims();
    const eps = config.norm_eps;
    const [q, k, v, proj] = ["q", "k", "v", "proj"].map((n) => this.act(n));
    // y (BT,N) = x (BT,K) · Wᵀ [+ b] with W (N,K)
    const linear = (out: View, inp: View, weight: View, K: number, N: number, bias?: View): void =>
      linearForward(rec, { out, inp, weight, bias, layout: "out_in", M: BT, K, N });
    const offset = config.norm_offset;
    const rmsnorm = (out: View, rstd: View, inp: View, weight: View, N = BT, width = C): void =>
      rmsnormForward(rec, { out, rstd, inp, weight, N, C: width, eps, offset });
    const bias = (l: number, role: DecoderRole): View | undefined =>
      config.attention_bias ? this.#p(l, role) : undefined;
    encoderForward(rec, {
      out: this.#blockInput(0),
      tokens: this.tokens,
      wte: this.#p(-1, "embed"),
      B,
      T,
      C,
      V: config.vocab_size,
    });
    // [embed_scale] x·√C, C's root rounded to f32 as Gemma's f32 tensor of it is.
    if (config.embed_scale) scaleInPlace(rec, { x: this.#blockInput(0), n: BT * C, scale: Math.sqrt(C) });
    for (let l = 0; l < config.n_layer; l++) {
      const residual = this.act("residual", l), ln1 = this.act("ln1", l), qkv = this.act("qkv", l);
      const atty = this.act("atty", l), residual2 = this.act("residual2", l), ln2 = this.act("ln2", l);
      const gate = this.act("gate", l), up = this.act("up", l), act = this.act("act", l);
      rmsnorm(ln1, this.act("ln1Rstd", l), residual, this.#p(l, "attn_norm"));
      // [qk_norm] the projections land in the block's qRaw/kRaw, normalised per head into q/k.
      const qOut = config.qk_norm ? this.act("qRaw", l) : q, kOut = config.qk_norm ? this.act("kRaw", l) : k;
      linear(qOut, ln1, this.#p(l, "q_proj"), C, Q, bias(l, "q_bias"));
      linear(kOut, ln1, this.#p(l, "k_proj"), C, KV, bias(l, "k_bias"));
      linear(v, ln1, this.#p(l, "v_proj"), C, KV, bias(l, "v_bias"));
      if (config.qk_norm) {
        rmsnorm(q, this.act("qRstd", l), qOut, this.#p(l, "q_norm"), BT * NH, hs);
        rmsnorm(k, this.act("kRstd", l), kOut, this.#p(l, "k_norm"), BT * NKV, hs);
      }
      ropeForward(rec, { qkv, q, k, v, ...this.#rope[l], BT, T, NH, NKV, hs });
      const { window, scale } = layerAttention(config, l);
      attentionForward(rec, { out: atty, lse: this.act("lse", l), qkv, B, T, C: Q, NH, NKV, window, scale });
      // [sandwich_norms] the sub-block's output is normalised before the residual add.
      const attnOut = config.sandwich_norms ? this.act("attnOut", l) : proj;
      linear(attnOut, atty, this.#p(l, "o_proj"), Q, C);
      if (config.sandwich_norms) {
        rmsnorm(proj, this.act("attnPostRstd", l), attnOut, this.#p(l, "attn_post_norm"));
      }
      residualForward(rec, { out: residual2, a: residual, b: proj, n: BT * C });
      rmsnorm(ln2, this.act("ln2Rstd", l), residual2, this.#p(l, "mlp_norm"));
      linear(gate, ln2, this.#p(l, "gate_proj"), C, H);
      linear(up, ln2, this.#p(l, "up_proj"), C, H);
      gluForward(rec, { kind: this.#glu, out: act, gate, up, n: BT * H });
      const mlpOut = config.sandwich_norms ? this.act("mlpOut", l) : proj;
      linear(mlpOut, act, this.#p(l, "down_proj"), H, C);
      if (config.sandwich_norms) {
        rmsnorm(proj, this.act("mlpPostRstd", l), mlpOut, this.#p(l, "mlp_post_norm"));
      }
      residualForward(rec, { out: this.#blockInput(l + 1), a: residual2, b: proj, n: BT * C });
    }
    rmsnorm(this.hidden, this.act("normRstd"), this.#blockInput(config.n_layer), this.#p(-1, "final_norm"));
  }

  /**
   * Records the backward pass of the last recorded forward: accumulates into every gradient.
   * `dlossScale` is d(total loss)/d(each position's loss), e.g. 1/(B·T·accumulation steps).
   */
  recordBackward(rec: Recorder, dlossScale: number): void {
    this.requireTraining();
    const { config } = this;
    const { B, T, BT, C, Q, KV, H, NH, NKV, hs } = this.#dims();
    const [dres, dln, datty, dqkv] = ["dres", "dln", "datty", "dqkv"].map((n) => this.act(n));
    const [dq, dk, dv] = ["dq", "dk", "dv"].map((n) => this.act(n));
    const [dact, dgate, dup] = ["dact", "dgate", "dup"].map((n) => this.act(n));
    // For a layer y (BT,N) = x (BT,K) · Wᵀ: dx (BT,K) = dy · W, overwritten or accumulated ...
    const dinput = (dx: View, dy: View, weight: View, K: number, N: number, accumulate = false): void =>
      matmul(rec, { out: dx, a: dy, b: weight, M: BT, N: K, K: N, accumulate });
    // ... and dW (N,K) += dyᵀ · x.
    const dweight = (dw: View, dy: View, x: View, K: number, N: number): void =>
      matmul(rec, { out: dw, a: dy, b: x, M: N, N: K, K: BT, transA: true, accumulate: true });
    // An RMSNorm y = rmsnorm(x)·w: dx += ∂/∂x, dw += ∂/∂w (both accumulated).
    const drmsnorm = (
      dx: View,
      l: number,
      role: DecoderRole,
      args: { dout: View; inp: View; rstd: View; N?: number; width?: number },
    ): void =>
      rmsnormBackward(rec, {
        dinp: dx,
        dweight: this.#g(l, role),
        dout: args.dout,
        inp: args.inp,
        weight: this.#p(l, role),
        rstd: args.rstd,
        N: args.N ?? BT,
        C: args.width ?? C,
        offset: config.norm_offset,
      });
    // [sandwich_norms] d(sub-block output) from d(what it added to the residual stream), in dproj.
    const dsandwich = (l: number, role: DecoderRole, out: string, rstd: string): View => {
      if (!config.sandwich_norms) return dres;
      const dproj = this.act("dproj");
      rec.clear(dproj);
      drmsnorm(dproj, l, role, { dout: dres, inp: this.act(out, l), rstd: this.act(rstd, l) });
      return dproj;
    };
    rec.clear(dres);
    rec.clear(dln);
    this.recordClassifierBackward(rec, dlossScale, dln);
    drmsnorm(dres, -1, "final_norm", {
      dout: dln,
      inp: this.#blockInput(config.n_layer),
      rstd: this.act("normRstd"),
    });
    for (let l = config.n_layer - 1; l >= 0; l--) {
      const ln1 = this.act("ln1", l), ln2 = this.act("ln2", l), atty = this.act("atty", l);
      const gate = this.act("gate", l), up = this.act("up", l);
      // dres is d(loss)/d(block output) = d/d(residual2) through the skip; dmlp is d/d(down_proj output).
      const dmlp = dsandwich(l, "mlp_post_norm", "mlpOut", "mlpPostRstd");
      dinput(dact, dmlp, this.#p(l, "down_proj"), H, C);
      dweight(this.#g(l, "down_proj"), dmlp, this.act("act", l), H, C);
      gluBackward(rec, { kind: this.#glu, dgate, dup, gate, up, dout: dact, n: BT * H });
      dinput(dln, dgate, this.#p(l, "gate_proj"), C, H);
      dinput(dln, dup, this.#p(l, "up_proj"), C, H, true);
      dweight(this.#g(l, "gate_proj"), dgate, ln2, C, H);
      dweight(this.#g(l, "up_proj"), dup, ln2, C, H);
      drmsnorm(dres, l, "mlp_norm", {
        dout: dln,
        inp: this.act("residual2", l),
        rstd: this.act("ln2Rstd", l),
      });
      // dres is now d(loss)/d(residual2); dattn is d/d(o_proj output).
      const dattn = dsandwich(l, "attn_post_norm", "attnOut", "attnPostRstd");
      dinput(datty, dattn, this.#p(l, "o_proj"), Q, C);
      dweight(this.#g(l, "o_proj"), dattn, atty, Q, C);
      const { window, scale } = layerAttention(config, l);
      attentionBackward(rec, {
        dqkv,
        dout: datty,
        qkv: this.act("qkv", l),
        out: atty,
        lse: this.act("lse", l),
        delta: this.act("attnDelta"),
        B,
        T,
        C: Q,
        NH,
        NKV,
        window,
        scale,
      });
      ropeBackward(rec, { dq, dk, dv, dqkv, ...this.#rope[l], BT, T, NH, NKV, hs });
      // [qk_norm] back through the per-head norms: d(projection output) in dqRaw/dkRaw.
      let [dqOut, dkOut] = [dq, dk];
      if (config.qk_norm) {
        [dqOut, dkOut] = [this.act("dqRaw"), this.act("dkRaw")];
        rec.clear(dqOut);
        rec.clear(dkOut);
        const [qRaw, kRaw, qRstd, kRstd] = ["qRaw", "kRaw", "qRstd", "kRstd"].map((n) => this.act(n, l));
        drmsnorm(dqOut, l, "q_norm", { dout: dq, inp: qRaw, rstd: qRstd, N: BT * NH, width: hs });
        drmsnorm(dkOut, l, "k_norm", { dout: dk, inp: kRaw, rstd: kRstd, N: BT * NKV, width: hs });
      }
      dinput(dln, dqOut, this.#p(l, "q_proj"), C, Q);
      dinput(dln, dkOut, this.#p(l, "k_proj"), C, KV, true);
      dinput(dln, dv, this.#p(l, "v_proj"), C, KV, true);
      dweight(this.#g(l, "q_proj"), dqOut, ln1, C, Q);
      dweight(this.#g(l, "k_proj"), dkOut, ln1, C, KV);
      dweight(this.#g(l, "v_proj"), dv, ln1, C, KV);
      // [attention_bias] db += Σ_rows dy.
      if (config.attention_bias) {
        biasBackward(rec, { dbias: this.#g(l, "q_bias"), dout: dqOut, M: BT, N: Q });
        biasBackward(rec, { dbias: this.#g(l, "k_bias"), dout: dkOut, M: BT, N: KV });
        biasBackward(rec, { dbias: this.#g(l, "v_bias"), dout: dv, M: BT, N: KV });
      }
      drmsnorm(dres, l, "attn_norm", {
        dout: dln,
        inp: this.act("residual", l),
        rstd: this.act("ln1Rstd", l),
      });
    }
    if (config.embed_scale) scaleInPlace(rec, { x: dres, n: BT * C, scale: Math.sqrt(C) });
    encoderBackward(rec, {
      dwte: this.#g(-1, "embed"),
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
   * output (BT,C), and its attention input `qkv` (BT,Q+2KV), after RoPE.
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
 * Moves row `2i + j` of each head of a `(heads·hs, C)` projection to row `j·hs/2 + i`
 * (`toHalves`), or back.
 */
function reorderRopeRows(
  weight: Float32Array,
  shape: { heads: number; hs: number },
  toHalves: boolean,
): Float32Array {
  const { heads, hs } = shape;
  const cols = weight.length / (heads * hs), half = hs / 2;
  const out = new Float32Array(weight.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const pair = (h * hs + 2 * i + j) * cols, halves = (h * hs + j * half + i) * cols;
        const [src, dst] = toHalves ? [pair, halves] : [halves, pair];
        out.set(weight.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}

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
  return reorderRopeRows(weight, shape, true);
}

/**
 * The inverse of {@linkcode fromInterleavedRope}: rows of a query or key projection `(heads·hs, C)`
 * from the engine's rotate-half layout to the interleaved-pair layout of llama.cpp's `llama`
 * architecture, as its converter permutes Hugging Face weights: row `j·hs/2 + i` of a head becomes
 * row `2i + j`.
 */
export function toInterleavedRope(
  weight: Float32Array,
  shape: { heads: number; hs: number },
): Float32Array {
  return reorderRopeRows(weight, shape, false);
}
