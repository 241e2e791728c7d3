#!/usr/bin/env bash
# A lent GPU machine's whole session in one command, most important first, each stage under its
# own time limit: the kernel and model tests on the GPU, the PyTorch comparison (CUDA: fp32 with
# TF32 off and on, bf16 autocast), the paper's 1.5B model (seed: 13 of OpenLLaMA-3B's blocks,
# tokens/s, peak memory and hours per 1B tokens against PyTorch), matmul GFLOP/s per blocking
# (then more blockings at 1024³), and a profile of the GPT-2 124M step. Logs go to $OUT (the
# device tool's output folder) or runs/gpu.
#
#   bash bench/gpu_pack.sh                    # here: packs .gpu/
#   bash .gpu/enter.sh bash bench/gpu_run.sh  # there, carrying .gpu
set -u
out=${OUT:-runs/gpu}
mkdir -p "$out"
stage() {
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s): $*"
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  grep -v XDG_RUNTIME_DIR "$out/$name.log" | tail -n "${TAIL:-40}"
  echo "== $name exit $rc"
}
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,memory.used --format=csv,noheader || true
TAIL=6 stage tests 110 deno test -A tests/kernels/ tests/core/gpt2_test.ts tests/core/llama_test.ts
stage compare 240 deno run -A bench/compare_pytorch.ts --configs tiny,124m,vocab --matmul 1024,4096 --device cuda
stage seed 240 deno run -A bench/compare_pytorch.ts --configs seed --matmul 4096 --device cuda
stage sweep 70 deno run -A bench/kernels/matmul_sweep.ts --sizes 1024,4096 \
  --blockings default,8x8/16x16,8x8/16x16/k8/s1,8x8/16x16/k8,8x8/16x16/k16/p,4x8/16x16/k16/p
# 1024³ is below 0.5x of PyTorch with the default 128x128 tiles (64 tiles, split 4 ways along K):
# smaller tiles and other splits for mid-sized products, not yet measured on a GPU.
stage sweep1024 60 deno run -A bench/kernels/matmul_sweep.ts --sizes 1024 \
  --blockings default,8x8/16x16/k16/s8/p,8x8/16x16/k16/s2/p,4x4/16x16/k16/p,4x4/16x16/k16/s1/p,8x4/16x16/k16/p,4x8/16x16/k16/s2/p
TAIL=25 stage profile 70 deno run -A bench/core/step_profile.ts 124m --batch 16
