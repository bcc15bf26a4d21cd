"""Weight averages of model folders of one lineage ("model soups", Wortsman et al. 2022): the
mean of a run's last checkpoints, or two models mixed (eval/average_models.py).

At a low learning rate the dev scores of consecutive checkpoints wander by about the dev grid's
noise (0.02) from one hundred steps to the next; their mean sits in the middle of that wander,
and it costs no training (docs/model.md, session 27).

    python -m lfm2_retrieval.training.averaging runs/c2-mixed-low --steps 300 400 500 600 \\
        --out runs/c2-mean-300-600

The mean's folder records where it came from (training.json: the run, its last step, and the
steps averaged), so `python -m lfm2_retrieval.training.embed RUN --checkpoint OUT` writes a
card that says so.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

from .model_card import ORIGIN_FILE

SKIP = {"state.pt"}  # a checkpoint's optimizer state: not part of the model


def average_models(folders: Sequence[Path], out: Path, weights: Sequence[float] | None = None) -> Path:
    """sum(w_i * model_i) for every tensor of every safetensors file the folders share, written
    as a copy of the first folder (a file only the first has, such as a dense head trained on its
    backbone alone, is kept as it is). Weights default to the plain mean."""
    from safetensors.torch import load_file, save_file

    folders = [Path(f) for f in folders]
    weights = [1.0 / len(folders)] * len(folders) if weights is None else list(weights)
    if len(weights) != len(folders) or abs(sum(weights) - 1.0) > 1e-6:
        raise ValueError(f"{len(folders)} folders need as many weights summing to 1, not {weights}")
    out = Path(out)
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(folders[0], out, ignore=lambda _, names: [n for n in names if n in SKIP])
    for f in folders[0].rglob("*.safetensors"):
        rel = f.relative_to(folders[0])
        if not all((other / rel).exists() for other in folders[1:]):
            print(f"{rel}: only in {folders[0]}, kept as it is", flush=True)
            continue
        tensors = [load_file(str(folder / rel)) for folder in folders]
        if any(t.keys() != tensors[0].keys() or any(t[k].shape != tensors[0][k].shape for k in t)
               for t in tensors[1:]):
            raise SystemExit(f"{rel}: the models do not have the same tensors (not one lineage)")
        first = tensors[0]
        mean = {k: sum(w * t[k].float() for w, t in zip(weights, tensors)).to(first[k].dtype) for k in first}
        save_file(mean, str(out / rel), metadata={"format": "pt"})
    return out


def average_checkpoints(run: Path, steps: Sequence[int], out: Path) -> Path:
    """The plain mean of `run`'s checkpoints at `steps`, its origin recorded as the run's last
    of those steps with the steps averaged."""
    run = Path(run)
    folders = [run / "checkpoints" / f"step-{s}" for s in steps]
    missing = [str(f) for f in folders if not (f / "modules.json").exists()]
    if missing:
        raise FileNotFoundError(f"no checkpoint at {', '.join(missing)} (keep_every keeps checkpoints)")
    average_models(folders, out)
    origin = {"run": str(run), "step": max(steps), "average_of": sorted(steps)}
    (Path(out) / ORIGIN_FILE).write_text(json.dumps(origin) + "\n")
    return Path(out)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a training run's folder (its checkpoints/step-N are averaged)")
    parser.add_argument("--steps", type=int, nargs="+", required=True, help="the checkpoints' steps")
    parser.add_argument("--out", type=Path, required=True, help="the new model folder")
    args = parser.parse_args(argv)
    print(average_checkpoints(args.run, args.steps, args.out))


if __name__ == "__main__":
    main()
