"""Reference numbers for the LLaMA model tests, from a plain-PyTorch Llama with Hugging Face
semantics (scripts/llama_torch.py: RMSNorm, rotate-half RoPE, grouped-query attention, SwiGLU).

Run with Debian's PyTorch (the test suite itself never needs Python):

    /usr/bin/python3 scripts/llama_fixtures.py

Writes three fixtures, each in float32 (see scripts/fixture_tools.py for the AdamW settings):

- llama_gqa_tied: grouped-query attention (8 query heads, 2 key/value heads, head size 4), LM head
  tied to the token embedding; L=2, C=32, H=64, V=67, B=3, T=16.
- llama_mha_untied: multi-head attention with odd sizes (3 heads of 6, H=37, V=51, B=2, T=11),
  an untied LM head, rms_norm_eps 1e-6, rope_theta 500.
- llama_c64: C=64, 8 query heads, 4 key/value heads (as stories260K), H=128, V=64, B=2, T=16:
  every row a multiple of 64 floats, so a CPU adapter runs its matmuls, attention and norms on
  texture operands.

For each NAME: tests/fixtures/NAME/config.json + model.safetensors (the initial model, Hugging
Face Llama names and layout), and tests/fixtures/NAME_expected.safetensors: tokens, targets,
logits, loss, grad.<name>, gradnorm1, gradnorm2, loss2 and step2.<name> after two clipped AdamW
steps on the same batch.
"""

import os

import torch

from fixture_tools import SEED, check, metadata, report, save_fixture, train_two_steps
from llama_torch import Llama, config, init_weights

# name: (L, C, NH, NKV, H, V, B, T, eps, theta, tied)
FIXTURES = {
    "llama_gqa_tied": (2, 32, 8, 2, 64, 67, 3, 16, 1e-5, 10000.0, True),
    "llama_mha_untied": (2, 18, 3, 3, 37, 51, 2, 11, 1e-6, 500.0, False),
    "llama_c64": (2, 64, 8, 4, 128, 64, 2, 16, 1e-5, 10000.0, True),
}
MAX_T = 16
NOISE = 0.05  # added to every norm weight so the tests exercise them

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")


def main():
    for name, dims in FIXTURES.items():
        write_fixture(name, *dims)


def write_fixture(name, L, C, NH, NKV, H, V, B, T, eps, theta, tied):
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    cfg = config(C, H, L, NH, NKV, V, MAX_T, rms_norm_eps=eps, rope_theta=theta, tie_word_embeddings=tied)
    model = Llama(cfg)
    init_weights(model, SEED)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * NOISE)
    initial, tokens, targets, expected = train_two_steps(model, V, B, T)

    hf_config = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": C,
        "intermediate_size": H,
        "num_hidden_layers": L,
        "num_attention_heads": NH,
        "num_key_value_heads": NKV,
        "max_position_embeddings": MAX_T,
        "vocab_size": V,
        "rms_norm_eps": eps,
        "rope_theta": theta,
        "tie_word_embeddings": tied,
        "hidden_act": "silu",
        "tokenizer": "bytes",
    }
    paths = save_fixture(os.path.join(ROOT, name), hf_config, initial, expected, metadata(B, T))
    worst = check(Llama(cfg).double(), paths, initial, expected, tokens, targets)
    # float32 rounding reaches ~1e-4 on the gradients; after two AdamW steps, where Adam divides
    # near-zero gradients by their own size, more.
    for key, err in worst.items():
        assert err < 1e-3 or key == "step2", (key, err)
    report(name, V, initial, expected, paths, worst)


if __name__ == "__main__":
    main()
