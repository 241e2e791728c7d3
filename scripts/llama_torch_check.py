"""Checks scripts/llama_torch.py against a loop-by-loop float64 Llama written from the Hugging Face
definition (RMSNorm, rotate-half RoPE, grouped-query causal attention, SwiGLU), and, where the
`transformers` package is installed, against its LlamaForCausalLM. Exits 1 on a mismatch.

    /usr/bin/python3 scripts/llama_torch_check.py
    /usr/bin/python3 scripts/llama_torch_check.py --write DIR [--tied] [--sharded]

`--write` instead saves a tiny random Llama as a Hugging Face folder (config.json and
model.safetensors, or two shards and model.safetensors.index.json), for tests of the trainer.
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_torch  # noqa: E402
from fsdp_train import write_safetensors  # noqa: E402

TINY = dict(
    hidden_size=8,
    intermediate_size=12,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=11,
    max_position_embeddings=16,
    rms_norm_eps=1e-5,
    rope_theta=500000.0,
)


# ---------------------------------------------------------------------------------------------
# The reference: every sum written out, float64.


def rms_norm(x, w, eps):
    """x (C,) → (C,)."""
    return w * x / math.sqrt(sum(v * v for v in x) / len(x) + eps)


def rope(x, pos, theta):
    """One head's vector x (hd,) at position pos: dims d and d + hd/2 rotate by pos · θ^(-2d/hd)."""
    hd = len(x)
    h = hd // 2
    out = np.empty(hd)
    for d in range(h):
        angle = pos * theta ** (-2.0 * d / hd)
        c, s = math.cos(angle), math.sin(angle)
        out[d] = x[d] * c - x[d + h] * s
        out[d + h] = x[d + h] * c + x[d] * s
    return out


def reference_logits(cfg, p, tokens):
    """tokens (T,) → logits (T, V) from parameters `p` (numpy float64, Hugging Face names)."""
    H, KV = cfg.num_attention_heads, cfg.num_key_value_heads
    hd, T = cfg.head_dim, len(tokens)
    x = np.stack([p["model.embed_tokens.weight"][t] for t in tokens])  # (T,C)
    for i in range(cfg.num_hidden_layers):
        pre = f"model.layers.{i}."
        n = np.stack([rms_norm(x[t], p[pre + "input_layernorm.weight"], cfg.rms_norm_eps) for t in range(T)])
        q, k, v = (n @ p[pre + f"self_attn.{m}_proj.weight"].T for m in "qkv")  # Linear: y = x Wᵀ
        y = np.zeros((T, H * hd))
        for h in range(H):
            g = h // (H // KV)  # the key/value head this query head shares
            for t in range(T):
                qt = rope(q[t, h * hd : (h + 1) * hd], t, cfg.rope_theta)
                scores = [
                    qt @ rope(k[s, g * hd : (g + 1) * hd], s, cfg.rope_theta) / math.sqrt(hd) for s in range(t + 1)
                ]
                top = max(scores)
                e = [math.exp(z - top) for z in scores]
                for s in range(t + 1):
                    y[t, h * hd : (h + 1) * hd] += e[s] / sum(e) * v[s, g * hd : (g + 1) * hd]
        x = x + y @ p[pre + "self_attn.o_proj.weight"].T
        n = np.stack([rms_norm(x[t], p[pre + "post_attention_layernorm.weight"], cfg.rms_norm_eps) for t in range(T)])
        gate, up = n @ p[pre + "mlp.gate_proj.weight"].T, n @ p[pre + "mlp.up_proj.weight"].T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ p[pre + "mlp.down_proj.weight"].T
    n = np.stack([rms_norm(x[t], p["model.norm.weight"], cfg.rms_norm_eps) for t in range(T)])
    head = p["model.embed_tokens.weight"] if cfg.tie_word_embeddings else p["lm_head.weight"]
    return n @ head.T


# ---------------------------------------------------------------------------------------------


def tiny_model(tied, seed, vocab_size=TINY["vocab_size"]):
    cfg = llama_torch.config(**{**TINY, "vocab_size": vocab_size}, tie_word_embeddings=tied)
    model = llama_torch.Llama(cfg)
    llama_torch.init_weights(model, seed, std=0.3)  # large weights: attention far from uniform
    with torch.no_grad():  # norms away from 1, so that their weights are checked too
        gen = torch.Generator().manual_seed(seed + 1)
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(torch.randn(p.shape, generator=gen) * 0.2)
    return cfg, model


