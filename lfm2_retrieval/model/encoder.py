"""The ColBERT encoder: an LFM2 backbone, PyLate's Dense projection(s), per-token L2 norm.

`ColBERTEncoder.from_pretrained(folder_or_hub_id)` loads a PyLate model folder;
`encode_queries` / `encode_documents` return the same token ids and vectors as
`pylate.models.ColBERT.encode` on that folder, and `save` writes a folder PyLate loads.

Speed on CPU comes from doing less, not from approximations: exact token lengths (PyLate
sorts by characters), batches cut by a token budget so padding is a few percent, fused SDPA
attention, and no per-batch Python work beyond one gather.
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from lfm2_core import LFM2Model, load_backbone, resolve_model_dir, save_backbone

from ..hardware import native_bfloat16
from .config import DENSE_TYPES, ColBERTConfig, read_modules, write_modules
from .dense_head import DenseHead
from .tokenization import ColBERTTokenizer

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def _fit_embeddings(backbone: LFM2Model, vocab_size: int) -> None:
    """Grow the input embeddings to `vocab_size` rows, new rows at the mean of the old ones."""
    old = backbone.embed_tokens.weight.data
    if vocab_size <= old.shape[0]:
        return
    grown = nn.Embedding(vocab_size, old.shape[1], dtype=old.dtype)
    with torch.no_grad():
        grown.weight[: old.shape[0]] = old
        grown.weight[old.shape[0]:] = old.mean(dim=0)
    backbone.embed_tokens = grown
    backbone.config.vocab_size = vocab_size


class Dense(nn.Module):
    """PyLate's Dense module: linear projection, optional activation and residual."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False,
                 activation: str = "torch.nn.modules.linear.Identity", use_residual: bool = False) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.activation_name = activation
        self.activation = _torch_activation(activation)
        self.use_residual = use_residual
        if use_residual and in_features != out_features:
            self.residual = nn.Linear(in_features, out_features, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.activation(self.linear(x))
        if self.use_residual:
            y = y + (self.residual(x) if hasattr(self, "residual") else x)
        return y

    def config_dict(self) -> dict:
        return {
            "in_features": self.linear.in_features,
            "out_features": self.linear.out_features,
            "bias": self.linear.bias is not None,
            "activation_function": self.activation_name,
            "use_residual": self.use_residual,
        }

    @classmethod
    def load(cls, folder: Path) -> "Dense":
        raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        dense = cls(raw["in_features"], raw["out_features"], raw.get("bias", True),
                    raw.get("activation_function", "torch.nn.modules.linear.Identity"),
                    raw.get("use_residual", False))
        if (folder / "model.safetensors").exists():
            state = load_file(str(folder / "model.safetensors"))
        else:  # older sentence-transformers folders
            state = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
        dense.load_state_dict(state)
        return dense

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(self.config_dict(), indent=4), encoding="utf-8")
        save_file({k: v.detach().float().contiguous().cpu() for k, v in self.state_dict().items()},
                  str(folder / "model.safetensors"))


def _torch_activation(name: str) -> nn.Module:
    # Only torch.nn classes: a model folder must not be able to import arbitrary code.
    if not name.startswith("torch.nn."):
        raise ValueError(f"activation {name!r} is not a torch.nn module")
    module_name, _, cls_name = name.rpartition(".")
    return getattr(importlib.import_module(module_name), cls_name)()


def _batches_by_tokens(order: list[int], lengths: list[int], batch_size: int, max_tokens: int) -> Iterator[list[int]]:
    """Cut an order sorted by decreasing length into batches of at most `max_tokens` padded tokens."""
    batch: list[int] = []
    for i in order:
        width = lengths[batch[0]] if batch else lengths[i]
        if batch and (len(batch) >= batch_size or (len(batch) + 1) * width > max_tokens):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


