"""A trained student made deeper without changing what it computes (function-preserving depth
growth, as Net2Net's "deeper" networks and bert2BERT do it), so more capacity starts from what
the student already knows instead of from scratch.

Each new layer is a copy of the layer it follows, of the same kind (convolution or attention),
with its two output maps zeroed: the operator's `out_proj` and the feed-forward's `w2`. Both
sit just before a residual addition, so the new layer adds nothing and the grown model encodes
exactly as the old one (tests/test_training.py checks it). Their gradients are not zero (each
is the residual's gradient times the layer's inputs), so training then gives the layer work.

    python -m lfm2_retrieval.training.growing runs/c2-mean-300-600 --after 1 4 --out runs/v7-grown8

The grown folder keeps its source's origin (training.json) and says how it was grown (after
which layers the new ones go), so a run that starts from it (`--set init_from=...`) still has its history, and
can give the new layers a learning rate of their own (`--set grown_learning_rate_scale=10`):
zeroed maps at a refining rate barely move in hundreds of steps. Issue 36's rule holds for any
size: indexing at least 4x the teacher's throughput (`python -m eval.int8_weights --model GROWN
--no-quality`; v7 grown to 8 layers measured 3.8x against v7's 5.4x, and to 7 layers 3.5x
against v7's 4.7x on a slower day).
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

from .averaging import SKIP
from .model_card import ORIGIN_FILE, model_origin, origin_record

BACKBONE_WEIGHTS = "model.safetensors"
ZEROED = ("out_proj.weight", "feed_forward.w2.weight")  # the maps that write into the residual stream


def grow(source: Path, out: Path, after: Sequence[int]) -> Path:
    """A copy of the model folder `source` with one new layer after each layer index in `after`
    (indices of the source's layers), written to `out` (replaced)."""
    from safetensors.torch import load_file, save_file

    source, out = Path(source), Path(out)
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    kinds = list(config["layer_types"])
    bad = [i for i in after if not 0 <= i < len(kinds)]
    if bad or len(set(after)) != len(after):
        raise ValueError(f"--after takes distinct layer indices of the source (0 to {len(kinds) - 1}), "
                         f"got {list(after)}")
    weights = load_file(str(source / BACKBONE_WEIGHTS))
    # New layer index -> (the source layer it copies, whether it is new).
    plan = [(i, fresh) for i in range(len(kinds)) for fresh in ((False, True) if i in after else (False,))]
    grown = {k: v for k, v in weights.items() if not k.startswith("layers.")}
    for new, (old, fresh) in enumerate(plan):
        prefix = f"layers.{old}."
        for key, tensor in weights.items():
            if key.startswith(prefix):
                name = key[len(prefix):]
                copy = tensor.clone()
                if fresh and name.endswith(ZEROED):
                    copy.zero_()
                grown[f"layers.{new}.{name}"] = copy
    config["layer_types"] = [kinds[old] for old, _ in plan]
    config["num_hidden_layers"] = len(plan)

    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(source, out, ignore=lambda _, names: [n for n in names if n in SKIP])
    save_file(grown, str(out / BACKBONE_WEIGHTS), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    # The source's origin carries over (a checkpoint's is its place in its run, written out here).
    origin = origin_record(out)
    if "run" not in origin and (found := model_origin(source)) is not None:
        origin.update(run=str(found[0]), step=found[1])
    origin["grown"] = {"from": str(source), "layers": len(kinds), "new_after": sorted(after)}
    (out / ORIGIN_FILE).write_text(json.dumps(origin) + "\n", encoding="utf-8")
    return out


def new_layers(folder: Path) -> list[int]:
    """The indices of the layers that growing added to the model folder `folder` ([] when it was
    not grown): the k-th new layer (by the source index it follows) sits k places further on."""
    how = origin_record(folder).get("grown")
    return [old + rank + 1 for rank, old in enumerate(sorted(how["new_after"]))] if how else []


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="a ColBERT model folder with an LFM2 backbone")
    parser.add_argument("--after", type=int, nargs="+", required=True,
                        help="source layer indices (from 0) after which a new layer goes")
    parser.add_argument("--out", type=Path, required=True, help="the grown model folder")
    args = parser.parse_args(argv)
    print(grow(args.source, args.out, args.after))


if __name__ == "__main__":
    main()
