"""What the PyTorch fixture scripts share (scripts/gpt2_fixtures.py, scripts/llama_fixtures.py,
scripts/family_fixtures.py):
safetensors by hand (the `safetensors` package is not installed; F32 only), two AdamW steps with
gradient clipping as the Deno trainer takes them, writing a fixture's files, an independent float64
rerun of those steps with AdamW written out by hand, and the summary each script prints.

Settings of every fixture: AdamW lr 1e-3, betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on 2-D
tensors only, clip_grad_norm_ at 1.0 before each step.
"""

import json
import math
import os
import struct
from collections import namedtuple

import numpy as np
import torch

SEED = 1234
LR, BETAS, EPS, WEIGHT_DECAY = 1e-3, (0.9, 0.95), 1e-8, 0.1
CLIP = 1.0


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


def max_rel_error(actual, expected):
    """tests/_util.ts's maxRelError: relative where values are not tiny, against the tensor's scale where they are."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    floor = max(np.abs(expected).max() * 1e-3, 1e-30)
    return float((np.abs(actual - expected) / np.maximum(np.abs(expected), floor)).max())


def max_norm_rel_error(actual, expected):
    """tests/_util.ts's maxNormRelError: the largest absolute error over the largest expected magnitude."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-30))


def two_steps(model, tokens, targets, forward=None):
    """Logits, loss and gradients of the first batch, then two clipped AdamW steps on it: the
    `expected` tensors of a fixture (plus the parameters after step 2). `forward(tokens, targets)`
    returns (logits, loss); it defaults to the model itself (a Hugging Face model needs an adapter,
    as its second argument is the attention mask and its loss shifts the labels)."""
    forward = forward or model
    params = dict(model.named_parameters())
    decay = [p for p in params.values() if p.dim() == 2]
    no_decay = [p for p in params.values() if p.dim() != 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}],
        lr=LR,
        betas=BETAS,
        eps=EPS,
    )
    logits, loss = forward(tokens, targets)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in params.items()}
    gradnorm1 = torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP).item()
    opt.step()
    opt.zero_grad(set_to_none=True)
    _, loss2 = forward(tokens, targets)
    loss2.backward()
    gradnorm2 = torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP).item()
    opt.step()
    if not (gradnorm1 > CLIP or gradnorm2 > CLIP):
        raise SystemExit(f"clip {CLIP} never triggers (norms {gradnorm1}, {gradnorm2})")
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
    expected.update({f"step2.{n}": p.detach().clone() for n, p in params.items()})
    return expected


def train_two_steps(model, V, B, T, forward=None):
    """A fixture's run: the initial parameters, a random batch (B, T) of tokens below V and its
    targets, and the `expected` tensors of `two_steps` on it (`forward` as there)."""
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    data = torch.randint(0, V, (B, T + 1))
    tokens, targets = data[:, :T], data[:, 1:]
    return initial, tokens, targets, two_steps(model, tokens, targets, forward)


def metadata(B, T):
    """The fixture file's metadata: the batch and every AdamW setting."""
    return {
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


FixturePaths = namedtuple("FixturePaths", ["config", "model", "expected"])


def save_fixture(folder, hf_config, initial, expected, meta):
    """Writes a fixture: `folder`/config.json and model.safetensors (the initial model), and
    `folder`_expected.safetensors (the expected tensors, with `meta`). Returns the three paths."""
    os.makedirs(folder, exist_ok=True)
    paths = FixturePaths(
        os.path.join(folder, "config.json"),
        os.path.join(folder, "model.safetensors"),
        f"{folder}_expected.safetensors",
    )
    with open(paths.config, "w") as f:
        json.dump(hf_config, f, indent=2)
        f.write("\n")
    write_safetensors(paths.model, initial, {"format": "pt"})
    write_safetensors(paths.expected, expected, meta)
    return paths


def report(name, V, initial, expected, paths, worst):
    """Prints what a fixture holds, the files written and the float64 rerun's worst errors."""
    print(f"{name}: {sum(p.numel() for p in initial.values())} parameters, {len(initial)} tensors")
    loss, loss2 = expected["loss"].item(), expected["loss2"].item()
    print(f"loss {loss:.6f}  (ln V = {math.log(V):.6f})  loss2 {loss2:.6f}")
    print(f"gradnorm1 {expected['gradnorm1'].item():.6f}  gradnorm2 {expected['gradnorm2'].item():.6f}  clip {CLIP}")
    for path in (paths.model, paths.config, paths.expected):
        print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path)} bytes)")
    print("float64 rerun (AdamW by hand) vs stored float32, max relative error (_nw: norm-wise, as assertCloseNorm):")
    print("  " + "  ".join(f"{k} {e:.1e}" for k, e in worst.items()))


def check(model64, paths, initial, expected, tokens, targets, forward=None):
    """Independent checks: both files read back bit-exact, and a float64 rerun (`model64`, the
    same architecture in float64; `forward` as in `two_steps`) with AdamW and the clip written
    out by hand agrees with the stored float32 numbers. Returns the worst errors: element-wise
    relative (tests/_util.ts's maxRelError) and norm-wise (`_nw`, its maxNormRelError)."""
    forward = forward or model64
    stored, _ = read_safetensors(paths.model)
    assert list(stored) == list(initial)
    for n, t in initial.items():
        assert np.array_equal(stored[n], t.numpy()), n
    back, meta = read_safetensors(paths.expected)
    assert float(meta["clip"]) == CLIP
    for n, t in expected.items():
        assert np.array_equal(back[n], t.detach().numpy()), n

    params = dict(model64.named_parameters())
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(torch.from_numpy(stored[n].astype(np.float64)))
    worst = {}
    m = {n: np.zeros(p.shape) for n, p in params.items()}
    v = {n: np.zeros(p.shape) for n, p in params.items()}
    for step in (1, 2):
        model64.zero_grad(set_to_none=True)
        logits, loss = forward(tokens, targets)
        loss.backward()
        norm = math.sqrt(sum(float((p.grad**2).sum()) for p in params.values()))
        suffix = "" if step == 1 else "2"
        worst[f"loss{suffix}"] = max_rel_error(back["loss" if step == 1 else "loss2"], loss.item())
        worst[f"gradnorm{step}"] = max_rel_error(back[f"gradnorm{step}"], norm)
        if step == 1:
            worst["logits"] = max_rel_error(back["logits"], logits.detach().numpy())
            worst["logits_nw"] = max_norm_rel_error(back["logits"], logits.detach().numpy())
            worst["grad"] = max(max_rel_error(back[f"grad.{n}"], p.grad.numpy()) for n, p in params.items())
            worst["grad_nw"] = max(max_norm_rel_error(back[f"grad.{n}"], p.grad.numpy()) for n, p in params.items())
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
    worst["step2_nw"] = max(max_norm_rel_error(back[f"step2.{n}"], p.detach().numpy()) for n, p in params.items())
    return worst
