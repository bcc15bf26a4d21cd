"""Make a trained model the embedded default: copy it into the package, with its model card.

    python -m lfm2_retrieval.training.embed runs/default-model-kd --metrics eval/out/default-v3/results.md
    python -m lfm2_retrieval.training.embed runs/RUN --checkpoint runs/RUN/checkpoints/step-400
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from ..model.locations import EMBEDDED_MODEL_DIR
from ..model.dense_head import FOLDER as HEAD_FOLDER
from .model_card import averaged_steps, model_origin, write_model_card

COMMAND = "bash scripts/train-default-model.sh"
KEEP = {"config.json", "model.safetensors", "modules.json", "config_sentence_transformers.json",
        "sentence_bert_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}


def store_half(weights: Path) -> None:
    """Rewrite a safetensors file with its float tensors in float16: half the bytes in the
    package (a 37k-piece vocabulary is most of a small model), read back into float32 by every
    loader (ours, PyLate's, transformers')."""
    from safetensors.torch import load_file, save_file

    state = {k: v.half() if v.is_floating_point() else v for k, v in load_file(str(weights)).items()}
    tmp = weights.with_suffix(".tmp")
    save_file(state, str(tmp), metadata={"format": "pt"})
    tmp.replace(weights)


def embed(run_dir: Path, metrics_markdown: str = "", speed: str = "", limitations: str = "",
          half: bool = True, checkpoint: Path | None = None) -> Path:
    """Copies the run's final model (or `checkpoint`, one of its checkpoints) into the package,
    with its card; the card's last stage ends at the step the model was taken at."""
    source = Path(checkpoint) if checkpoint is not None else run_dir / "model"
    if not (source / "modules.json").exists():
        raise FileNotFoundError(f"{source} is not a finished model folder (run the training first)")
    origin = model_origin(source)
    tmp = EMBEDDED_MODEL_DIR.with_name(EMBEDDED_MODEL_DIR.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for path in source.rglob("*"):
        rel = path.relative_to(source)
        if path.is_file() and (rel.name in KEEP or rel.parts[0].endswith("_Dense") or rel.parts[0] == HEAD_FOLDER):
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, tmp / rel)
    if half:
        store_half(tmp / "model.safetensors")
    write_model_card(tmp, run_dir, COMMAND, metrics_markdown, speed, limitations,
                     last_step=origin[1] if origin is not None else None, averaged=averaged_steps(source))
    shutil.rmtree(EMBEDDED_MODEL_DIR, ignore_errors=True)
    tmp.rename(EMBEDDED_MODEL_DIR)
    return EMBEDDED_MODEL_DIR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--metrics", type=Path, help="a results.md of eval/nanobeir.py to put in the card")
    parser.add_argument("--speed", default="", help="a line about encoding speed for the card")
    parser.add_argument("--limitations", default="", help="what the card must warn about")
    parser.add_argument("--checkpoint", type=Path, help="embed this checkpoint of the run instead of its final model")
    parser.add_argument("--float32", action="store_true",
                        help="keep the backbone's weights in float32 (default: stored in float16)")
    args = parser.parse_args()
    metrics = args.metrics.read_text(encoding="utf-8").split("\n", 2)[-1] if args.metrics else ""
    print(embed(args.run_dir, metrics, args.speed, args.limitations, half=not args.float32,
                checkpoint=args.checkpoint))


if __name__ == "__main__":
    main()
