"""Token-level targets from the teacher's hidden states (issue 36): the student's contextual
state of each word is taught to point where multilingual-e5-small's state of the same word points.

Why: MaxSim matches tokens, and E5's last-layer word states are already aligned across
languages (in "The cat sat on the mat." / "El gato se sentó en la alfombra.", cat's nearest
Spanish word is gato, on's is en, the's is la), while a pooled vector, or one score per (query,
document) pair, tells the student nothing about which of its tokens should meet which. The
targets are the text's own (no alignment across languages is needed): every text the dense
distillation reads, in all its languages, so the student's word states move into a space where
translations meet word by word.

Words, not pieces: the two tokenizers cut a text differently, but a whitespace-separated word
is a unit both see (each token is placed in a word by its character offsets, whatever the
tokenizer's own pre-tokenisation). A word's state is the mean over its tokens, the student's
through a linear map into the teacher's 384 dimensions (`head`, trained with it and dropped with
it: the model folder never holds it). A text whose word counts differ (E5's normalisation adds
or removes a space) is left out, as are words a truncation cut off or a normalisation emptied.

The loss is an in-batch InfoNCE over words: each student word must be nearer its own teacher
word than the batch's other words. E5's space is anisotropic (unrelated words at cosine 0.7 to
0.8), so a plain cosine or MSE target is met by sending every word to the mean direction (what
MSE alone did to the dense head); the ranking asks for what MaxSim needs, telling words apart.
"""

from __future__ import annotations

import random

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .dense_distillation import STUDENT_ROLE, Target


class WordDistillation(nn.Module):
    """The head (student hidden -> teacher word space) and the loss of a batch of texts."""

    def __init__(self, teacher, hidden_size: int, batch_size: int = 32, max_words: int = 1024,
                 temperature: float = 0.05, seed: int = 0) -> None:
        super().__init__()
        self.teacher = teacher  # TorchE5Encoder (model/e5.py): word_states(texts, role)
        self.head = nn.Linear(hidden_size, teacher.dim)
        self.batch_size, self.max_words, self.temperature, self.seed = batch_size, max_words, temperature, seed

    def batch(self, dense, step: int) -> list[Target]:
        """The texts of a step, drawn from the dense distillation's targets (translations and the
        pairs' own texts, in its proportions), the same whenever that step is run, and another
        draw than the dense batch's."""
        return dense.draw(random.Random(self.seed * 1_000_003 + step + 7_919), self.batch_size)

    def loss(self, encoder, batch: list[Target], step: int = 0) -> torch.Tensor:
        """In-batch InfoNCE of the batch's words (at most max_words of them, the same ones
        whenever this step is run): each student word against every teacher word."""
        student, teacher = [], []
        for role in ("query", "passage"):
            texts = [t.text for t in batch if t.role == role]
            if texts:
                s, t = self._word_pairs(encoder, texts, role)
                student.append(s)
                teacher.append(t)
        if not student:
            return torch.zeros(())
        s, t = torch.cat(student), torch.cat(teacher)
        if len(s) > self.max_words:  # the same words whenever this step is run
            keep = torch.randperm(len(s), generator=torch.Generator().manual_seed(self.seed + step))[: self.max_words]
            s, t = s[keep], t[keep]
        if len(s) < 2:
            return s.sum() * 0.0
        s = F.normalize(self.head(s.float()), dim=-1)
        t = F.normalize(t.to(s.device), dim=-1)
        labels = torch.arange(len(s), device=s.device)
        return F.cross_entropy(s @ t.T / self.temperature, labels)

    def _word_pairs(self, encoder, texts: list[str], role: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(student word states [w, hidden] with gradients, teacher word states [w, 384]) of
        every word both tokenizers count alike, over the texts."""
        student_role = STUDENT_ROLE[role]
        tokenizer = encoder.tokenizer
        counts = tokenizer.word_counts(texts)
        teacher_states = self.teacher.word_states(texts, role)
        if student_role == "query":
            inputs, _ = encoder.query_inputs(texts)
        else:
            inputs, _ = encoder.document_inputs(tokenizer.documents(texts))
        hidden = encoder.hidden_states(**inputs)  # [n, T, hidden]
        students, teachers = [], []
        for row, (words, count, target) in enumerate(zip(tokenizer.word_ids(texts, student_role), counts,
                                                          teacher_states)):
            index = torch.tensor([-1 if w is None else w for w in words], dtype=torch.long)
            real = index >= 0
            if count != len(target) or not bool(real.any()):
                continue
            sizes = torch.bincount(index[real], minlength=count)
            present = (sizes > 0) & torch.from_numpy(np.abs(target).sum(1) > 0)  # read by both
            sums = torch.zeros((count, hidden.shape[-1]), dtype=hidden.dtype, device=hidden.device)
            sums = sums.index_add(0, index[real].to(hidden.device), hidden[row, : len(words)][real.to(hidden.device)])
            means = sums / sizes.clamp(min=1)[:, None].to(sums.dtype).to(hidden.device)
            students.append(means[present.to(hidden.device)])
            teachers.append(torch.from_numpy(target[present.numpy()]))
        if not students:
            return hidden.new_zeros((0, hidden.shape[-1])), torch.zeros((0, self.teacher.dim))
        return torch.cat(students), torch.cat(teachers)
