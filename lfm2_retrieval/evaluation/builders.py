"""Building Nano-style tasks from local data, the way NanoBEIR itself was built.

NanoBEIR takes 50 queries of a BEIR task and a small corpus: every relevant document of those
queries plus BM25 hard negatives, up to a size. The same recipe makes
- Nano BEIR tasks from a BEIR folder (SciFact here);
- NanoQA tasks from SQuAD-style files: questions against paragraphs (the paragraph holding the
  answer is relevant), in any language;
- NanoNTREX tasks from multi-parallel text: a sentence against sentences, with ids aligned
  across languages, so queries of one language can search the corpus of another;
- NanoXQA tasks from a QA set and its translations: questions against paragraphs, ids aligned
  across languages likewise, for question answering across languages.
Everything is seeded; the same inputs always give the same task.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Collection, Sequence
from pathlib import Path

from ..index.lexical import BM25Index
from .tasks import RetrievalTask, TaskInfo, load_beir, save_beir

N_QUERIES = 50


def _fill_corpus(pool: dict[str, str], must: list[str], queries: Sequence[str], size: int, seed: int,
                 negatives_per_query: int = 50) -> dict[str, str]:
    """The documents in `must`, then BM25 hard negatives of the queries (round-robin), then
    random documents, until `size` documents."""
    ids = list(pool)
    chosen = dict.fromkeys(must)
    if len(chosen) < size:
        bm25 = BM25Index.build([pool[i] for i in ids])
        ranked = [[ids[r] for r in rows] for rows, _ in bm25.search(list(queries), negatives_per_query)]
        for depth in range(negatives_per_query):
            for ranking in ranked:
                if depth < len(ranking) and len(chosen) < size:
                    chosen.setdefault(ranking[depth])
    rest = [i for i in ids if i not in chosen]
    random.Random(seed).shuffle(rest)
    for i in rest[: max(0, size - len(chosen))]:
        chosen.setdefault(i)
    return {i: pool[i] for i in chosen}


# ---------------------------------------------------------------------- BEIR
def build_beir_nano(beir_dir: Path, name: str, language: str = "en", split: str = "test",
                    n_queries: int = N_QUERIES, corpus_size: int = 2000, seed: int = 0,
                    license: str = "") -> RetrievalTask:
    full = load_beir(beir_dir, split, TaskInfo(name=name, language=language))
    judged = sorted(q for q in full.qrels if q in full.queries)
    picked = sorted(random.Random(seed).sample(judged, min(n_queries, len(judged))))
    qrels = {q: full.qrels[q] for q in picked}
    relevant = [d for q in picked for d in qrels[q]]
    corpus = _fill_corpus(full.corpus, relevant, [full.queries[q] for q in picked], corpus_size, seed)
    info = TaskInfo(name=name, language=language, source=f"{beir_dir} ({split})", license=license,
                    extra={"n_queries": len(picked), "corpus_size": len(corpus)})
    task = RetrievalTask(info, corpus, {q: full.queries[q] for q in picked}, qrels)
    task.check()
    return task


# ---------------------------------------------------------------------- SQuAD-style QA
def read_squad(paths: Sequence[Path]) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """(paragraph id -> text, [(question id, question, paragraph id)]) of answerable questions.

    Identical paragraphs (some sets repeat them) share one id."""
    paragraphs: dict[str, str] = {}
    by_text: dict[str, str] = {}
    questions: list[tuple[str, str, str]] = []
    for path in paths:
        data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
        for a, article in enumerate(data):
            for p, para in enumerate(article.get("paragraphs", [])):
                context = (para.get("context") or "").strip()
                if not context:
                    continue
                pid = by_text.setdefault(context, f"{Path(path).stem}-{a}-{p}")
                paragraphs[pid] = context
                for n, qa in enumerate(para.get("qas", [])):
                    if qa.get("is_impossible") or not (qa.get("question") or "").strip():
                        continue
                    qid = str(qa.get("id") or f"{pid}-q{n}")
                    questions.append((qid, qa["question"].strip(), pid))
    return paragraphs, questions


def build_qa_nano(paths: Sequence[Path], language: str, n_queries: int = N_QUERIES, corpus_size: int = 1000,
                  seed: int = 0, license: str = "", name: str = "NanoQA",
                  exclude: Collection[str] = ()) -> RetrievalTask:
    """`exclude`: paragraph texts to leave out entirely (e.g. another split's corpus)."""
    paragraphs, questions = read_squad(paths)
    if exclude:
        excluded = set(exclude)
        paragraphs = {pid: text for pid, text in paragraphs.items() if text not in excluded}
        questions = [q for q in questions if q[2] in paragraphs]
    if not questions:
        raise ValueError(f"no answerable questions in {', '.join(map(str, paths))}")
    # At most one question per paragraph, so every query has a different relevant paragraph.
    rng = random.Random(seed)
    rng.shuffle(questions)
    picked, used = [], set()
    for qid, text, pid in questions:
        if pid not in used and qid not in {q for q, _, _ in picked}:
            picked.append((qid, text, pid))
            used.add(pid)
        if len(picked) == n_queries:
            break
    corpus = _fill_corpus(paragraphs, [p for _, _, p in picked], [t for _, t, _ in picked], corpus_size, seed)
    info = TaskInfo(name=name, language=language, source=", ".join(Path(p).name for p in paths), license=license,
                    extra={"n_queries": len(picked), "corpus_size": len(corpus),
                           "question_ids": [q for q, _, _ in picked]})
    task = RetrievalTask(info, corpus, {q: t for q, t, _ in picked}, {q: {p: 1} for q, _, p in picked})
    task.check()
    return task


# ---------------------------------------------------------------------- parallel text
def build_parallel_nano(files: dict[str, Path], n_queries: int = N_QUERIES, corpus_size: int = 500, seed: int = 0,
                        license: str = "", name: str = "NanoNTREX",
                        exclude: Collection[int] = ()) -> list[RetrievalTask]:
    """One task per language over the same sentence numbers: query `q<n>` is relevant to `d<n>`.

    `exclude`: sentence numbers (0-based lines) to leave out, e.g. another split's."""
    lines = {lang: Path(p).read_text(encoding="utf-8").splitlines() for lang, p in files.items()}
    n = min(len(v) for v in lines.values())
    excluded = set(exclude)
    usable = [i for i in range(n) if i not in excluded and all(lines[lang][i].strip() for lang in lines)]
    chosen = random.Random(seed).sample(usable, min(corpus_size, len(usable)))
    query_lines = sorted(chosen[:n_queries])
    tasks = []
    for lang, text in lines.items():
        info = TaskInfo(name=name, language=lang, source=Path(files[lang]).name, license=license, parallel=True,
                        extra={"n_queries": len(query_lines), "corpus_size": len(chosen)})
        task = RetrievalTask(
            info,
            {f"d{i}": text[i].strip() for i in sorted(chosen)},
            {f"q{i}": text[i].strip() for i in query_lines},
            {f"q{i}": {f"d{i}": 1} for i in query_lines},
        )
        task.check()
        tasks.append(task)
    return tasks


# ---------------------------------------------------------------------- QA across languages
# SQuAD v1.1 dev and two translations of it keep its question ids: the same question, and the
# paragraph that answers it, in three languages.
XQA_LANGUAGES = ("en", "es", "it")


def build_xqa_nano(shared_data: Path, languages: Sequence[str] = XQA_LANGUAGES, n_queries: int = N_QUERIES,
                   seed: int = 0, held: dict[str, set[str]] | None = None) -> list[RetrievalTask]:
    """Cross-lingual QA: one task per language over the same ids (`parallel`), so the questions
    of one language search the paragraphs of another; query `<id>` is relevant to paragraph `p<n>`.

    Only paragraphs that are in the NanoQA evaluation corpus of *every* language are used: those
    are held out of training in each (training/data.py), so neither a question nor its paragraph
    was ever trained on, in any of the languages. The corpus is every such paragraph (hundreds;
    no hard negatives are added: any other paragraph would be training data somewhere); one
    question per paragraph, at most `n_queries`. `held`: each language's evaluation paragraphs,
    when the caller has just built those tasks (else they are built again here)."""
    shared_data = Path(shared_data)
    held = dict(held or {})
    found, licenses = {}, []
    for lang in languages:
        files, license = QA_EVAL_FILES[lang]
        paragraphs, questions = read_squad([shared_data / "qa" / f for f in files])
        found[lang] = {qid: (question, paragraphs[pid]) for qid, question, pid in questions}
        if lang not in held:
            held[lang] = eval_qa_paragraphs(shared_data, lang)
        licenses.append(f"{lang}: {license}")
    first = languages[0]
    common = sorted(set.intersection(*(set(found[lang]) for lang in languages)))
    common = [q for q in common if all(found[lang][q][1] in held[lang] for lang in languages)]
    # A paragraph of the first language must map to one paragraph in each other language.
    aligned: dict[str, set[tuple[str, ...]]] = {}
    for q in common:
        aligned.setdefault(found[first][q][1], set()).add(tuple(found[lang][q][1] for lang in languages))
    paragraphs = sorted(next(iter(v)) for v in aligned.values() if len(v) == 1)
    key = {texts[0]: f"p{n}" for n, texts in enumerate(paragraphs)}
    questions = [q for q in common if found[first][q][1] in key]
    random.Random(seed).shuffle(questions)
    picked, used = [], set()
    for q in questions:
        pid = key[found[first][q][1]]
        if pid not in used and len(picked) < n_queries:
            picked.append((q, pid))
            used.add(pid)
    if not picked:
        raise ValueError(f"no question of {', '.join(languages)} has its paragraph held out in every language")
    tasks = []
    for i, lang in enumerate(languages):
        info = TaskInfo(name="NanoXQA", language=lang, source=", ".join(QA_EVAL_FILES[lang][0]),
                        license="; ".join(licenses), parallel=True,
                        extra={"n_queries": len(picked), "corpus_size": len(paragraphs)})
        task = RetrievalTask(info, {f"p{n}": texts[i] for n, texts in enumerate(paragraphs)},
                             {q: found[lang][q][0] for q, _ in picked}, {q: {pid: 1} for q, pid in picked})
        task.check()
        tasks.append(task)
    return tasks


# ---------------------------------------------------------------------- the local suite
# Evaluation files per language (dev/test splits; training uses the train files only).
QA_EVAL_FILES = {
    "en": (["en/squad2-dev.json"], "CC BY-SA 4.0"),
    "es": (["es/squad-es-v1.1-dev.json"], "CC BY 4.0"),
    "it": (["it/squad-it-test.json"], "CC BY-SA 4.0"),
    "ja": (["ja/jaquad-dev.json"], "CC BY-SA 3.0"),
    "ko": (["ko/korquad-v1-dev.json"], "CC BY-ND 2.0 KR (evaluation only)"),
    "zh": (["zh/cmrc2018-dev.json"], "CC BY-SA 4.0"),
    "ar": (["ar/arcd-test.json"], "MIT"),
    "fr": (["fr/piaf-spf-qr-test.json"], "MIT"),
}
NTREX_FILES = {"ar": "newstest2019-ref.arb.txt", "de": "newstest2019-ref.deu.txt", "en": "newstest2019-src.eng.txt",
               "es": "newstest2019-ref.spa.txt", "fr": "newstest2019-ref.fra.txt", "it": "newstest2019-ref.ita.txt",
               "ja": "newstest2019-ref.jpn.txt", "ko": "newstest2019-ref.kor.txt", "pt": "newstest2019-ref.por.txt"}


def build_local_suite(shared_data: Path, out: Path, qa_languages: Sequence[str] = tuple(QA_EVAL_FILES),
                      ntrex_languages: Sequence[str] = tuple(NTREX_FILES), seed: int = 0,
                      qa_corpus_size: int = 1000, scifact_corpus_size: int = 2000,
                      ntrex_corpus_size: int = 500) -> list[Path]:
    """Nano-SciFact, NanoQA in each language, NanoNTREX in each language and NanoXQA (en, es, it:
    questions against paragraphs across languages), as BEIR folders."""
    shared_data, out = Path(shared_data), Path(out)
    written = []
    scifact = shared_data / "beir" / "scifact"
    if scifact.is_dir():
        task = build_beir_nano(scifact, "NanoSciFact", corpus_size=scifact_corpus_size, seed=seed,
                               license="CC BY-NC 2.0")
        written.append(_save(task, out))
    qa_corpora = {}
    for lang in qa_languages:
        files, license = QA_EVAL_FILES[lang]
        paths = [shared_data / "qa" / f for f in files]
        if all(p.exists() for p in paths):
            task = build_qa_nano(paths, lang, corpus_size=qa_corpus_size, seed=seed, license=license)
            qa_corpora[lang] = set(task.corpus.values())
            written.append(_save(task, out))
    ntrex = shared_data / "parallel" / "ntrex128"
    files = {lang: ntrex / NTREX_FILES[lang] for lang in ntrex_languages if (ntrex / NTREX_FILES[lang]).exists()}
    if len(files) >= 2:
        for task in build_parallel_nano(files, corpus_size=ntrex_corpus_size, seed=seed, license="CC BY-SA 4.0"):
            written.append(_save(task, out))
    xqa = [lang for lang in XQA_LANGUAGES if lang in qa_corpora]
    if len(xqa) >= 2:  # held out = the NanoQA corpora just built (only at the default sizes: eval_qa_paragraphs')
        held = qa_corpora if (qa_corpus_size, seed) == (1000, 0) else None
        written.extend(_save(task, out) for task in build_xqa_nano(shared_data, xqa, seed=seed, held=held))
    return written


# Dev tasks: for choosing settings (e.g. the hybrid alpha) without looking at the evaluation
# tasks. Queries and documents are disjoint from theirs, and the QA files are ones the
# training recipe never reads (see training/data.py), so a trained model has not seen them.
# Other languages have no such file: the evaluation tasks use every paragraph of KorQuAD, ARCD
# test and CMRC dev, and their other files are training data.
QA_DEV_FILES = {
    "en": (["en/tydiqa-goldp-dev.json"], "Apache-2.0"),
    "ja": (["ja/jsquad-test.json"], "CC BY-SA 4.0"),
    "ko": (["ko/tydiqa-goldp-dev.json"], "Apache-2.0"),
}
DEV_SEED = 1
NTREX_DEV_SENTENCES = 250


def eval_qa_paragraphs(shared_data: Path, language: str) -> set[str]:
    """The paragraph texts of the NanoQA evaluation task of a language (built exactly as
    build_local_suite does)."""
    files, _ = QA_EVAL_FILES[language]
    paths = [Path(shared_data) / "qa" / f for f in files]
    if not all(p.exists() for p in paths):
        return set()
    return set(build_qa_nano(paths, language).corpus.values())


# More NTREX-128 languages by their ISO 639-1 code (the file names use ISO 639-3 with script tags);
# any other NTREX code ("kaz", "srp-Cyrl") may be named as it is.
NTREX_CODES = {"bg": "bul", "bn": "ben", "ca": "cat", "cs": "ces", "da": "dan", "el": "ell", "et": "est",
               "fa": "fas", "fi": "fin", "he": "heb", "hi": "hin", "hr": "hrv", "hu": "hun", "hy": "hye",
               "id": "ind", "ka": "kat", "lt": "lit", "lv": "lav", "mr": "mar", "ms": "msa", "nl": "nld",
               "pl": "pol", "ro": "ron", "ru": "rus", "sk": "slk", "sv": "swe", "sw": "swa", "ta": "tam",
               "te": "tel", "th": "tha", "tr": "tur", "uk": "ukr", "ur": "urd", "vi": "vie"}


def ntrex_file_name(lang: str) -> str:
    return NTREX_FILES.get(lang) or f"newstest2019-ref.{NTREX_CODES.get(lang, lang)}.txt"


def ntrex_files(shared_data: Path, languages: Sequence[str] = tuple(NTREX_FILES)) -> dict[str, Path]:
    """The NTREX file of each language that has one: the nine of the evaluation grid by
    NTREX_FILES, others by NTREX_CODES or by their NTREX code itself."""
    folder = Path(shared_data) / "parallel" / "ntrex128"
    return {lang: folder / ntrex_file_name(lang) for lang in languages if (folder / ntrex_file_name(lang)).exists()}


def ntrex_dev_grid(files: dict[str, Path], evaluation: Collection[int], license: str = "") -> list[RetrievalTask]:
    """The NanoNTREX dev tasks over `files`: NTREX_DEV_SENTENCES sentences drawn with DEV_SEED
    from those that are not `evaluation`'s (the one draw training leaves out and dev reads)."""
    return build_parallel_nano(files, corpus_size=NTREX_DEV_SENTENCES, seed=DEV_SEED, exclude=evaluation,
                               license=license)


def ntrex_split_sentences(shared_data: Path) -> tuple[set[int], set[int]]:
    """Sentence numbers of the NanoNTREX evaluation tasks and of the dev tasks."""
    files = ntrex_files(shared_data)
    if len(files) < 2:
        return set(), set()
    evaluation = {int(d[1:]) for d in build_parallel_nano(files)[0].corpus}
    return evaluation, {int(d[1:]) for d in ntrex_dev_grid(files, evaluation)[0].corpus}


def dev_tasks(shared_data: Path, qa_languages: Sequence[str] = tuple(QA_DEV_FILES),
              ntrex_languages: Sequence[str] = tuple(NTREX_FILES), qa_corpus_size: int = 1000,
              scifact_corpus_size: int | None = 2000) -> list[RetrievalTask]:
    """Dev counterparts of the local suite: SciFact's train queries (None: no SciFact), NanoQA
    from QA_DEV_FILES without any paragraph of the evaluation tasks, NanoNTREX on other
    sentences (one task per language, for cross-lingual grids)."""
    shared_data = Path(shared_data)
    tasks = []
    scifact = shared_data / "beir" / "scifact"
    if scifact_corpus_size and (scifact / "qrels" / "train.tsv").exists():
        tasks.append(build_beir_nano(scifact, "NanoSciFact", split="train", corpus_size=scifact_corpus_size,
                                     seed=DEV_SEED, license="CC BY-NC 2.0"))
    for lang in qa_languages:
        if lang not in QA_DEV_FILES:
            continue
        files, license = QA_DEV_FILES[lang]
        paths = [shared_data / "qa" / f for f in files]
        if all(p.exists() for p in paths):
            tasks.append(build_qa_nano(paths, lang, corpus_size=qa_corpus_size, seed=DEV_SEED, license=license,
                                       exclude=eval_qa_paragraphs(shared_data, lang)))
    files = ntrex_files(shared_data, ntrex_languages)
    if len(files) >= 2:
        evaluation, _ = ntrex_split_sentences(shared_data)
        tasks += ntrex_dev_grid(files, evaluation, license="CC BY-SA 4.0")
    return tasks


def build_dev_suite(shared_data: Path, out: Path, **kwargs) -> list[Path]:
    """dev_tasks, saved as BEIR folders."""
    return [_save(task, Path(out)) for task in dev_tasks(shared_data, **kwargs)]


def build_atomically(builder, shared_data: Path, out: Path, **kwargs) -> list[Path]:
    """Run a suite builder into a scratch folder, then put it in place of `out`: a build that
    fails half-way leaves no half a suite behind for the next run to mistake for a whole one."""
    out = Path(out)
    scratch = out.with_name(out.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    written = builder(shared_data, scratch, **kwargs)
    shutil.rmtree(out, ignore_errors=True)
    scratch.rename(out)
    return [out / p.name for p in written]


def _save(task: RetrievalTask, out: Path) -> Path:
    folder = out / task.key
    save_beir(task, folder)
    return folder
