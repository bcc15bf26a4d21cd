"""LFM2 configuration: one dataclass that reads Hugging Face `config.json` files as they are.

Released LFM2 checkpoints carry both the Hugging Face keys and the original training keys
(`block_ff_dim`, `tie_embedding`, `full_attn_idxs`, `block_dim`, ...). `LFM2Config.from_dict`
accepts either spelling with the same precedence as `transformers.Lfm2Config`, so a checkpoint
that loads there loads here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_ROPE_THETA = 1_000_000.0
ATTENTION = "full_attention"
CONV = "conv"


@dataclass
class LFM2Config:
    vocab_size: int = 65536
    hidden_size: int = 1024
    intermediate_size: int = 6656
    num_hidden_layers: int = 16
    num_attention_heads: int = 16
    num_key_value_heads: int = 8
    head_dim: int | None = None  # defaults to hidden_size // num_attention_heads
    max_position_embeddings: int = 128_000
    norm_eps: float = 1e-5
    rope_theta: float = DEFAULT_ROPE_THETA
    conv_bias: bool = False
    conv_L_cache: int = 3
    block_multiple_of: int = 256
    block_ffn_dim_multiplier: float | None = 1.0
    block_auto_adjust_ff_dim: bool = True
    layer_types: list[str] = field(default_factory=list)
    tie_word_embeddings: bool = True
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | None = 2
    # Causal (LFM2, LFM2-ColBERT-350M) or bidirectional (LFM2.5 retrievers): non-causal
    # attention and a centred short convolution.
    bidirectional: bool = False
    initializer_range: float = 0.02

    def __post_init__(self) -> None:
        if not self.layer_types:
            self.layer_types = [ATTENTION] * self.num_hidden_layers
        if len(self.layer_types) != self.num_hidden_layers:
            raise ValueError(
                f"layer_types has {len(self.layer_types)} entries but num_hidden_layers is "
                f"{self.num_hidden_layers}"
            )
        unknown = set(self.layer_types) - {ATTENTION, CONV}
        if unknown:
            raise ValueError(f"unknown layer types {sorted(unknown)}; expected 'conv' or 'full_attention'")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads

    @property
    def ffn_dim(self) -> int:
        """Width of the SwiGLU hidden layer, with LFM2's auto-adjustment (2/3, multiplier, round up)."""
        dim = self.intermediate_size
        if self.block_auto_adjust_ff_dim:
            dim = int(2 * dim / 3)
            if self.block_ffn_dim_multiplier is not None:
                dim = int(self.block_ffn_dim_multiplier * dim)
                dim = self.block_multiple_of * ((dim + self.block_multiple_of - 1) // self.block_multiple_of)
        return dim

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "LFM2Config":
        """Build from a Hugging Face `config.json` dictionary (legacy keys included)."""
        get = raw.get
        num_layers = get("num_hidden_layers", 16)
        layer_types = get("layer_types")
        if layer_types is None:
            attn_idxs = get("full_attn_idxs")
            attn_idxs = set(range(num_layers) if attn_idxs is None else attn_idxs)
            layer_types = [ATTENTION if i in attn_idxs else CONV for i in range(num_layers)]

        rope = get("rope_parameters") or get("rope_scaling") or {}
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        if rope_type != "default":
            raise ValueError(f"RoPE type {rope_type!r} is not supported; only 'default' is")
        rope_theta = rope.get("rope_theta", get("rope_theta", DEFAULT_ROPE_THETA))

        architectures = get("architectures") or []
        bidirectional = bool(
            get("bidirectional", False)
            or get("is_causal") is False
            or any("Bidirectional" in a for a in architectures)
        )
        if raw.get("model_type", "lfm2") != "lfm2":
            raise ValueError(f"model_type {raw['model_type']!r} is not an LFM2 backbone")

        def first(*keys: str, default: Any = None) -> Any:
            for key in keys:
                if key in raw and raw[key] is not None:
                    return raw[key]
            return default

        return cls(
            vocab_size=get("vocab_size", 65536),
            hidden_size=first("hidden_size", "block_dim", default=1024),
            # transformers gives `block_ff_dim` precedence over `intermediate_size`.
            intermediate_size=first("block_ff_dim", "intermediate_size", default=6656),
            num_hidden_layers=num_layers,
            num_attention_heads=first("num_attention_heads", "num_heads", default=16),
            num_key_value_heads=get("num_key_value_heads", 8),
            head_dim=get("head_dim"),
            max_position_embeddings=get("max_position_embeddings", 128_000),
            norm_eps=first("norm_eps", "block_norm_eps", default=1e-5),
            rope_theta=float(rope_theta),
            conv_bias=get("conv_bias", False),
            conv_L_cache=get("conv_L_cache", 3),
            block_multiple_of=get("block_multiple_of", 256),
            block_ffn_dim_multiplier=get("block_ffn_dim_multiplier", 1.0),
            block_auto_adjust_ff_dim=get("block_auto_adjust_ff_dim", True),
            layer_types=list(layer_types),
            tie_word_embeddings=first("tie_embedding", "tie_word_embeddings", default=True),
            pad_token_id=get("pad_token_id", 0),
            bos_token_id=get("bos_token_id", 1),
            eos_token_id=get("eos_token_id", 2),
            bidirectional=bidirectional,
            initializer_range=get("initializer_range", 0.02),
        )

    @classmethod
    def from_json(cls, path: str | Path) -> "LFM2Config":
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def to_hf_dict(self) -> dict[str, Any]:
        """A `config.json` that `transformers.Lfm2Config` (and therefore PyLate) reads unchanged."""
        raw = asdict(self)
        raw.pop("bidirectional")
        raw.pop("rope_theta")
        raw["rope_parameters"] = {"rope_type": "default", "rope_theta": self.rope_theta}
        raw["model_type"] = "lfm2"
        raw["architectures"] = ["Lfm2Model"]
        if self.bidirectional:
            # transformers has no bidirectional LFM2 class; keep the flag for our own loader.
            raw["bidirectional"] = True
            raw["is_causal"] = False
        return raw

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_hf_dict(), indent=2) + "\n", encoding="utf-8")
