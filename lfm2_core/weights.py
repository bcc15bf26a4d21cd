"""Finding and loading LFM2 weights: local folders, sharded safetensors, Hugging Face hub ids."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .config import LFM2Config
from .model import LFM2Model

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
# Prefixes that wrap the backbone in released checkpoints (LFM2ForCausalLM, ColBERT exports).
KNOWN_PREFIXES = ("model.", "backbone.", "0.auto_model.")
# Tensors of heads we do not use for retrieval.
IGNORED_KEYS = ("lm_head.weight",)


class ModelNotFoundError(FileNotFoundError):
    """A model could neither be found locally nor downloaded."""


def resolve_model_dir(name_or_path: str | os.PathLike, allow_patterns: list[str] | None = None) -> Path:
    """A local folder for `name_or_path`: the folder itself, or a hub snapshot.

    Hub ids are looked up in the local Hugging Face cache first and downloaded only when
    that misses. Offline (no network, or HF_HUB_OFFLINE=1) a clear error says how to get
    the files onto this machine.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    name = str(name_or_path)
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise ModelNotFoundError(
            f"model {name!r} is not a folder here and does not look like a Hugging Face hub id "
            "(owner/name)"
        )
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, allow_patterns=allow_patterns, local_files_only=True))
    except Exception:
        pass
    try:
        return Path(snapshot_download(name, allow_patterns=allow_patterns))
    except Exception as exc:  # network errors come in many types; all mean the same here
        raise ModelNotFoundError(
            f"could not download {name!r} from the Hugging Face hub ({type(exc).__name__}: {exc}).\n"
            "This machine may be offline. On a machine with internet run\n"
            f"    huggingface-cli download {name} --local-dir ./{name.split('/')[-1]}\n"
            "copy that folder here, and pass its path instead of the hub id."
        ) from exc


def _tensor_files(model_dir: Path) -> list[Path]:
    index = model_dir / INDEX_FILE
    if index.exists():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        return [model_dir / name for name in sorted(set(weight_map.values()))]
    single = model_dir / SINGLE_FILE
    if single.exists():
        return [single]
    raise ModelNotFoundError(f"no {SINGLE_FILE} or {INDEX_FILE} in {model_dir}")


def _strip_prefix(key: str) -> str:
    for prefix in KNOWN_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def read_state_dict(model_dir: str | Path) -> dict[str, torch.Tensor]:
    """Backbone tensors from one or several safetensors files, with wrapper prefixes removed."""
    state: dict[str, torch.Tensor] = {}
    for file in _tensor_files(Path(model_dir)):
        with safe_open(str(file), framework="pt", device="cpu") as f:
            for key in f.keys():
                if key in IGNORED_KEYS:
                    continue
                state[_strip_prefix(key)] = f.get_tensor(key)
    return state


def load_backbone(
    name_or_path: str | os.PathLike, dtype: torch.dtype = torch.float32
) -> tuple[LFM2Model, Path]:
    """An `LFM2Model` with the weights of a local folder or hub id, in eval mode."""
    model_dir = resolve_model_dir(name_or_path)
    config = LFM2Config.from_json(model_dir / "config.json")
    model = LFM2Model(config, initialize=False)  # every weight is loaded below, or this fails
    state = read_state_dict(model_dir)
    expected = set(model.state_dict())
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(
            f"weights in {model_dir} do not fit the LFM2 config: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    model.load_state_dict(state)
    return model.to(dtype).eval(), model_dir


def save_backbone(model: LFM2Model, out_dir: str | Path) -> None:
    """`config.json` + `model.safetensors` in the layout `transformers.Lfm2Model` saves."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.config.save(out / "config.json")
    tensors = {k: v.detach().float().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(tensors, str(out / SINGLE_FILE), metadata={"format": "pt"})
