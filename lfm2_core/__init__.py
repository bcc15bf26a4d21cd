"""LFM2 hybrid backbone (gated short convolutions + grouped-query attention) in plain PyTorch.

The config loads without torch (`from lfm2_core import LFM2Config`); the model and its weights
load torch on first use, so that a reader of a config (a query path without torch) stays quick."""

from .config import LFM2Config

__all__ = [
    "LFM2Config",
    "LFM2Model",
    "LFM2ForCausalLM",
    "ModelNotFoundError",
    "load_backbone",
    "read_state_dict",
    "resolve_model_dir",
    "save_backbone",
]

_LAZY = {"LFM2Model": "model", "LFM2ForCausalLM": "model", "ModelNotFoundError": "weights",
         "load_backbone": "weights", "read_state_dict": "weights", "resolve_model_dir": "weights",
         "save_backbone": "weights"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'lfm2_core' has no attribute {name!r}")
