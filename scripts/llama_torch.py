"""A plain-PyTorch Llama with Hugging Face semantics, f32, deterministic, no dropout: the reference
for LLaMA fixtures and the model that scripts/fsdp_train.py trains. Parameter names equal the
Hugging Face names (`model.layers.{i}.self_attn.q_proj.weight`, ...), so `state_dict()` maps 1:1
onto a Hugging Face Llama folder's tensors.

    RMSNorm   y = w · x · rsqrt(mean(x²) + eps), computed in f32
    RoPE      rotate-half: dims d and d + head_dim/2 form a pair, θ_d = rope_theta^(-2d/head_dim)
    attention causal, grouped-query: query head h reads key/value head h // (n_heads / n_kv_heads)
    MLP       down(silu(gate(x)) · up(x))
    head      lm_head, or the token embedding itself when tie_word_embeddings
"""

import math
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn


def config(
    hidden_size,
    intermediate_size,
    num_hidden_layers,
    num_attention_heads,
    num_key_value_heads,
    vocab_size,
    max_position_embeddings,
    rms_norm_eps=1e-6,
    rope_theta=10000.0,
    tie_word_embeddings=False,
    head_dim=None,
):
    """The architecture, with the field names of a Hugging Face Llama config.json."""
    if num_attention_heads % num_key_value_heads != 0:
        raise ValueError(
            f"num_key_value_heads {num_key_value_heads} does not divide num_attention_heads {num_attention_heads}"
        )
    return SimpleNamespace(
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        vocab_size=vocab_size,
        max_position_embeddings=max_position_embeddings,
        rms_norm_eps=rms_norm_eps,
        rope_theta=rope_theta,
        tie_word_embeddings=tie_word_embeddings,
        head_dim=head_dim or hidden_size // num_attention_heads,
    )


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rope_cos_sin(t, head_dim, theta, device):
    """(T, head_dim) cos and sin tables, in f32 as Hugging Face builds them."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64, device=device).float() / head_dim))
    freqs = torch.arange(t, device=device).float()[:, None] * inv_freq[None, :]  # (T, head_dim/2)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, hd = cfg.hidden_size, cfg.head_dim
        self.n_head, self.n_kv_head, self.head_dim = cfg.num_attention_heads, cfg.num_key_value_heads, hd
        self.q_proj = nn.Linear(C, self.n_head * hd, bias=False)
        self.k_proj = nn.Linear(C, self.n_kv_head * hd, bias=False)
        self.v_proj = nn.Linear(C, self.n_kv_head * hd, bias=False)
        self.o_proj = nn.Linear(self.n_head * hd, C, bias=False)

    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        NH, KVH, hd = self.n_head, self.n_kv_head, self.head_dim
        q = self.q_proj(x).view(b, t, NH, hd).transpose(1, 2)  # (B,NH,T,hd)
        k = self.k_proj(x).view(b, t, KVH, hd).transpose(1, 2)  # (B,KVH,T,hd)
        v = self.v_proj(x).view(b, t, KVH, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = NH // KVH
        k = k.repeat_interleave(rep, dim=1)  # (B,NH,T,hd): head h reads kv head h // rep
        v = v.repeat_interleave(rep, dim=1)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
        causal = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1, dtype=torch.float32).to(q.dtype)
        y = (att @ v).transpose(1, 2).reshape(b, t, NH * hd)
        return self.o_proj(y)


class Mlp(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, I = cfg.hidden_size, cfg.intermediate_size
        self.gate_proj = nn.Linear(C, I, bias=False)
        self.up_proj = nn.Linear(C, I, bias=False)
        self.down_proj = nn.Linear(I, C, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = Mlp(cfg)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class Llama(nn.Module):
    """Hugging Face's LlamaForCausalLM, minus caches and options: tokens (B,T) → logits (B,T,V)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.vocab_size = cfg.vocab_size
        self.model = LlamaModel(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def forward(self, tokens, targets=None):
        """Logits (B,T,V) and, given targets (B,T), the mean cross-entropy over targets ≠ -1."""
        t = tokens.shape[1]
        cos, sin = rope_cos_sin(t, self.cfg.head_dim, self.cfg.rope_theta, tokens.device)
        x = self.model.embed_tokens(tokens)
        for block in self.model.layers:
            x = block(x, cos, sin)
        logits = self.lm_head(self.model.norm(x))
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.reshape(-1, self.vocab_size), targets.reshape(-1), ignore_index=-1)
        return logits, loss


def init_weights(model, seed, std=0.02):
    """Hugging Face's initialisation, seeded: every matrix N(0, std), every norm weight 1."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=gen) * std)
            else:
                p.fill_(1.0)