def check_reference(failures):
    tokens = torch.tensor([[3, 1, 4, 1, 5, 9, 2], [6, 5, 3, 5, 8, 9, 7]])
    for tied in (False, True):
        cfg, model = tiny_model(tied, seed=7)
        params = {n: t.double().numpy() for n, t in model.state_dict().items()}
        logits, loss = model(tokens[:, :-1], tokens[:, 1:])
        for b in range(tokens.shape[0]):
            expected = reference_logits(cfg, params, tokens[b, :-1].tolist())
            err = np.abs(logits[b].detach().double().numpy() - expected).max() / np.abs(expected).max()
            report(failures, f"logits vs float64 loops (tied={tied}, row {b})", err, 1e-5)
        ref = torch.from_numpy(np.stack([reference_logits(cfg, params, r[:-1]) for r in tokens.tolist()]))
        ref_loss = torch.nn.functional.cross_entropy(ref.reshape(-1, cfg.vocab_size), tokens[:, 1:].reshape(-1))
        report(
            failures, f"mean cross-entropy (tied={tied})", abs(loss.item() - ref_loss.item()) / ref_loss.item(), 1e-6
        )
        ignored = tokens[:, 1:].clone()
        ignored[0, :3] = -1
        _, part = model(tokens[:, :-1], ignored)
        keep = ignored.reshape(-1) != -1
        want = torch.nn.functional.cross_entropy(ref.reshape(-1, cfg.vocab_size)[keep], ignored.reshape(-1)[keep])
        report(failures, f"cross-entropy skipping targets -1 (tied={tied})", abs(part.item() - want.item()), 1e-5)


def check_grouped_query(failures):
    """A KV-head model equals the multi-head model whose key/value heads repeat each group's."""
    cfg, model = tiny_model(False, seed=3)
    wide_cfg = llama_torch.config(**{**TINY, "num_key_value_heads": TINY["num_attention_heads"]})
    wide = llama_torch.Llama(wide_cfg)
    rep, hd = cfg.num_attention_heads // cfg.num_key_value_heads, cfg.head_dim
    state = dict(model.state_dict())
    for name in list(state):
        if name.endswith(("k_proj.weight", "v_proj.weight")):
            heads = state[name].view(cfg.num_key_value_heads, hd, -1)
            state[name] = heads.repeat_interleave(rep, dim=0).reshape(-1, heads.shape[-1])
    wide.load_state_dict(state)
    tokens = torch.tensor([[1, 2, 3, 4, 5, 6]])
    err = (wide(tokens)[0] - model(tokens)[0]).abs().max().item()
    report(failures, "grouped-query = multi-head with repeated key/value heads", err, 1e-5)


def check_transformers(failures):
    try:
        from transformers import LlamaConfig, LlamaForCausalLM
    except ImportError:
        print("transformers is not installed: its LlamaForCausalLM was not compared")
        return
    tokens = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])
    for tied in (False, True):
        _, model = tiny_model(tied, seed=11)
        hf = LlamaForCausalLM(LlamaConfig(**TINY, tie_word_embeddings=tied, attn_implementation="eager")).float()
        missing, unexpected = hf.load_state_dict(model.state_dict(), strict=False)
        if unexpected or [m for m in missing if m != "lm_head.weight"]:
            failures.append(f"transformers names differ: missing {missing}, unexpected {unexpected}")
            continue
        hf.eval()
        with torch.no_grad():
            err = (hf(tokens).logits - model(tokens)[0]).abs().max().item()
        report(failures, f"logits vs transformers LlamaForCausalLM (tied={tied})", err, 1e-5)


def report(failures, what, err, tol):
    ok = err <= tol
    print(f"{'ok  ' if ok else 'FAIL'} {what}: {err:.2e} (tolerance {tol:g})")
    if not ok:
        failures.append(what)


def write_folder(out, tied, sharded, seed=5):
    """A tiny random Llama over bytes (vocabulary 256) as a Hugging Face folder; a tied one stores its
    matrix as lm_head.weight."""
    _, model = tiny_model(tied, seed, vocab_size=256)
    os.makedirs(out, exist_ok=True)
    config = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        **TINY,
        "vocab_size": 256,
        "hidden_act": "silu",
        "tie_word_embeddings": tied,
        "torch_dtype": "float32",
        "tokenizer": "bytes",
    }
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    state = model.state_dict()
    if tied:
        del state["model.embed_tokens.weight"]  # the shared matrix under the head's name
    if not sharded:
        write_safetensors(os.path.join(out, "model.safetensors"), state, {"format": "pt"})
        return
    names = list(state)
    parts = [names[: len(names) // 2], names[len(names) // 2 :]]
    weight_map = {}
    for k, part in enumerate(parts):
        file = f"model-{k + 1:05d}-of-{len(parts):05d}.safetensors"
        write_safetensors(os.path.join(out, file), {n: state[n] for n in part}, {"format": "pt"})
        weight_map.update({n: file for n in part})
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", metavar="DIR", help="write a tiny random Llama folder instead of checking")
    parser.add_argument("--tied", action="store_true", help="with --write: tie the LM head to the embedding")
    parser.add_argument("--sharded", action="store_true", help="with --write: two weight shards and an index")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.write:
        write_folder(args.write, args.tied, args.sharded)
        return
    failures = []
    check_reference(failures)
    check_grouped_query(failures)
    check_transformers(failures)
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
