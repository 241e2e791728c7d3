"""A plain-PyTorch GPT-2 with Hugging Face semantics (Conv1D weights [in, out], tanh GELU,
LayerNorm eps from the config (1e-5 by default), causal attention, LM head tied to wte, no dropout):
the reference that the fixtures (scripts/gpt2_fixtures.py), the PyTorch benchmark
(bench/torch_step.py) and the distributed trainer (scripts/fsdp_train.py) run."""

import math
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn


def config(n_layer, n_head, n_embd, vocab_size, n_positions, layer_norm_epsilon=1e-5):
    """The architecture, with the field names of config.json."""
    return SimpleNamespace(
        n_layer=n_layer,
        n_head=n_head,
        n_embd=n_embd,
        vocab_size=vocab_size,
        n_positions=n_positions,
        layer_norm_epsilon=layer_norm_epsilon,
    )


class Conv1D(nn.Module):
    """Hugging Face's linear layer: weight [in, out], y = x @ W + b."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        return x @ self.weight + self.bias


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C = cfg.n_embd
        self.n_head, self.n_embd = cfg.n_head, C
        self.c_attn = Conv1D(C, 3 * C)
        self.c_proj = Conv1D(C, C)

    def forward(self, x):
        b, t, _ = x.shape
        C, NH = self.n_embd, self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (z.view(b, t, NH, C // NH).transpose(1, 2) for z in (q, k, v))  # (B,NH,T,hs)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // NH)
        causal = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, C)
        return self.c_proj(y)


class Mlp(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C = cfg.n_embd
        self.c_fc = Conv1D(C, 4 * C)
        self.c_proj = Conv1D(4 * C, C)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, eps = cfg.n_embd, cfg.layer_norm_epsilon
        self.ln_1 = nn.LayerNorm(C, eps=eps)
        self.attn = Attention(cfg)
        self.ln_2 = nn.LayerNorm(C, eps=eps)
        self.mlp = Mlp(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, V = cfg.n_embd, cfg.vocab_size
        self.vocab_size = V
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(cfg.n_positions, C)
        self.h = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(C, eps=cfg.layer_norm_epsilon)

    def forward(self, tokens, targets=None):
        """Logits (B,T,V) and, given targets (B,T), the mean cross-entropy over targets ≠ -1."""
        t = tokens.shape[1]
        x = self.wte(tokens) + self.wpe(torch.arange(t, device=tokens.device))
        for block in self.h:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.T  # tied LM head
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.reshape(-1, self.vocab_size), targets.reshape(-1), ignore_index=-1)
        return logits, loss
