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

import json
import math
import os
import struct

import numpy as np
import torch

from gpt2_torch import GPT, config

# name: (L, NH, C, V, maxT, B, T). The tests use gpt2_c64 for logits and gradients only: its
# AdamW steps divide near-zero gradients by their own size, where f32 and f64 part by ~6e-3.
FIXTURES = {"gpt2_tiny": (2, 2, 32, 67, 16, 3, 16), "gpt2_c64": (2, 2, 64, 64, 16, 2, 16)}
SEED = 1234
LR, BETAS, EPS, WEIGHT_DECAY = 1e-3, (0.9, 0.95), 1e-8, 0.1
# The gradient norms are about 1.23 and 1.11 (printed below), so this clip triggers at both steps,
# each with its own scale factor.
CLIP = 1.0
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
# safetensors, by hand (the `safetensors` package is not installed): F32 tensors only.


def write_safetensors(path, tensors, metadata=None):
    header = {"__metadata__": metadata} if metadata else {}
    offset, blobs = 0, []
    for name, t in tensors.items():
        blob = np.ascontiguousarray(t.detach().numpy(), dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    metadata = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        begin, end = e["data_offsets"]
        assert e["dtype"] == "F32"
        out[name] = np.frombuffer(raw[8 + n + begin : 8 + n + end], dtype="<f4").reshape(e["shape"])
    return out, metadata


# ---------------------------------------------------------------------------------------------


def main():
    for name, dims in FIXTURES.items():
        write_fixture(name, *dims)


def write_fixture(name, L, NH, C, V, MAX_T, B, T):
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    model = GPT(config(L, NH, C, V, MAX_T))
    init_weights(model, L)
    params = dict(model.named_parameters())
    initial = {n: p.detach().clone() for n, p in params.items()}

    data = torch.randint(0, V, (B, T + 1))
    tokens, targets = data[:, :T], data[:, 1:]

    decay = [p for p in params.values() if p.dim() == 2]
    no_decay = [p for p in params.values() if p.dim() != 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}],
        lr=LR,
        betas=BETAS,
        eps=EPS,
    )

    logits, loss = model(tokens, targets)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in params.items()}
    gradnorm1 = torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP).item()
    opt.step()
    opt.zero_grad(set_to_none=True)
    _, loss2 = model(tokens, targets)
    loss2.backward()
    gradnorm2 = torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP).item()
    opt.step()
    step2 = {n: p.detach().clone() for n, p in params.items()}
    if not (gradnorm1 > CLIP or gradnorm2 > CLIP):
        raise SystemExit(f"clip {CLIP} never triggers (norms {gradnorm1}, {gradnorm2})")

    os.makedirs(os.path.join(ROOT, name), exist_ok=True)
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
    with open(os.path.join(ROOT, name, "config.json"), "w") as f:
        json.dump(hf_config, f, indent=2)
        f.write("\n")
    model_path = os.path.join(ROOT, name, "model.safetensors")
    write_safetensors(model_path, initial, {"format": "pt"})

    expected = {
        "tokens": tokens.float(),
        "targets": targets.float(),
        "logits": logits,
        "loss": loss.reshape(()),
        "gradnorm1": torch.tensor(gradnorm1),
        "gradnorm2": torch.tensor(gradnorm2),
        "loss2": loss2.reshape(()),
    }
    expected.update({f"grad.{n}": g for n, g in grads.items()})
    expected.update({f"step2.{n}": p for n, p in step2.items()})
    metadata = {
        "seed": str(SEED),
        "B": str(B),
        "T": str(T),
        "lr": repr(LR),
        "beta1": repr(BETAS[0]),
        "beta2": repr(BETAS[1]),
        "eps": repr(EPS),
        "weight_decay": repr(WEIGHT_DECAY),
        "clip": repr(CLIP),
        "tokens": "token ids stored as exact F32 integers",
        "torch": torch.__version__,
    }
    expected_path = os.path.join(ROOT, f"{name}_expected.safetensors")
    write_safetensors(expected_path, expected, metadata)

    worst = check(config(L, NH, C, V, MAX_T), model_path, expected_path, initial, expected, tokens, targets)
    print(f"{name}: {sum(p.numel() for p in initial.values())} parameters, {len(initial)} tensors")
    print(f"loss {loss.item():.6f}  (ln V = {math.log(V):.6f})  loss2 {loss2.item():.6f}")
    print(f"gradnorm1 {gradnorm1:.6f}  gradnorm2 {gradnorm2:.6f}  clip {CLIP}")
    for path in (model_path, os.path.join(ROOT, name, "config.json"), expected_path):
        print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path)} bytes)")
    print("float64 rerun (AdamW by hand) vs stored float32, max relative error:")
    print("  " + "  ".join(f"{k} {e:.1e}" for k, e in worst.items()))


