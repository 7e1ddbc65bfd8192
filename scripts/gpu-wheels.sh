#!/usr/bin/env bash
# The few wheels benchmarks/gpu_check.py and vs_airbench.py need that a bare CUDA image lacks
# (pydantic, onnxscript, onnx-ir and their small dependencies; airbench), for CPython 3.10-3.13
# on x86_64 Linux, into .gpu-wheels/ (git-ignored, ~20 MB): carry that folder to the GPU machine
# with the working tree.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.gpu-wheels
mkdir -p "$out"
python=${PYTHON:-.venv/bin/python}
pins=$(grep -E '^(pydantic|pydantic_core|annotated-types|typing-inspection|typing_extensions|onnxscript|onnx-ir|ml_dtypes)==' constraints.txt)
for version in 3.10 3.11 3.12 3.13; do
    "$python" -m pip download --quiet --only-binary=:all: --no-deps --dest "$out" \
        --python-version "$version" --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux_2_28_x86_64 $pins
done
# airbench (benchmarks/vs_airbench.py's baseline) is an sdist on PyPI: built here into a
# pure-Python wheel, so the GPU machine installs it without a network or a build backend
pin=$(grep -E '^airbench==' constraints.txt)
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$out" "$pin"
du -sh "$out"
