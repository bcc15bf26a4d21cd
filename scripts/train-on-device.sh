#!/usr/bin/env bash
# The training recipe on one CUDA GPU for a bounded time, resuming from and writing checkpoints to
# a folder it is given: what a lent GPU session (about 15 minutes in all) should run first.
#
#   scripts/train-on-device.sh RUN_DIR [CONFIG] [--set key=value ...]
#   MAX_MINUTES=11 scripts/train-on-device.sh runs/dense-head configs/dense-head.toml
#
# RUN_DIR: the run folder (checkpoints/, log.jsonl, data.json); the latest complete checkpoint in
#   it is resumed, and when the time is spent a checkpoint is written there (a complete model folder).
#   Copy it back to the CPU machine and `lfm2-search train CONFIG --set output_dir=RUN_DIR`
#   continues the same run there (or here again next session).
# CONFIG: default configs/dense-head.toml (the dense head campaign).
# MAX_MINUTES: training time (default 11: the recipe ends within 12 minutes with start-up).
# DEVICE: auto (default: CUDA when torch sees a GPU, else the CPU: how the test runs it), cuda, cpu.
# LFM2_SEARCH_TEACHER_CACHE: the teacher cache to read (carry ~/.cache/lfm2-search/teachers along:
#   44 MB; without it the cache is filled on the device machine's CPUs first).
# LFM2_SEARCH_PARALLEL: the folder of the config's parallel text (debian.tsv, documentation.tsv;
#   a file may be carried gzip'd, 18 MB for both, as NAME.tsv.gz; no apt-get on a device machine).
# PYTHON: the interpreter (default: .venv/bin/python if present, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -lt 1 || "$1" == -* ]]; then
    sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
run_dir=$1
shift
config=configs/dense-head.toml
if [[ $# -gt 0 && "$1" != --* ]]; then
    config=$1
    shift
fi
python=${PYTHON:-}
if [[ -z "$python" ]]; then
    if [[ -x .venv/bin/python ]]; then python=.venv/bin/python; else python=python3; fi
fi

device=${DEVICE:-auto}
"$python" - "$device" <<'EOF'
import sys, torch
device = sys.argv[1]
if torch.cuda.is_available():
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}", file=sys.stderr)
elif device == "cuda":
    sys.exit("error: DEVICE=cuda but torch sees no GPU")
else:
    print("device: no GPU, training on the CPU", file=sys.stderr)
EOF

# threads=0: every core of the machine (the CPU side prepares batches; the GPU does the math).
exec "$python" -m lfm2_retrieval.cli train "$config" --set output_dir="$run_dir" --set device="$device" \
    --set max_minutes="${MAX_MINUTES:-11}" --set threads=0 --set autocast_bf16=true "$@"