def max_rel_error(actual, expected):
    """tests/_util.ts's maxRelError: relative where values are not tiny, against the tensor's scale where they are."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    floor = max(np.abs(expected).max() * 1e-3, 1e-30)
    return float((np.abs(actual - expected) / np.maximum(np.abs(expected), floor)).max())


def check(cfg, model_path, expected_path, initial, expected, tokens, targets):
    """Independent checks: both files read back bit-exact, and a float64 rerun with AdamW and the
    clip written out by hand agrees with the stored float32 numbers. Returns the worst errors."""
    stored, _ = read_safetensors(model_path)
    assert list(stored) == list(initial)
    for n, t in initial.items():
        assert np.array_equal(stored[n], t.numpy()), n
    back, metadata = read_safetensors(expected_path)
    assert float(metadata["clip"]) == CLIP
    for n, t in expected.items():
        assert np.array_equal(back[n], t.detach().numpy()), n

    model = GPT(cfg).double()
    params = dict(model.named_parameters())
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(torch.from_numpy(stored[n].astype(np.float64)))
    worst = {}
    m = {n: np.zeros(p.shape) for n, p in params.items()}
    v = {n: np.zeros(p.shape) for n, p in params.items()}
    for step in (1, 2):
        model.zero_grad(set_to_none=True)
        logits, loss = model(tokens, targets)
        loss.backward()
        norm = math.sqrt(sum(float((p.grad**2).sum()) for p in params.values()))
        suffix = "" if step == 1 else "2"
        worst[f"loss{suffix}"] = max_rel_error(back["loss" if step == 1 else "loss2"], loss.item())
        worst[f"gradnorm{step}"] = max_rel_error(back[f"gradnorm{step}"], norm)
        if step == 1:
            worst["logits"] = max_rel_error(back["logits"], logits.detach().numpy())
            worst["grad"] = max(max_rel_error(back[f"grad.{n}"], p.grad.numpy()) for n, p in params.items())
        scale = min(1.0, CLIP / (norm + 1e-6))
        with torch.no_grad():
            for n, p in params.items():
                g = p.grad.numpy() * scale
                m[n] = BETAS[0] * m[n] + (1 - BETAS[0]) * g
                v[n] = BETAS[1] * v[n] + (1 - BETAS[1]) * g * g
                wd = WEIGHT_DECAY if p.dim() == 2 else 0.0
                mhat, vhat = m[n] / (1 - BETAS[0] ** step), v[n] / (1 - BETAS[1] ** step)
                p.copy_(torch.from_numpy(p.numpy() * (1 - LR * wd) - LR * mhat / (np.sqrt(vhat) + EPS)))
    worst["step2"] = max(max_rel_error(back[f"step2.{n}"], p.detach().numpy()) for n, p in params.items())
    # float32 rounding alone reaches ~1.5e-4 on the gradients and ~6e-4 after two AdamW steps,
    # where Adam divides small gradients by their own size.
    for key, err in worst.items():
        assert err < 1e-3 or (key == "step2" and cfg.n_embd == 64), (key, err)
    return worst


if __name__ == "__main__":
    main()
