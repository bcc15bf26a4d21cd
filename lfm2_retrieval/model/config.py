"""The ColBERT settings of a PyLate / sentence-transformers model folder.

A model folder is what PyLate saves: `modules.json` lists the modules (the backbone at the
root, then `1_Dense/`, ...), `config_sentence_transformers.json` holds the ColBERT settings,
`sentence_bert_config.json` the backbone's tokenisation settings. Defaults are PyLate's, so a
folder that omits a key behaves the same in both projects.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODULES_FILE = "modules.json"
ST_CONFIG_FILE = "config_sentence_transformers.json"
SBERT_CONFIG_FILE = "sentence_bert_config.json"

TRANSFORMER_TYPE = "sentence_transformers.models.Transformer"
DENSE_TYPES = ("pylate.models.Dense.Dense", "sentence_transformers.models.Dense")
# Modules whose effect the encoder already applies (per-token L2 normalisation).
NO_OP_TYPES = ("sentence_transformers.models.Normalize",)


@dataclass
class ColBERTConfig:
    query_prefix: str = "[Q] "
    document_prefix: str = "[D] "
    query_length: int = 32
    document_length: int = 180
    do_query_expansion: bool = True
    attend_to_expansion_tokens: bool = False
    skiplist_words: list[str] = field(default_factory=lambda: list(string.punctuation))
    do_lower_case: bool = False
    # Everything else found in config_sentence_transformers.json, written back unchanged.
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.do_query_expansion:
            self.attend_to_expansion_tokens = False  # as PyLate: nothing to attend to
        for name in ("query_length", "document_length"):
            if getattr(self, name) < 2:
                raise ValueError(f"{name} must be at least 2 (BOS and the prefix)")

    @classmethod
    def from_folder(cls, model_dir: str | Path) -> "ColBERTConfig":
        model_dir = Path(model_dir)
        raw = _read_json(model_dir / ST_CONFIG_FILE)
        sbert = _read_json(model_dir / SBERT_CONFIG_FILE)
        known = {
            k: raw[k]
            for k in (
                "query_prefix",
                "document_prefix",
                "query_length",
                "document_length",
                "do_query_expansion",
                "attend_to_expansion_tokens",
                "skiplist_words",
            )
            if raw.get(k) is not None
        }
        extra = {k: v for k, v in raw.items() if k not in known}
        return cls(**known, do_lower_case=bool(sbert.get("do_lower_case", False)), extra=extra)

    def save(self, model_dir: str | Path) -> None:
        model_dir = Path(model_dir)
        raw = {
            "model_type": "ColBERT",
            "prompts": {"query": "", "document": ""},
            "default_prompt_name": None,
            "similarity_fn_name": "MaxSim",
            **self.extra,
            "query_prefix": self.query_prefix,
            "document_prefix": self.document_prefix,
            "query_length": self.query_length,
            "document_length": self.document_length,
            "attend_to_expansion_tokens": self.attend_to_expansion_tokens,
            "skiplist_words": self.skiplist_words,
            "do_query_expansion": self.do_query_expansion,
        }
        _write_json(model_dir / ST_CONFIG_FILE, raw)
        sbert = {"max_seq_length": max(self.query_length, self.document_length), "do_lower_case": self.do_lower_case}
        _write_json(model_dir / SBERT_CONFIG_FILE, sbert)


def read_modules(model_dir: str | Path) -> list[dict[str, Any]]:
    """The module list of a model folder, checked for what this encoder can run."""
    path = Path(model_dir) / MODULES_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{model_dir} is not a ColBERT model folder (no {MODULES_FILE}). A plain LFM2 "
            "checkpoint becomes one with `ColBERTEncoder.from_backbone`, or by training it: "
            "`lfm2-search train CONFIG --set init_from=PATH`."
        )
    modules = sorted(json.loads(path.read_text(encoding="utf-8")), key=lambda m: m["idx"])
    if not modules or modules[0]["type"] != TRANSFORMER_TYPE:
        raise ValueError(f"the first module in {path} must be {TRANSFORMER_TYPE}")
    for module in modules[1:]:
        if module["type"] not in DENSE_TYPES + NO_OP_TYPES:
            raise ValueError(f"module type {module['type']!r} in {path} is not supported")
    return modules


def write_modules(model_dir: str | Path, dense_paths: list[str]) -> None:
    modules = [{"idx": 0, "name": "0", "path": "", "type": TRANSFORMER_TYPE}]
    for i, path in enumerate(dense_paths, start=1):
        modules.append({"idx": i, "name": str(i), "path": path, "type": DENSE_TYPES[0]})
    _write_json(Path(model_dir) / MODULES_FILE, modules)


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
