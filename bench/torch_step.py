"""PyTorch baseline for bench/compare_pytorch.ts: the same training step (forward, backward, clip at
1.0, AdamW) as bench/core/train_step.ts, for its GPT-2 and LLaMA configurations, or a square matmul,
printed as one JSON line. `--bf16` runs the step under bf16 autocast (CUDA).

    /usr/bin/python3 bench/torch_step.py step tiny|124m|vocab|vocab64|stories|seed|seed-small [--batch B] [--steps N] [--device cpu|cuda] [--tf32|--bf16] [--threads N]
    /usr/bin/python3 bench/torch_step.py matmul N [--device cpu|cuda] [--tf32] [--threads N]
"""

import argparse
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import gpt2_torch  # noqa: E402
import llama_torch  # noqa: E402


def seed(c, nh, h, t):
    """13 of OpenLLaMA-3B's 26 blocks (bench/core/train_step.ts's seedConfig)."""
    return llama_torch.config(c, h, 13, nh, nh, 32000, t, rms_norm_eps=1e-6)


# name: (model class, config, default batch)
CONFIGS = {
    "tiny": (gpt2_torch.GPT, gpt2_torch.config(4, 4, 128, 256, 128), 8),
    "124m": (gpt2_torch.GPT, gpt2_torch.config(12, 12, 768, 50257, 1024), 4),
    "vocab": (gpt2_torch.GPT, gpt2_torch.config(2, 4, 32, 50257, 32), 4),
    "vocab64": (gpt2_torch.GPT, gpt2_torch.config(2, 4, 64, 50257, 64), 8),
    "stories": (llama_torch.Llama, llama_torch.config(64, 172, 2, 8, 4, 512, 256, rms_norm_eps=1e-5,
                                                      tie_word_embeddings=True), 8),
    "seed": (llama_torch.Llama, seed(3200, 32, 8640, 2048), 4),
    "seed-small": (llama_torch.Llama, seed(384, 4, 1088, 256), 2),
}


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def peak_bytes(device):
    if device == "cuda":
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def bench_step(name, batch, steps, device, bf16):
    model_class, cfg, default_b = CONFIGS[name]
    t = getattr(cfg, "n_positions", None) or cfg.max_position_embeddings
    b = batch or default_b
    torch.manual_seed(1)
    model = model_class(cfg).to(device)
    # Matrices N(0, 0.02) as bench/core/train_step.ts draws them; norms and biases keep their
    # construction values (weights 1, biases 0): zeroed norms made every activation after the first
    # norm 0, a degenerate step.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.02)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
        lr=1e-4, betas=(0.9, 0.95), eps=1e-8,
    )
    tokens = (torch.arange(b * t) * 7919 % cfg.vocab_size).view(b, t).to(device)
    targets = (tokens + 1) % cfg.vocab_size

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            _, loss = model(tokens, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sync(device)

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    return {"name": name, "B": b, "T": t, "seconds": seconds, "tokens_per_s": b * t / seconds,
            "peak_bytes": peak_bytes(device)}


def bench_matmul(n, device):
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b
    sync(device)
    reps, start = 0, time.perf_counter()
    while reps < 3 or time.perf_counter() - start < 1.0:
        a @ b
        reps += 1
    sync(device)
    seconds = (time.perf_counter() - start) / reps
    return {"n": n, "seconds": seconds, "gflops": 2 * n**3 / seconds / 1e9}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["step", "matmul"])
    ap.add_argument("arg")
    ap.add_argument("--batch", type=int)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tf32", action="store_true")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--threads", type=int, help="CPU threads (default: every core, as lavapipe uses)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads or os.cpu_count())
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    if args.what == "step":
        out = bench_step(args.arg, args.batch, args.steps, args.device, args.bf16)
    else:
        out = bench_matmul(int(args.arg), args.device)
    out.update(device=args.device, tf32=args.tf32, bf16=args.bf16, threads=torch.get_num_threads(), torch=torch.__version__)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
