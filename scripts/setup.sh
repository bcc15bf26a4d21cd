#!/usr/bin/env bash
# One-command set-up on a fresh machine: a virtual environment in .venv with
#   1. torch 2.13.0, CPU build, installed first and never replaced (a constraints file pins it);
#   2. this project in editable mode with its test and evaluation tools;
#   3. pylate 1.6 without its dependencies: it pins fast-plaid, whose wheels are built for
#      torch 2.11 and crash on 2.13. PyLate's encoder and PLAID index work without it.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip"
CONSTRAINTS=.venv/constraints.txt
echo "torch==2.13.0" > "$CONSTRAINTS"

$PIP install --quiet --disable-pip-version-check torch==2.13.0
$PIP install --quiet --disable-pip-version-check -c "$CONSTRAINTS" -e ".[test,eval]"
$PIP install --quiet --disable-pip-version-check -c "$CONSTRAINTS" --no-deps pylate==1.6.0 fastkmeans==0.5.0

.venv/bin/python - <<'PY'
import torch
assert torch.__version__.startswith("2.13.0"), f"torch was replaced: {torch.__version__}"
import lfm2_core, lfm2_retrieval, pylate  # noqa: F401
print(f"set-up done: torch {torch.__version__}, python {__import__('sys').version.split()[0]}")
PY
