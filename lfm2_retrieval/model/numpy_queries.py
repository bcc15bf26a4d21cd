"""Queries -> token vectors in numpy: the encoder's query path without torch.

A search from the shell is a fresh process, and importing torch is most of its start-up (1.0 to
1.6 s of a 2 to 3.5 s semantic search on 2 cores: docs/benchmarks.md). A query is a few dozen
tokens through a 6-layer, 192-wide backbone: numpy does that in milliseconds. This module reads
the same model folder (config, safetensors, PyLate's Dense modules, tokenizer) and computes what
`ColBERTEncoder.encode_queries` computes, one query at a time (a text's vectors never depend on
its batch: lfm2_core/model.py), with the same fingerprint, so an index's model check holds.

It covers what a query needs and nothing more: token vectors of the LFM2 backbone with PyLate
Dense projections without activation (the embedded model's and every model this project trains).
A folder it cannot read exactly (another activation, bf16 weights, no safetensors) raises
`Unsupported`, and the engine falls back to the torch encoder. Tests hold it equal to the torch
encoder (tests/test_numpy_queries.py).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np

from lfm2_core.config import ATTENTION, LFM2Config

from .config import DENSE_TYPES, ColBERTConfig
from .tokenization import ColBERTTokenizer

IDENTITY = "torch.nn.modules.linear.Identity"


class Unsupported(ValueError):
    """The folder needs the torch encoder (an activation, dtype or layout not read here)."""


def _tensors(file: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    if not file.exists():
        raise Unsupported(f"no {file.name} in {file.parent}")
    try:
        return {k: v.astype(np.float32) for k, v in load_file(str(file)).items()}
    except (TypeError, ValueError) as exc:  # bfloat16 has no numpy dtype
        raise Unsupported(f"{file}: {exc}") from exc


def _rms(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    return weight * (x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps))


def _silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def _rotate_half(x: np.ndarray) -> np.ndarray:
    half = x.shape[-1] // 2
    return np.concatenate((-x[..., half:], x[..., :half]), axis=-1)


class NumpyQueryEncoder:
    """Token vectors of queries, in numpy, from a ColBERT folder on an LFM2 backbone."""

    def __init__(self, folder: Path) -> None:
        self.source_dir = folder
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        self.lfm2 = LFM2Config.from_json(folder / "config.json")
        self.config = ColBERTConfig.from_folder(folder)
        self.tokenizer = ColBERTTokenizer.from_folder(folder, self.config)
        self.weights = {k: v for k, v in _tensors(folder / "model.safetensors").items() if k != "lm_head.weight"}
        self.dense: list[dict[str, np.ndarray]] = []
        for module in modules[1:]:
            if module["type"] not in DENSE_TYPES:
                continue
            raw = json.loads((folder / module["path"] / "config.json").read_text(encoding="utf-8"))
            if raw.get("activation_function", IDENTITY) != IDENTITY:
                raise Unsupported(f"Dense activation {raw['activation_function']} (numpy reads Identity only)")
            self.dense.append({**_tensors(folder / module["path"] / "model.safetensors"),
                               "use_residual": raw.get("use_residual", False)})
        head = folder / "dense_head" / "model.safetensors"
        self.head_weights = _tensors(head) if head.exists() else {}
        names = self._backbone_names()
        if set(names) != set(self.weights):  # wrapper prefixes, extra heads: the torch loader's job
            raise Unsupported(f"{folder}: tensor names other than the LFM2 backbone's")
        self._fingerprint: str | None = None

    @classmethod
    def from_pretrained(cls, name: str | Path) -> "NumpyQueryEncoder":
        folder = Path(name).expanduser()
        if not (folder / "modules.json").is_file():
            raise Unsupported(f"{name} is not a local ColBERT folder")
        return cls(folder)

    # ------------------------------------------------------------------ what the engine reads
    @property
    def dim(self) -> int:
        return int(self.dense[-1]["linear.weight"].shape[0]) if self.dense else self.lfm2.hidden_size

    @property
    def fingerprint(self) -> str:
        """ColBERTEncoder.fingerprint, to the bit: the same config, tokenizer and tensors, hashed
        in the order torch's state_dict lists them."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(json.dumps(self.config.__dict__, sort_keys=True, default=str).encode())
            h.update(self.tokenizer.tokenizer.to_str().encode())
            tensors = [(n, self.weights[n]) for n in self._backbone_names()]
            for i, layer in enumerate(self.dense):
                tensors += [(f"{i}.{n}", layer[n]) for n in ("linear.weight", "linear.bias", "residual.weight")
                            if n in layer]
            tensors += [(n, self.head_weights[n]) for n in ("linear.weight", "linear.bias") if n in self.head_weights]
            for name, tensor in tensors:
                h.update(name.encode())
                h.update(np.ascontiguousarray(tensor, dtype=np.float32).tobytes())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def _backbone_names(self) -> list[str]:
        """The backbone's tensor names in lfm2_core's registration order (its state_dict's)."""
        bias = self.lfm2.conv_bias
        names = ["embed_tokens.weight"]
        for i, kind in enumerate(self.lfm2.layer_types):
            p = f"layers.{i}."
            if kind == ATTENTION:
                names += [p + f"self_attn.{m}.weight" for m in
                          ("q_proj", "k_proj", "v_proj", "out_proj", "q_layernorm", "k_layernorm")]
            else:
                for m in ("conv", "in_proj", "out_proj"):
                    names += [p + f"conv.{m}.weight"] + ([p + f"conv.{m}.bias"] if bias else [])
            names += [p + "operator_norm.weight", p + "ffn_norm.weight"]
            names += [p + f"feed_forward.{m}.weight" for m in ("w1", "w3", "w2")]
        return names + ["embedding_norm.weight"]

    # ------------------------------------------------------------------ the forward pass
    def encode_queries(self, queries: list[str], batch_size: int = 64, show_progress: bool = False) -> list[np.ndarray]:
        """One `[n_tokens, dim]` float32 array per query, as ColBERTEncoder.encode_queries."""
        out = []
        for text in queries:
            batch = self.tokenizer.queries([text])
            ids, mask, keep = batch.input_ids[0], batch.attention_mask[0], batch.keep[0].astype(bool)
            # Bidirectional retrievers read expansion tokens as inputs (ColBERTEncoder.query_inputs).
            expansion = self.lfm2.bidirectional and self.config.do_query_expansion
            state = np.ones_like(mask) if expansion else mask
            out.append(self.token_vectors(self.hidden_states(ids, mask, state))[keep].astype(np.float32, copy=False))
        return out

    def token_vectors(self, hidden: np.ndarray) -> np.ndarray:
        for layer in self.dense:
            y = hidden @ layer["linear.weight"].T
            if "linear.bias" in layer:
                y = y + layer["linear.bias"]
            if layer["use_residual"]:
                y = y + (hidden @ layer["residual.weight"].T if "residual.weight" in layer else hidden)
            hidden = y
        return hidden / np.maximum(np.linalg.norm(hidden, axis=-1, keepdims=True), 1e-12)

    def hidden_states(self, ids: np.ndarray, mask: np.ndarray, state: np.ndarray) -> np.ndarray:
        """lfm2_core.model.LFM2Model.forward for one sequence: [T] ids -> [T, hidden]."""
        cfg, w = self.lfm2, self.weights
        x = w["embed_tokens.weight"][ids]
        t = len(ids)
        allowed = np.broadcast_to(mask.astype(bool)[None, :], (t, t)).copy()
        if not cfg.bidirectional:
            allowed &= np.tri(t, dtype=bool)
        empty = ~allowed.any(axis=1)  # a row with nothing to attend to sees itself (lfm2_core does the same)
        allowed[empty] = np.eye(t, dtype=bool)[empty]
        rope = self._rope(t)
        state = None if state.all() else state.astype(np.float32)
        for i, kind in enumerate(cfg.layer_types):
            p = f"layers.{i}."
            h = _rms(x, w[p + "operator_norm.weight"], cfg.norm_eps)
            h = self._attention(h, p + "self_attn.", rope, allowed) if kind == ATTENTION else \
                self._conv(h, p + "conv.", state)
            x = x + h
            h = _rms(x, w[p + "ffn_norm.weight"], cfg.norm_eps)
            f = p + "feed_forward."
            x = x + (_silu(h @ w[f + "w1.weight"].T) * (h @ w[f + "w3.weight"].T)) @ w[f + "w2.weight"].T
        return _rms(x, w["embedding_norm.weight"], cfg.norm_eps)

    def _rope(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        d = self.lfm2.head_dim
        inv_freq = 1.0 / self.lfm2.rope_theta ** (np.arange(0, d, 2, dtype=np.float32) / d)
        freqs = np.arange(t, dtype=np.float32)[:, None] * inv_freq.astype(np.float32)
        emb = np.concatenate((freqs, freqs), axis=-1)
        return np.cos(emb), np.sin(emb)

    def _attention(self, h: np.ndarray, p: str, rope, allowed: np.ndarray) -> np.ndarray:
        cfg, w = self.lfm2, self.weights
        t, hd, heads, kv = len(h), cfg.head_dim, cfg.num_attention_heads, cfg.num_key_value_heads
        q = _rms((h @ w[p + "q_proj.weight"].T).reshape(t, heads, hd), w[p + "q_layernorm.weight"], cfg.norm_eps)
        k = _rms((h @ w[p + "k_proj.weight"].T).reshape(t, kv, hd), w[p + "k_layernorm.weight"], cfg.norm_eps)
        v = (h @ w[p + "v_proj.weight"].T).reshape(t, kv, hd)
        cos, sin = rope[0][:, None], rope[1][:, None]
        q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
        group = heads // kv  # grouped-query attention: query head j reads key/value head j // group
        k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
        scores = np.einsum("thd,shd->hts", q, k) * (1.0 / math.sqrt(hd))  # a Python float keeps float32
        scores = np.where(allowed[None], scores, -np.inf)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        y = np.einsum("hts,shd->thd", scores / scores.sum(axis=-1, keepdims=True), v)
        return y.reshape(t, heads * hd) @ w[p + "out_proj.weight"].T

    def _conv(self, h: np.ndarray, p: str, state: np.ndarray | None) -> np.ndarray:
        cfg, w, d = self.lfm2, self.weights, self.lfm2.hidden_size
        if state is not None:
            h = h * state[:, None]
        mixed = h @ w[p + "in_proj.weight"].T + (w[p + "in_proj.bias"] if cfg.conv_bias else 0)
        b_gate, c_gate, x = mixed[:, :d], mixed[:, d:2 * d], mixed[:, 2 * d:]
        bx = b_gate * x  # [T, D]
        kernel = w[p + "conv.weight"][:, 0, :]  # depthwise: [D, L]
        size = kernel.shape[1]
        if cfg.bidirectional:
            if state is not None:
                bx = bx * state[:, None]
            left = (size - 1) // 2
            padded = np.pad(bx, ((left, size - 1 - left), (0, 0)))
        else:
            padded = np.pad(bx, ((size - 1, 0), (0, 0)))
        t = len(h)
        conv = sum(padded[j:j + t] * kernel[:, j] for j in range(size))
        if cfg.conv_bias:
            conv = conv + w[p + "conv.bias"]
        return (c_gate * conv) @ w[p + "out_proj.weight"].T + (w[p + "out_proj.bias"] if cfg.conv_bias else 0)
