"""Reference RoPE tables from Hugging Face `transformers` itself, for tests/kernels/rope_test.ts: the
inverse frequencies, cos and sin that each family's rotary embedding computes, with RoPE scaling
(`linear`, `llama3`) and Gemma 3's two bases (sliding layers 10000, full layers 1e6 with linear
scaling). The configs are built from v4-style keys (`rope_theta`, `rope_scaling`,
`rope_local_base_freq`, `sliding_window_pattern`), and each case also records the v5
`rope_parameters` transformers derives from them.

Run in a throwaway virtual environment (the test suite itself never needs Python):

    python3 -m venv /tmp/venvk && /tmp/venvk/bin/pip install torch transformers
    /tmp/venvk/bin/python scripts/rope_fixtures.py

Writes tests/fixtures/rope_tables.json: per case its model type, head size `hs`, positions `T`,
`rope_theta`, `rope_scaling` (v4), `rope_parameters` (v5), and float32 `inv_freq` (hs/2), `cos`
and `sin` (T × hs/2: the first half of transformers' (T, hs) tables, whose halves are equal).
"""

import json
import os

import torch
import transformers
from transformers import Gemma3TextConfig, LlamaConfig
from transformers.models.gemma3.modeling_gemma3 import Gemma3RotaryEmbedding
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

T = 16
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "rope_tables.json")

# name: (hidden_size, heads, rope_theta, rope_scaling, max_position_embeddings). With hs = 16 and
# original_max_position_embeddings = 64, llama3_small's wavelengths 2π·10000^(d/8) fall in all three
# of the rule's bands: below 64/4 kept, between 16 and 64 smoothed, above 64 divided by the factor.
LLAMA = {
    "llama_default": (64, 4, 10000.0, None, 128),
    "llama_linear": (64, 4, 500.0, {"rope_type": "linear", "factor": 4.0}, 128),
    "llama3_small": (
        64,
        4,
        10000.0,
        {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        },
        256,
    ),
    # Llama 3.2's own settings (1B/3B), at head size 32.
    "llama3_32": (
        128,
        4,
        500000.0,
        {
            "rope_type": "llama3",
            "factor": 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
        131072,
    ),
}


def tables(rotary, hs, **kwargs):
    x = torch.zeros(1, T, hs)
    cos, sin = rotary(x, torch.arange(T)[None, :], **kwargs)
    half = hs // 2
    flat = lambda t: [float(v) for v in t[0, :, :half].reshape(-1)]
    return flat(cos), flat(sin)


def case(model_type, hs, theta, scaling, rope_parameters, inv_freq, cos_sin):
    assert inv_freq.dtype == torch.float32
    return {
        "model_type": model_type,
        "hs": hs,
        "T": T,
        "rope_theta": theta,
        "rope_scaling": scaling,
        "rope_parameters": rope_parameters,
        "inv_freq": [float(v) for v in inv_freq],
        "cos": cos_sin[0],
        "sin": cos_sin[1],
    }


def main():
    cases = {}
    for name, (C, NH, theta, scaling, max_pos) in LLAMA.items():
        kwargs = {"rope_scaling": dict(scaling)} if scaling else {}
        cfg = LlamaConfig(
            hidden_size=C,
            num_attention_heads=NH,
            rope_theta=theta,
            max_position_embeddings=max_pos,
            **kwargs,
        )
        rotary = LlamaRotaryEmbedding(cfg)
        assert rotary.attention_scaling == 1.0
        hs = C // NH
        params = dict(cfg.rope_parameters)
        cases[name] = case("llama", hs, theta, scaling, params, rotary.inv_freq, tables(rotary, hs))

    # Gemma 3 (4B-like): head_dim 16 ≠ hidden/heads, local base 10000, global 1e6 with linear factor 8.
    gemma_scaling = {"rope_type": "linear", "factor": 8.0}
    cfg = Gemma3TextConfig(
        hidden_size=32,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=16,
        num_hidden_layers=8,
        rope_theta=1e6,
        rope_local_base_freq=10000.0,
        rope_scaling=dict(gemma_scaling),
        sliding_window_pattern=3,
    )
    rotary = Gemma3RotaryEmbedding(cfg)
    layers = [("sliding_attention", 10000.0, None), ("full_attention", 1e6, gemma_scaling)]
    for layer_type, theta, scaling in layers:
        params = dict(cfg.rope_parameters[layer_type])
        assert params["rope_theta"] == theta, params
        assert getattr(rotary, f"{layer_type}_attention_scaling") == 1.0
        inv = getattr(rotary, f"{layer_type}_inv_freq")
        cases[f"gemma3_{layer_type}"] = case(
            "gemma3_text", 16, theta, scaling, params, inv, tables(rotary, 16, layer_type=layer_type)
        )

    out = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "cases": cases,
        "gemma3_layer_types": list(cfg.layer_types),
    }
    with open(OUT, "w") as f:
        f.write(json.dumps(out, indent=2) + "\n")  # as `deno fmt` writes it
    versions = f"transformers {transformers.__version__}, torch {torch.__version__}"
    print(f"wrote {OUT}: {len(cases)} cases ({versions})")


if __name__ == "__main__":
    main()
