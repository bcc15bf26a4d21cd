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
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..lexical import BM25Index
from .data import Pair, family


class BM25Teacher:
    """BM25 per document family (qa/ja, ntrex/ko, scifact), over every training document."""

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
        """([queries, documents] BM25 scores, [queries] bool: rows the teacher speaks for).

        A document of another family scores 0: it shares no indexed word with the query's
        language as far as this teacher knows."""
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
        return torch.from_numpy(out), torch.from_numpy(taught)


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, taught: torch.Tensor,
                      temperature: float = 1.0, teacher_temperature: float = 1.0) -> torch.Tensor:
    """KL(teacher || student) over each taught row's documents, averaged over taught rows."""
    if not bool(taught.any()):
        return student.new_zeros(())
    log_student = F.log_softmax(student[taught] / temperature, dim=-1)
    log_teacher = F.log_softmax(teacher[taught] / teacher_temperature, dim=-1)
    return F.kl_div(log_student, log_teacher, log_target=True, reduction="batchmean")
