"""Training pairs (query, relevant passage) from ../shared/data, kept apart from evaluation data.

- QA: questions and their paragraphs, from the training files of each language. Where a
  language has one file only (es, it, fr; the English SQuAD dev set), its paragraphs that the
  NanoQA evaluation tasks use (as gold or as distractors) are left out. KorQuAD is never used:
  its license allows evaluation only.
- Parallel text (NTREX): a sentence and its translation into another language, so that
  queries and documents meet across scripts; the sentences of the NanoNTREX evaluation and dev
  tasks are left out.
- SciFact: training queries (qrels/train.tsv) and their abstracts, less the 50 of the dev task;
  evaluation uses the test queries.
- The QA files of the dev tasks (evaluation/builders.py QA_DEV_FILES) are never read here.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, replace
from pathlib import Path

from ..evaluation.builders import (DEV_SEED, build_beir_nano, eval_qa_paragraphs, ntrex_files, ntrex_split_sentences,
                                   read_squad)
from ..evaluation.tasks import load_beir

# Training files per language; files also used for evaluation are filtered (see above).
QA_TRAIN_FILES = {
    "en": ["en/tydiqa-goldp-train.json", "en/squad2-dev.json"],
    "es": ["es/squad-es-v1.1-dev.json"],
    "it": ["it/squad-it-test.json"],
    "ja": ["ja/jaquad-train.json", "ja/jsquad-valid.json"],
    "ko": ["ko/tydiqa-goldp-train.json"],
    "zh": ["zh/drcd-dev.json", "zh/drcd-test.json", "zh/cmrc2018-trial.json"],
    "ar": ["ar/arcd-train.json", "ar/tydiqa-goldp-dev.json"],
    "fr": ["fr/piaf-spf-qr-test.json"],
}
NEVER_TRAIN = ("korquad",)  # CC BY-ND: evaluation only
DATA_LICENSES = {
    "SQuAD 2.0": "CC BY-SA 4.0", "TyDi QA": "Apache-2.0", "SQuAD-es": "CC BY 4.0", "SQuAD-it": "CC BY-SA 4.0",
    "JaQuAD": "CC BY-SA 3.0", "JSQuAD (JGLUE)": "CC BY-SA 4.0", "DRCD": "CC BY-SA 3.0", "CMRC 2018": "CC BY-SA 4.0",
    "ARCD": "MIT", "PIAF": "MIT", "NTREX-128": "CC BY-SA 4.0", "BEIR SciFact": "CC BY-NC 2.0",
}


@dataclass(frozen=True)
class Pair:
    query: str
    document: str
    source: str  # e.g. qa/ja, ntrex/en-ko, scifact
    negative: str | None = None  # a mined hard negative: like the document, but not relevant


def qa_pairs(shared: Path, language: str, limit: int, rng: random.Random, max_paragraphs: int = 0,
             ict_per_paragraph: int = 0) -> list[Pair]:
    """Question -> paragraph pairs of one language; with `max_paragraphs`, only the questions of
    that many paragraphs (drawn with rng), which bounds what a slow teacher must read; with
    `ict_per_paragraph`, also inverse-cloze rows (inverse_cloze_pairs) from those paragraphs."""
    paths = [shared / "qa" / f for f in QA_TRAIN_FILES.get(language, []) if (shared / "qa" / f).exists()]
    paths = [p for p in paths if not any(word in p.name for word in NEVER_TRAIN)]
    if not paths:
        return []
    held_out = eval_qa_paragraphs(shared, language)
    paragraphs, questions = read_squad(paths)
    usable = sorted({pid for _, _, pid in questions if paragraphs[pid] not in held_out})
    if max_paragraphs and len(usable) > max_paragraphs:
        usable = rng.sample(usable, max_paragraphs)
    kept = set(usable)
    pairs = [Pair(q, paragraphs[pid], f"qa/{language}") for _, q, pid in questions if pid in kept]
    rng.shuffle(pairs)
    pairs = pairs[:limit] if limit else pairs
    if ict_per_paragraph:
        pairs += inverse_cloze_pairs([paragraphs[pid] for pid in sorted(kept)], f"ict/{language}",
                                     ict_per_paragraph, rng)
    return pairs


_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s*")


def split_sentences(text: str) -> list[str]:
    """Sentences of a paragraph, cut after . ! ? and their CJK forms (good enough for choosing an
    inverse-cloze query; no language model needed)."""
    return [s.strip() for s in _SENTENCE_END.split(text) if len(s.strip()) >= 8]


def inverse_cloze_pairs(paragraphs: list[str], source: str, per_paragraph: int, rng: random.Random,
                        remove_sentence: bool = False) -> list[Pair]:
    """Inverse cloze task (Lee et al. 2019): a sentence of a paragraph as the query, the paragraph
    as its document. Unlabelled text becomes training rows in any language; with a teacher
    scoring each row against the whole batch, a row teaches more than its one label.

    The sentence stays in its paragraph unless `remove_sentence` (ICT removes it in 90% of rows):
    the paragraph is then a text the teacher has already read, where a shortened one would cost
    a slow teacher another passage."""
    pairs = []
    for text in paragraphs:
        sentences = split_sentences(text)
        if len(sentences) < 3:
            continue
        for i in rng.sample(range(len(sentences)), min(per_paragraph, len(sentences))):
            document = " ".join(sentences[:i] + sentences[i + 1:]) if remove_sentence else text
            pairs.append(Pair(sentences[i], document, source))
    return pairs


def parallel_pairs(shared: Path, languages: list[str], limit: int, rng: random.Random,
                   per_sentence: int = 2) -> list[Pair]:
    files = ntrex_files(shared, languages)
    if len(files) < 2:
        return []
    evaluation, dev = ntrex_split_sentences(shared)  # the NanoNTREX evaluation and dev sentences
    held_out = evaluation | dev
    lines = {lang: p.read_text(encoding="utf-8").splitlines() for lang, p in files.items()}
    n = min(len(v) for v in lines.values())
    langs = sorted(lines)
    pairs = []
    for i in range(n):
        if i in held_out:
            continue
        for _ in range(per_sentence):  # random language pairs of this sentence
            a, b = rng.sample(langs, 2)
            if lines[a][i].strip() and lines[b][i].strip():
                pairs.append(Pair(lines[a][i].strip(), lines[b][i].strip(), f"ntrex/{a}-{b}"))
    rng.shuffle(pairs)
    return pairs[:limit] if limit else pairs


def english_sources(shared: Path, languages: list[str]) -> dict[str, str]:
    """Each parallel sentence, in any of the languages, mapped to its English source sentence.

    A teacher that reads only English (all-MiniLM-L6-v2) scores translation pairs through these."""
    files = ntrex_files(shared, sorted(set(languages) | {"en"}))
    if "en" not in files:
        return {}
    lines = {lang: p.read_text(encoding="utf-8").splitlines() for lang, p in files.items()}
    english = [line.strip() for line in lines["en"]]
    return {line.strip(): english[i] for lang_lines in lines.values()
            for i, line in enumerate(lang_lines[:len(english)]) if line.strip() and english[i]}


def scifact_pairs(shared: Path, limit: int, rng: random.Random) -> list[Pair]:
    folder = shared / "beir" / "scifact"
    if not (folder / "qrels" / "train.tsv").exists():
        return []
    task = load_beir(folder, split="train")
    dev = build_beir_nano(folder, "NanoSciFact", split="train", seed=DEV_SEED).queries
    pairs = [Pair(task.queries[q], task.corpus[d], "scifact") for q, rel in task.qrels.items() for d in rel
             if q not in dev]
    rng.shuffle(pairs)
    return pairs[:limit] if limit else pairs


def training_pairs(shared: Path, languages: list[str], limit_per_source: int, seed: int,
                   sources: tuple[str, ...] = ("qa", "parallel", "scifact"),
                   translation_pairs_per_sentence: int = 2, parallel_languages: list[str] | None = None,
                   qa_paragraphs_per_language: int = 0, ict_per_paragraph: int = 0) -> list[Pair]:
    """The chosen sources, shuffled together with the seed. Translation pairs are drawn among
    `languages` plus `parallel_languages` (NTREX only: languages without QA data)."""
    unknown = set(sources) - {"qa", "parallel", "scifact"}
    if unknown:
        raise ValueError(f"unknown data sources {sorted(unknown)}; use qa, parallel, scifact")
    rng = random.Random(seed)
    pairs: list[Pair] = []
    if "qa" in sources:
        for lang in languages:
            pairs += qa_pairs(shared, lang, limit_per_source, rng, qa_paragraphs_per_language, ict_per_paragraph)
    if "parallel" in sources:
        parallel = list(dict.fromkeys([*languages, *(parallel_languages or [])]))
        pairs += parallel_pairs(shared, parallel, limit_per_source, rng, translation_pairs_per_sentence)
    if "scifact" in sources:
        pairs += scifact_pairs(shared, limit_per_source, rng)
    rng.shuffle(pairs)
    return pairs


def mine_hard_negatives(pairs: list[Pair], depth: int, seed: int) -> list[Pair]:
    """Each pair gets a hard negative: a document of the same source that BM25 ranks among the
    top `depth` for the query (QA, SciFact) or for the document itself (translations, whose
    query is in another language), drawn at random from that list so that the few unlabelled
    relevant documents near the top (false negatives) are not always the ones picked."""
    from ..index.lexical import BM25Index

    rng = random.Random(seed)
    out = list(pairs)
    for fam, members, docs in families(pairs):
        if len(docs) < 2:
            continue
        bm25 = BM25Index.build(docs)
        by_doc = fam.startswith("ntrex/")
        probes = [pairs[i].document if by_doc else pairs[i].query for i in members]
        for i, (rows, _) in zip(members, bm25.search(probes, depth + 1)):
            candidates = [docs[r] for r in rows if docs[r] != pairs[i].document]
            if candidates:
                out[i] = replace(pairs[i], negative=rng.choice(candidates[:depth]))
    return out


def families(pairs: list[Pair]) -> list[tuple[str, list[int], list[str]]]:
    """(family, the positions of its pairs, its distinct documents in first-seen order), by
    family name: where hard negatives of a pair are mined."""
    members: dict[str, list[int]] = {}
    for i, p in enumerate(pairs):
        members.setdefault(family(p), []).append(i)
    return [(fam, rows, list(dict.fromkeys(pairs[i].document for i in rows))) for fam, rows in sorted(members.items())]


def family(pair: Pair) -> str:
    """Documents of one language and kind: qa/ja, ntrex/ko (the document's language), scifact."""
    if pair.source.startswith("ntrex/"):
        return "ntrex/" + pair.source.split("-")[-1]
    return pair.source


def batches(pairs: list[Pair], batch_size: int, seed: int, start_step: int = 0):
    """Endless batches without repeated documents inside a batch (they would be false negatives).

    A pair whose hard negative is already in the batch (or is another pair's document) loses
    it. Deterministic for a seed: a resumed run sees exactly the batches it would have seen."""
    step, epoch = 0, 0
    while True:
        order = list(range(len(pairs)))
        random.Random(seed * 1000 + epoch).shuffle(order)
        batch, seen = [], set()
        for i in order:
            pair = pairs[i]
            if pair.document in seen:
                continue
            seen.add(pair.document)
            if pair.negative is not None:
                if pair.negative in seen:
                    pair = replace(pair, negative=None)
                else:
                    seen.add(pair.negative)
            batch.append(pair)
            if len(batch) == batch_size:
                if step >= start_step:
                    yield batch
                step += 1
                batch, seen = [], set()
        epoch += 1


def write_summary(pairs: list[Pair], path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in pairs:
        counts[p.source] = counts.get(p.source, 0) + 1
    path.write_text(json.dumps(dict(sorted(counts.items())), indent=2), encoding="utf-8")
    return counts