class ColBERTEncoder(nn.Module):
    """Texts -> token vectors (and, with a dense head, one vector per text). `forward` is the one
    forward pass: inference (encode_queries, encode_documents) and training call it alike."""

    def __init__(self, backbone: LFM2Model, dense: list[Dense], tokenizer: ColBERTTokenizer,
                 config: ColBERTConfig, source_dir: Path | None = None, dense_head: DenseHead | None = None) -> None:
        super().__init__()
        self.backbone = backbone.eval()
        self.dense = nn.ModuleList(dense).eval()
        self.dense_head = dense_head.eval() if dense_head is not None else None
        self.tokenizer = tokenizer
        self.config = config
        self.source_dir = source_dir
        self._fingerprint: str | None = None

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike | None = None, dtype: str | torch.dtype = "float32",
                        compute_dtype: str | torch.dtype = "auto") -> "ColBERTEncoder":
        """Load a PyLate ColBERT folder (or hub id) whose backbone is LFM2; with no name, the
        default model ($LFM2_SEARCH_MODEL, else the one embedded in the package), as the CLI does.

        dtype: how weights are held (float32, or bfloat16 for half the memory).
        compute_dtype: the dtype of the math; "auto" uses bf16 math only where the CPU has
        native bf16, and fp32 math on bf16 weights elsewhere (much faster on AVX2 CPUs).
        """
        torch_dtype = DTYPES[dtype] if isinstance(dtype, str) else dtype
        if compute_dtype == "auto":
            bf16_math = torch_dtype == torch.bfloat16 and native_bfloat16()
            compute = torch.bfloat16 if bf16_math else torch.float32
        else:
            compute = DTYPES[compute_dtype] if isinstance(compute_dtype, str) else compute_dtype
        if name_or_path is None:
            from .locations import default_model

            name_or_path = default_model()
        model_dir = resolve_model_dir(name_or_path)
        modules = read_modules(model_dir)
        backbone, _ = load_backbone(model_dir, dtype=torch_dtype)
        backbone.compute_dtype = compute
        dense = [Dense.load(model_dir / m["path"]).to(compute) for m in modules[1:] if m["type"] in DENSE_TYPES]
        config = ColBERTConfig.from_folder(model_dir)
        tokenizer = ColBERTTokenizer.from_folder(model_dir, config)
        head = DenseHead.load(model_dir)
        return cls(backbone, dense, tokenizer, config, source_dir=model_dir,
                   dense_head=head.to(compute) if head is not None else None)

    @classmethod
    def from_backbone(cls, name_or_path: str | os.PathLike, embedding_dim: int = 128,
                      config: ColBERTConfig | None = None, seed: int = 0) -> "ColBERTEncoder":
        """A new ColBERT model on a plain LFM2 checkpoint (such as LiquidAI/LFM2-350M), made as
        `pylate.models.ColBERT(path)` makes one: the query and document prefixes become tokens
        (their embedding rows start at the mean of the existing ones), and a bias-free linear
        projection to `embedding_dim` is added with fresh weights. Train it before use."""
        model_dir = resolve_model_dir(name_or_path)
        if (model_dir / "modules.json").exists():
            raise ValueError(f"{model_dir} is already a ColBERT model folder: load it with from_pretrained")
        config = config or ColBERTConfig()
        backbone, _ = load_backbone(model_dir)
        tokenizer = ColBERTTokenizer.from_folder(model_dir, config, add_prefixes=True)
        _fit_embeddings(backbone, tokenizer.tokenizer.get_vocab_size())
        generator = torch.Generator().manual_seed(seed)
        dense = Dense(backbone.config.hidden_size, embedding_dim)
        bound = 1 / backbone.config.hidden_size ** 0.5  # nn.Linear's own initialisation, seeded
        with torch.no_grad():
            dense.linear.weight.uniform_(-bound, bound, generator=generator)
        return cls(backbone, [dense], tokenizer, config, source_dir=model_dir)

    def save(self, out_dir: str | os.PathLike) -> None:
        """Write a PyLate folder: backbone at the root, `1_Dense/`, tokenizer, configs (fp32)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_backbone(self.backbone, out)
        paths = []
        for i, layer in enumerate(self.dense, start=1):
            layer.save(out / f"{i}_Dense")
            paths.append(f"{i}_Dense")
        write_modules(out, paths)
        if self.dense_head is not None:
            self.dense_head.save(out)
        self.config.save(out)
        self.tokenizer.tokenizer.save(str(out / "tokenizer.json"))
        if self.source_dir is not None:
            for name in TOKENIZER_FILES[1:]:
                if (self.source_dir / name).exists() and not (out / name).exists():
                    shutil.copy(self.source_dir / name, out / name)

    @property
    def dim(self) -> int:
        return self.dense[-1].linear.out_features if len(self.dense) else self.backbone.config.hidden_size

    @property
    def dtype(self) -> torch.dtype:
        return self.backbone.embed_tokens.weight.dtype

    @property
    def fingerprint(self) -> str:
        """A short hash of the weights and settings: indexes record which model made them."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(json.dumps(self.config.__dict__, sort_keys=True, default=str).encode())
            h.update(self.tokenizer.tokenizer.to_str().encode())
            for module in (self.backbone, self.dense, self.dense_head):
                for name, tensor in (module.state_dict() if module is not None else {}).items():
                    h.update(name.encode())
                    h.update(tensor.float().numpy().tobytes())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    @property
    def dense_dim(self) -> int | None:
        """Dimension of the dense head's vectors (None: the model has no dense head)."""
        return self.dense_head.dim if self.dense_head is not None else None

    # ------------------------------------------------------------------ the forward pass
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                state_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Token vectors [batch, tokens, dim], L2-normalised, in fp32.

        attention_mask: 1 where a token may be attended to (None: every token; for a causal
        right-padded batch real tokens never see padding, so None takes the fused causal path).
        state_mask: which tokens feed the short convolutions (see lfm2_core.model).
        Inputs move to the model's device (a GPU once the encoder is moved there with .to())."""
        return self.token_vectors(self.hidden_states(input_ids, attention_mask, state_mask))

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                      state_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The backbone's last hidden states [batch, tokens, hidden]: what both heads read."""
        device = next(self.parameters()).device
        if input_ids.device != device:
            input_ids = input_ids.to(device)
            attention_mask = None if attention_mask is None else attention_mask.to(device)
            state_mask = None if state_mask is None else state_mask.to(device)
        return self.backbone(input_ids, attention_mask, state_mask=state_mask)

    def token_vectors(self, hidden: torch.Tensor) -> torch.Tensor:
        for layer in self.dense:
            hidden = layer(hidden)
        return F.normalize(hidden.float(), p=2, dim=-1)

    def pooled(self, hidden: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """The dense head's unit vectors [batch, dense_dim] of the same hidden states."""
        if self.dense_head is None:
            raise ValueError("this model has no dense head (train one: distill_dense in the training config)")
        return self.dense_head(hidden, keep)

    def query_inputs(self, texts: list[str]) -> tuple[dict[str, torch.Tensor | None], torch.Tensor]:
        """(forward's arguments, keep mask) for queries."""
        batch = self.tokenizer.queries(texts)
        # Bidirectional retrievers read the expansion tokens as inputs; causal LFM2 zeroes
        # them in the convolution as transformers does for batches of two or more. Without
        # expansion the padding is only padding: the convolution must not read it, or a query's
        # vectors would depend on the longest query of its batch (its last token saw a pad).
        expansion = self.backbone.config.bidirectional and self.config.do_query_expansion
        state = torch.ones_like(torch.from_numpy(batch.attention_mask)) if expansion else None
        return (
            {
                "input_ids": torch.from_numpy(batch.input_ids),
                "attention_mask": torch.from_numpy(batch.attention_mask),
                "state_mask": state,
            },
            torch.from_numpy(batch.keep).bool(),
        )

    def document_inputs(self, token_ids: list[np.ndarray]) -> tuple[dict[str, torch.Tensor | None], torch.Tensor]:
        """(forward's arguments, keep mask) for documents' token ids (tokenizer.documents)."""
        batch = self.tokenizer.document_batch(token_ids)
        # Causal and right-padded: real tokens never see padding, so no mask is needed and
        # attention takes its fused causal path. Padded outputs are discarded.
        mask = torch.from_numpy(batch.attention_mask) if self.backbone.config.bidirectional else None
        return {"input_ids": torch.from_numpy(batch.input_ids), "attention_mask": mask}, torch.from_numpy(
            batch.keep
        ).bool()

    @staticmethod
    def _split(vectors: torch.Tensor, keep: torch.Tensor) -> list[np.ndarray]:
        """The kept token vectors of each row (as numpy arrays in host memory)."""
        flat = vectors[keep.to(vectors.device)].cpu().numpy()
        return np.split(flat, np.cumsum(keep.sum(dim=1).numpy())[:-1])

    # ------------------------------------------------------------------ public encoding API
    def encode_queries(self, queries: list[str], batch_size: int = 64, show_progress: bool = False) -> list[np.ndarray]:
        """One `[n_tokens, dim]` float32 array per query (query_length rows with expansion)."""
        out: list[np.ndarray] = []
        bar = tqdm(total=len(queries), desc="Encoding queries", unit="query", disable=not show_progress)
        for start in range(0, len(queries), batch_size):
            inputs, keep = self.query_inputs(list(queries[start:start + batch_size]))
            with torch.inference_mode():
                out.extend(self._split(self(**inputs), keep))
            bar.update(len(keep))
        bar.close()
        return out

    def encode_documents(self, documents: list[str], batch_size: int = 64, max_tokens: int = 16384,
                         show_progress: bool = False) -> list[np.ndarray]:
        """One `[n_kept_tokens, dim]` float32 array per document, skiplist tokens removed."""
        return list(self.iter_encode_documents(documents, batch_size, max_tokens, show_progress=show_progress))

    def iter_encode_documents(self, documents: Iterable[str], batch_size: int = 64, max_tokens: int = 16384,
                              chunk_size: int = 4096, show_progress: bool = False,
                              total: int | None = None) -> Iterator[np.ndarray]:
        """Stream document vectors in input order, holding at most `chunk_size` texts at a time."""
        if total is None and hasattr(documents, "__len__"):
            total = len(documents)  # type: ignore[arg-type]
        bar = tqdm(total=total, desc="Encoding documents", unit="doc", disable=not show_progress)
        iterator = iter(documents)
        while chunk := list(itertools.islice(iterator, chunk_size)):
            yield from self._encode_document_chunk(chunk, batch_size, max_tokens, bar)
        bar.close()

    def _encode_document_chunk(self, texts: list[str], batch_size: int, max_tokens: int, bar,
                               dense: np.ndarray | None = None) -> list[np.ndarray]:
        """Token vectors of texts; with `dense` ([len(texts), dense_dim]), also the dense head's
        vectors, written there, from the same forward pass."""
        token_ids = self.tokenizer.documents(texts)
        lengths = [len(t) for t in token_ids]
        order = sorted(range(len(texts)), key=lambda i: -lengths[i])
        results: list[np.ndarray | None] = [None] * len(texts)
        for batch in _batches_by_tokens(order, lengths, batch_size, max_tokens):
            inputs, keep = self.document_inputs([token_ids[i] for i in batch])
            with torch.inference_mode():
                hidden = self.hidden_states(**inputs)
                for i, vecs in zip(batch, self._split(self.token_vectors(hidden), keep)):
                    results[i] = vecs
                if dense is not None:
                    dense[batch] = self.pooled(hidden, keep).cpu().numpy()
            bar.update(len(batch))
        return results  # type: ignore[return-value]

    def encode_documents_with_dense(self, documents: list[str], batch_size: int = 64,
                                    max_tokens: int = 16384) -> tuple[list[np.ndarray], np.ndarray]:
        """(token vectors, [n, dense_dim] dense vectors) of documents from one forward pass."""
        if self.dense_head is None:
            raise ValueError("this model has no dense head")
        dense = np.zeros((len(documents), self.dense_dim), np.float32)
        with tqdm(total=len(documents), disable=True) as bar:
            vectors = self._encode_document_chunk(list(documents), batch_size, max_tokens, bar, dense)
        return vectors, dense

    def encode_dense(self, texts: list[str], role: str, batch_size: int = 64,
                     max_tokens: int = 16384) -> np.ndarray:
        """[n, dense_dim] float32 unit vectors of texts read as queries or as documents."""
        if role not in ("query", "document"):
            raise ValueError(f"role must be 'query' or 'document', got {role!r}")
        out = np.zeros((len(texts), self.dense_dim or 0), np.float32)
        if role == "query":
            batches = [list(range(s, min(s + batch_size, len(texts)))) for s in range(0, len(texts), batch_size)]
        else:
            token_ids = self.tokenizer.documents(list(texts))
            lengths = [len(t) for t in token_ids]
            batches = list(_batches_by_tokens(sorted(range(len(texts)), key=lambda i: -lengths[i]),
                                              lengths, batch_size, max_tokens))
        for batch in batches:
            if role == "query":
                inputs, keep = self.query_inputs([texts[i] for i in batch])
            else:
                inputs, keep = self.document_inputs([token_ids[i] for i in batch])
            with torch.inference_mode():
                out[batch] = self.pooled(self.hidden_states(**inputs), keep).cpu().numpy()
        return out

    def count_document_tokens(self, documents: list[str]) -> list[int]:
        """Tokens each document feeds the model (after truncation), for throughput figures."""
        return [len(t) for t in self.tokenizer.documents(documents)]
