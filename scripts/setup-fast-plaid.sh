#!/usr/bin/env bash
# A separate virtual environment for fast-plaid, PyLate's own index engine, as a peer of
# eval/bench_index.py (--peers fast-plaid). Its wheels are built for torch 2.11, which cannot share
# .venv with torch 2.13, so it lives in .venv-fast-plaid and the benchmark drives it through a
# subprocess (eval/peers/fast_plaid_peer.py). PyPI's torch 2.11 is its CUDA build (a few GB to
# download); it runs on the CPU as well. Not needed for the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
[ -x .venv-fast-plaid/bin/python ] || "$PYTHON" -m venv .venv-fast-plaid
PIP=".venv-fast-plaid/bin/python -m pip"
# The machine may cap torch for the main environment (PIP_CONFIG_FILE / /etc/xdg/pip); this one
# asks for 2.11 explicitly and nothing else.
PIP_CONFIG_FILE=/dev/null $PIP install --quiet --disable-pip-version-check "torch==2.11.*" "fast-plaid==1.7.0.2110" numpy
.venv-fast-plaid/bin/python -c 'import torch, fast_plaid; print("fast-plaid ready: torch", torch.__version__)'
