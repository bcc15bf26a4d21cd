#!/usr/bin/env bash
# Retrain the embedded default model from nothing, in three stages (about 2 hours on 2 CPU cores):
#   1. configs/default-model.toml     from scratch: tokenizer, backbone, in-batch negatives
#   2. configs/default-model-hn.toml  on from 1, with BM25-mined hard negatives
#   3. configs/default-model-kd.toml  on from 2, with BM25 as a teacher as well
# Every stage resumes from its last checkpoint when run again. The result is
# runs/default-model-kd/model; `python -m lfm2_retrieval.training.embed runs/default-model-kd`
# makes it the embedded default (with its model card).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
"$PY" -m lfm2_retrieval.training configs/default-model.toml "$@"
"$PY" -m lfm2_retrieval.training configs/default-model-hn.toml "$@"
"$PY" -m lfm2_retrieval.training configs/default-model-kd.toml "$@"
