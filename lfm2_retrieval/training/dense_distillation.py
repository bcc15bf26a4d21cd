"""Teaching the dense head the teacher's space, from parallel text (Reimers & Gurevych 2020,
"Making monolingual sentence embeddings multilingual using knowledge distillation").

Each target is a text the student reads (in the query or the document role) and the text whose
teacher embedding it must reproduce: the text itself (monolingual: questions, paragraphs,
inverse-cloze sentences of the training pairs), or, for a translation, its English source
sentence. So the student's vector of a sentence in any language is pulled to where the teacher
puts the English original, and translations land on one point: 384 targets per text, where a
MaxSim-KL step gives one score per (query, document) pair.

Parallel text: every NTREX-128 language except those held out as never seen (UNSEEN), on the
sentences of neither the evaluation nor the dev tasks. More parallel text (Debian's translated
documentation and gettext catalogues, training/debian_text.py) enters from TSV files: source,
translation.

The loss is the mean squared distance between unit vectors (2 - 2 cos), Reimers' MSE on
normalised embeddings, plus, with `contrastive` > 0, an in-batch InfoNCE term: each student
vector must be nearer its own teacher vector than the teacher vectors of the batch's other texts.
E5's space is anisotropic (unrelated texts sit at cosine 0.7 to 0.8), so a student can reach a
small MSE while its vectors still do not tell texts apart; the ranking term asks for exactly that.

Batches are drawn from a generator seeded by the step, so a resumed run sees exactly the batches
it would have seen without the stop.
"""

from __future__ import annotations

import csv
import gzip
import random
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..evaluation.builders import NTREX_FILES, ntrex_split_sentences
from ..model.dense import TeacherCache
from .data import Pair
from .teacher import document_role

# NTREX languages the dense head never reads, so "unseen languages" stays a real measurement
# (the same six the token vectors never saw: eval/ntrex_languages.py).
UNSEEN = ("ukr", "fas", "heb", "swa", "hun", "tam")
STUDENT_ROLE = {"query": "query", "passage": "document"}  # teacher role -> the student's


@dataclass(frozen=True)
class Target:
    text: str  # what the student reads
    role: str  # how both read it: "query" or "passage" (E5's prefixes; the student's [Q] / [D])
    teacher_text: str  # whose teacher vector the student's vector must match


def ntrex_targets(shared: Path, roles: tuple[str, ...] = ("query", "passage")) -> list[Target]:
    """Every training sentence of NTREX-128 in every language but UNSEEN, each pulled to its
    English source, in each role; the source itself included."""
    folder = Path(shared) / "parallel" / "ntrex128"
    source_file = folder / NTREX_FILES["en"]
    if not source_file.exists():
        return []
    evaluation, dev = ntrex_split_sentences(Path(shared))
    held_out = evaluation | dev
    english = source_file.read_text(encoding="utf-8").splitlines()
    targets = []
    for path in sorted(folder.glob("newstest2019-*.txt")):
        if any(f".{code}." in path.name for code in UNSEEN):
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines[: len(english)]):
            if i in held_out or not line.strip() or not english[i].strip():
                continue
            targets += [Target(line.strip(), role, english[i].strip()) for role in roles]
    return list(dict.fromkeys(targets))


def tsv_targets(path: Path, roles: tuple[str, ...] = ("query", "passage")) -> list[Target]:
    """Parallel text from a TSV file (or .tsv.gz) of (source, translation) rows, as written by
    training/debian_text.py: each translation (and source) pulled to the source."""
    targets = []
    opener = gzip.open if Path(path).suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(row) >= 2 and row[0].strip() and row[1].strip():
                source, translation = row[0].strip(), row[1].strip()
                for role in roles:
                    targets += [Target(translation, role, source), Target(source, role, source)]
    return list(dict.fromkeys(targets))


