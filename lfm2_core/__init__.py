"""LFM2 hybrid backbone (gated short convolutions + grouped-query attention) in plain PyTorch."""

from .config import LFM2Config
from .model import LFM2ForCausalLM, LFM2Model
from .weights import ModelNotFoundError, load_backbone, read_state_dict, resolve_model_dir, save_backbone

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
