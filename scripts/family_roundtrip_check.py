"""Do the Hugging Face folders we write load in transformers as the same models? For each family
fixture (tests/fixtures/<family>_tiny, written by transformers), `deno task inherit` keeps every
block, which saves the model through the project's own writer (config.json in the family's form,
the family's tensor names, Phi-3's fused tensors); transformers' AutoModelForCausalLM then loads
that folder and the fixture's, and the two give the same logits on the fixture's batch. A name
`FIXTURE/model.gguf` inherits from the fixture's GGUF file instead (llama3_tiny's states Llama 3's
RoPE scaling as llama.cpp's per-frequency divisors, which we write as a one-list `longrope`).

    python3 -m venv /tmp/venvd && /tmp/venvd/bin/pip install torch transformers safetensors
    /tmp/venvd/bin/python scripts/family_roundtrip_check.py [NAME ...]

Prints one line per fixture (the largest logit difference, relative to the largest logit) and exits
1 when one exceeds 1e-5 or transformers reports a missing or unexpected tensor.
"""

import json
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
NAMES = [
    "llama3_tiny", "qwen2_tiny", "qwen3_tiny", "mistral_tiny", "phi3_tiny", "gemma3_text_tiny",
    "llama3_tiny/model.gguf",
]  # fmt: skip
TOLERANCE = 1e-5


def load(folder):
    model, info = AutoModelForCausalLM.from_pretrained(
        folder, attn_implementation="eager", dtype=torch.float32, output_loading_info=True
    )
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    return model.eval(), bad


def check(name, out):
    base = name.split("/")[0]
    fixture = os.path.join(FIXTURES, base)
    layers = json.load(open(os.path.join(fixture, "config.json")))["num_hidden_layers"]
    ours = os.path.join(out, name.replace("/", "_"))
    source = os.path.join(FIXTURES, name)
    subprocess.run(
        ["deno", "run", "-A", "cli.ts", "inherit", "--reference", source, "--layers", str(layers), "--out", ours],
        cwd=ROOT, check=True, capture_output=True,
    )
    tokens = load_file(os.path.join(FIXTURES, f"{base}_expected.safetensors"))["tokens"].long()
    reference, _ = load(fixture)
    written, bad = load(ours)
    with torch.no_grad():
        a = reference(tokens).logits
        b = written(tokens).logits
    err = ((a - b).abs().max() / a.abs().max()).item()
    model_type = json.load(open(os.path.join(ours, "config.json")))["model_type"]
    ok = err <= TOLERANCE and not bad
    print(f"{name}: model_type {model_type}, {type(written).__name__}, max |Δlogit|/max |logit| = {err:.3e}"
          + (f", loading: {bad}" if bad else "") + ("" if ok else "  FAIL"))
    return ok


def main():
    names = sys.argv[1:] or NAMES
    with tempfile.TemporaryDirectory() as out:
        results = [check(name, out) for name in names]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
