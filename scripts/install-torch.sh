#!/usr/bin/env bash
# PyTorch for this runner: where a GPU answers, `make install` brings the default (CUDA) build;
# elsewhere PyTorch's CPU wheels at the same versions, a fraction of the download.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "GPU runner: the CUDA build of PyTorch comes with make install"
else
    make torch-cpu
fi
