"""Reference numbers for the GPT-2 model tests, from a plain-PyTorch GPT-2 with Hugging Face semantics.

Run with Debian's PyTorch (the test suite itself never needs Python):

    /usr/bin/python3 scripts/gpt2_fixtures.py

Writes two fixtures, NAME = gpt2_tiny (L=2, NH=2, C=32, V=67, maxT=16, one batch B=3, T=16) and
gpt2_c64 (L=2, NH=2, C=64, V=64, maxT=16, B=2, T=16: every row a multiple of 64 floats, so a CPU
adapter runs its matmuls and attention on texture operands), each in float32:

- tests/fixtures/NAME/config.json + model.safetensors: the initial model, Hugging Face names
  and layout (Conv1D weights [in, out], LM head tied to wte).
- tests/fixtures/NAME_expected.safetensors, all F32:
  tokens (B,T) and targets (B,T) as exact f32 integers; logits (B,T,V); loss (scalar, mean
  cross-entropy); grad.<name> for every parameter; gradnorm1, gradnorm2 (global gradient norms
  before clipping) and loss2 (the loss before step 2); step2.<name>, every parameter after two steps
  of AdamW on the same batch (two parameter groups: weight decay on 2-D tensors only), each step
  preceded by clip_grad_norm_ at the `clip` value stored in the file's metadata with the other
  hyperparameters.
"""

import math
import os

import torch

from fixture_tools import SEED, check, metadata, report, save_fixture, train_two_steps
from gpt2_torch import GPT, config

# name: (L, NH, C, V, maxT, B, T). The tests use gpt2_c64 for logits and gradients only: its
# AdamW steps divide near-zero gradients by their own size, where f32 and f64 part by ~6e-3.
FIXTURES = {"gpt2_tiny": (2, 2, 32, 67, 16, 3, 16), "gpt2_c64": (2, 2, 64, 64, 16, 2, 16)}
# The gradient norms are about 1.23 and 1.11 (printed below), so the clip at 1.0 triggers at both
# steps, each with its own scale factor.
NOISE = 0.05  # added to every bias and LayerNorm parameter so the tests exercise them

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")


# ---------------------------------------------------------------------------------------------
# The model (scripts/gpt2_torch.py), initialised as GPT-2, plus noise on biases and LayerNorms.


def init_weights(model, L):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("c_proj.weight"):
                p.normal_(0.0, 0.02 / math.sqrt(2 * L))
            elif p.dim() == 2:
                p.normal_(0.0, 0.02)
            else:
                p.fill_(1.0 if name.startswith("ln") or ".ln_" in name else 0.0)
                p.add_(torch.randn_like(p) * NOISE)


# ---------------------------------------------------------------------------------------------


def main():
    for name, dims in FIXTURES.items():
        write_fixture(name, *dims)


def write_fixture(name, L, NH, C, V, MAX_T, B, T):
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    model = GPT(config(L, NH, C, V, MAX_T))
    init_weights(model, L)
    initial, tokens, targets, expected = train_two_steps(model, V, B, T)

    hf_config = {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "n_layer": L,
        "n_head": NH,
        "n_embd": C,
        "vocab_size": V,
        "n_positions": MAX_T,
        "n_ctx": MAX_T,
        "layer_norm_epsilon": 1e-5,
        "activation_function": "gelu_new",
        "tie_word_embeddings": True,
        "tokenizer": "bytes",
    }
    paths = save_fixture(os.path.join(ROOT, name), hf_config, initial, expected, metadata(B, T))
    worst = check(GPT(config(L, NH, C, V, MAX_T)).double(), paths, initial, expected, tokens, targets)
    # float32 rounding alone reaches ~1.5e-4 on the gradients and ~6e-4 after two AdamW steps,
    # where Adam divides small gradients by their own size.
    for key, err in worst.items():
        assert err < 1e-3 or (key == "step2" and C == 64), (key, err)
    report(name, V, initial, expected, paths, worst)


if __name__ == "__main__":
    main()