def monolingual_targets(pairs: list[Pair]) -> list[Target]:
    """Each text of the training pairs pulled to its own teacher vector, in the role the teacher
    cache already holds it in (queries as queries, documents by their family)."""
    targets = []
    for p in pairs:
        targets.append(Target(p.query, "query", p.query))
        role = document_role(p.source)
        for text in (p.document, p.negative):
            if text is not None:
                targets.append(Target(text, role, text))
    return list(dict.fromkeys(targets))


class DenseDistillation:
    """Targets, the teacher cache that answers them, and the loss of a batch of them."""

    def __init__(self, parallel: list[Target], monolingual: list[Target], cache: TeacherCache,
                 batch_size: int, parallel_share: float, seed: int, contrastive: float = 0.0,
                 temperature: float = 0.05) -> None:
        if not parallel and not monolingual:
            raise ValueError("dense distillation has no targets: no NTREX-128 under shared_data and no pairs")
        self.parallel, self.monolingual = parallel, monolingual
        self.cache = cache
        self.batch_size = batch_size
        self.parallel_share = parallel_share if monolingual else 1.0
        if not parallel:
            self.parallel_share = 0.0
        self.seed = seed
        self.contrastive, self.temperature = contrastive, temperature

    def teacher_texts(self) -> dict[str, list[str]]:
        """The texts whose teacher vectors the targets need, by role: what the cache must hold."""
        out: dict[str, list[str]] = {"query": [], "passage": []}
        for target in self.parallel + self.monolingual:
            out[target.role].append(target.teacher_text)
        return {role: list(dict.fromkeys(texts)) for role, texts in out.items()}

    def batch(self, step: int) -> list[Target]:
        """The targets of a step, the same whenever that step is run."""
        return self.draw(random.Random(self.seed * 1_000_003 + step), self.batch_size)

    def draw(self, rng: random.Random, k: int) -> list[Target]:
        """k targets, `parallel_share` of them translations, the rest the pairs' own texts."""
        n_parallel = round(k * self.parallel_share)
        return (rng.choices(self.parallel, k=n_parallel) if n_parallel else []) + (
            rng.choices(self.monolingual, k=k - n_parallel) if n_parallel < k else [])

    def loss(self, encoder, batch: list[Target]) -> torch.Tensor:
        """Mean squared distance between the student's unit vectors and the teacher's, plus
        `contrastive` times the in-batch InfoNCE (per role: queries against query vectors)."""
        total, count = torch.zeros(()), 0
        for role in ("query", "passage"):
            rows = [t for t in batch if t.role == role]
            if not rows:
                continue
            student = student_vectors(encoder, [t.text for t in rows], STUDENT_ROLE[role])
            teacher = torch.from_numpy(self.cache.get([t.teacher_text for t in rows], role)).to(student.device)
            total = total.to(student.device) + ((student - teacher) ** 2).sum(-1).sum()
            if self.contrastive and len({t.teacher_text for t in rows}) > 1:
                total = total + self.contrastive * len(rows) * self._info_nce(student, rows, role)
            count += len(rows)
        return total / max(count, 1)

    def _info_nce(self, student: torch.Tensor, rows: list[Target], role: str) -> torch.Tensor:
        """Cross-entropy of each student vector over the batch's distinct teacher vectors, its own
        the answer (two rows of one source share a column)."""
        columns = list(dict.fromkeys(t.teacher_text for t in rows))
        teacher = torch.from_numpy(self.cache.get(columns, role)).to(student.device)
        labels = torch.tensor([columns.index(t.teacher_text) for t in rows], device=student.device)
        return F.cross_entropy(student @ teacher.T / self.temperature, labels)


def student_vectors(encoder, texts: list[str], role: str) -> torch.Tensor:
    """[n, dense_dim] the student's dense vectors of texts, with gradients."""
    if role == "query":
        inputs, keep = encoder.query_inputs(texts)
    else:
        inputs, keep = encoder.document_inputs(encoder.tokenizer.documents(texts))
    return encoder.pooled(encoder.hidden_states(**inputs), keep)
