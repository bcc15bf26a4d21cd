"""Does removing each language's mean vector make the model's vectors more language-neutral?
Token vectors (MaxSim) and the dense head's vectors, re-centred per language, scored on the
trainer's dev tasks (issue 36).

    python -m eval.language_centering --threads 1

Multilingual encoders put a language-specific offset into every vector: subtracting the mean
vector of the text's language (Libovický et al. 2020, "On the language neutrality of pre-trained
multilingual representations") moves translations closer. At search time this needs the language
of each chunk and query, which the engine already has (index/language.py, py3langid), and one
mean per language and role, which costs nothing to store. This measures whether it pays before
any of it is built.

Means: the model's vectors (token vectors, and the head's) of NTREX-128 training sentences (not
the evaluation or dev sentences), SENTENCES per file, in the query and the document role, summed
under the language py3langid detects for each sentence, as search would detect it. A text whose
language has no mean (or is not detected) takes the mean over all languages. Each vector becomes
v - s * mean, renormalised, for strengths s.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
console = Console(width=None if sys.stdout.isatty() else 160)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=ROOT / "lfm2_retrieval" / "models" / "default")
    p.add_argument("--shared-data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--sentences", type=int, default=200, help="training sentences per NTREX-128 file for the means")
    p.add_argument("--strengths", type=float, nargs="+", default=[0.5, 1.0])
    p.add_argument("--languages", nargs="+", default=["en", "ja", "ko", "ar"])
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args(argv)


ROLES = ("query", "document")
RAW: dict[str, dict[tuple[str, str], np.ndarray]] = {}  # kind -> (text, role) -> the model's vectors
LANGUAGE: dict[str, str] = {}  # text -> its detected language ("*": none), for every system alike


def language_means(encoder, shared: Path, per_file: int) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """{kind: {role: {language: mean}}} for kind "tokens" (every token vector of the sentences)
    and "dense" (the head's vectors), under the language detected per sentence; "*" is the mean
    over languages."""
    from lfm2_retrieval.evaluation.builders import ntrex_split_sentences
    from lfm2_retrieval.index.language import language_of

    evaluation, dev = ntrex_split_sentences(shared)
    held_out = evaluation | dev
    sums = {kind: {role: defaultdict(lambda: [0.0, 0]) for role in ROLES} for kind in ("tokens", "dense")}
    files = sorted((shared / "parallel" / "ntrex128").glob("newstest2019-*.txt"))
    for path in files:
        lines = path.read_text(encoding="utf-8").splitlines()
        texts = [t.strip() for i, t in enumerate(lines) if i not in held_out and t.strip()][:per_file]
        languages = [language_of(t, "") for t in texts]
        for role in ROLES:
            tokens, dense = _vectors(encoder, texts, role)
            for lang, t, d in zip(languages, tokens, dense):
                if not lang:
                    continue
                cell = sums["tokens"][role][lang]
                cell[0], cell[1] = cell[0] + t.sum(0), cell[1] + len(t)
                if d is not None:
                    cell = sums["dense"][role][lang]
                    cell[0], cell[1] = cell[0] + d, cell[1] + 1
    means = {kind: {role: {lang: s / n for lang, (s, n) in by_lang.items() if n}
                    for role, by_lang in by_role.items()} for kind, by_role in sums.items()}
    for by_role in means.values():
        for table in by_role.values():
            if table:
                table["*"] = np.mean(list(table.values()), axis=0)
    return means


def _vectors(encoder, texts: list[str], role: str) -> tuple[list[np.ndarray], list]:
    """(token vectors, dense vectors or Nones) of texts; a document's both come from one forward."""
    if encoder.dense_head is None:
        tokens = encoder.encode_queries(texts) if role == "query" else encoder.encode_documents(texts)
        return tokens, [None] * len(texts)
    if role == "document":
        tokens, dense = encoder.encode_documents_with_dense(texts)
        return tokens, list(dense)
    return encoder.encode_queries(texts), list(encoder.encode_dense(texts, role))


def center(vectors: np.ndarray, mean: np.ndarray, strength: float) -> np.ndarray:
    shifted = vectors - strength * mean
    return (shifted / np.maximum(np.linalg.norm(shifted, axis=-1, keepdims=True), 1e-6)).astype(np.float32)


class Centered:
    """A retriever whose vectors (token or dense) are re-centred by the detected language; the raw
    vectors come from the wrapped system, encoded once per text."""

    def __init__(self, encoder, kind: str, means: dict, strength: float) -> None:
        from lfm2_retrieval.evaluation.retrievers import ColBERTRetriever

        self.encoder, self.kind, self.means, self.strength = encoder, kind, means, strength
        self.name = f"{kind}, centred x{strength:g}" if strength else f"{kind}, as trained"
        self.colbert = ColBERTRetriever(encoder, self.name)
        self._memo = RAW.setdefault(kind, {})  # shared by every strength: each text encoded once

    def _vectors(self, texts: list[str], role: str) -> list[np.ndarray]:
        from lfm2_retrieval.index.language import language_of

        todo = [t for t in dict.fromkeys(texts) if (t, role) not in self._memo]
        if todo:
            if self.kind == "tokens":
                raw = self.encoder.encode_queries(todo) if role == "query" else self.encoder.encode_documents(todo)
            else:
                raw = list(self.encoder.encode_dense(todo, role))
            self._memo.update({(t, role): r for t, r in zip(todo, raw)})
        table = self.means[self.kind][role]
        out = []
        for t in texts:
            if t not in LANGUAGE:
                LANGUAGE[t] = language_of(t, "*") or "*"
            mean = table.get(LANGUAGE[t], table["*"])
            out.append(center(self._memo[(t, role)], mean, self.strength) if self.strength else self._memo[(t, role)])
        return out

    def index(self, corpus: dict[str, str]):
        ids = list(corpus)
        vectors = self._vectors([corpus[i] for i in ids], "document")
        return (ids, np.stack(vectors)) if self.kind == "dense" else self.colbert.index_vectors(ids, vectors)

    def search(self, handle, queries: dict[str, str], k: int):
        from lfm2_retrieval.evaluation.retrievers import top_k_run

        qids = list(queries)
        vectors = self._vectors([queries[q] for q in qids], "query")
        if self.kind == "tokens":
            return self.colbert.search_vectors(handle, qids, vectors, k)
        ids, docs = handle
        return top_k_run(qids, np.stack(vectors) @ docs.T, ids, k)


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from lfm2_retrieval import ColBERTEncoder
    from lfm2_retrieval.evaluation.dev import load_dev_tasks, system_dev_scores

    encoder = ColBERTEncoder.from_pretrained(str(args.model))
    started = time.perf_counter()
    means = language_means(encoder, args.shared_data, args.sentences)
    console.print(f"means of {len(means['tokens']['document']) - 1} detected languages in "
                  f"{time.perf_counter() - started:.0f} s")
    tasks = load_dev_tasks(args.shared_data, args.languages)
    kinds = ["tokens"] + (["dense"] if encoder.dense_head is not None else [])
    table = Table(title=f"{args.model.name}, re-centred per language: dev NDCG@10")
    columns = [f"qa_{lang}" for lang in args.languages[:3]] + ["ntrex_cross"]
    for col in ["system", *columns]:
        table.add_column(col, justify="left" if col == "system" else "right")
    for kind in kinds:
        for strength in [0.0, *args.strengths]:
            system = Centered(encoder, kind, means, strength)
            scores = system_dev_scores(system, *tasks)
            console.print(system.name, {k: round(v, 3) for k, v in scores.items()})
            table.add_row(system.name, *[f"{scores.get(c, float('nan')):.3f}" for c in columns])
    console.print(table)


if __name__ == "__main__":
    main()
