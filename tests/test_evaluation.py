"""The evaluation harness: loaders, builders, metrics, and agreement with independent computations."""

import json
import math
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lfm2_retrieval.evaluation.builders import build_beir_nano, build_parallel_nano, build_qa_nano
from lfm2_retrieval.evaluation.harness import evaluate_cross_lingual, evaluate_task, score
from lfm2_retrieval.evaluation.report import cross_lingual_grids, markdown, monolingual_table, reference_deltas
from lfm2_retrieval.evaluation.retrievers import BM25Retriever
from lfm2_retrieval.evaluation.tasks import (DataUnavailableError, RetrievalTask, TaskInfo, discover, load_beir,
                                             load_folder, load_hf_parquet, load_hub, save_beir)
from lfm2_retrieval.index.lexical import tokenize

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau".split()


def toy_task(n_docs=60, n_queries=12, seed=0, language="en") -> RetrievalTask:
    rng = random.Random(seed)
    corpus = {f"d{i}": " ".join(rng.choices(WORDS, k=12)) for i in range(n_docs)}
    queries, qrels = {}, {}
    for q in range(n_queries):
        rel = rng.sample(sorted(corpus), rng.randint(1, 3))
        queries[f"q{q}"] = " ".join(corpus[rel[0]].split()[:4])
        qrels[f"q{q}"] = {d: 1 for d in rel}
    return RetrievalTask(TaskInfo("NanoToy", language), corpus, queries, qrels)


def write_beir(folder, task):
    save_beir(task, folder)
    (folder / "task.json").unlink()  # a plain BEIR folder, as distributed


# ---------------------------------------------------------------------- loaders
def test_beir_round_trip(tmp_path):
    task = toy_task()
    save_beir(task, tmp_path / "t")
    back = load_beir(tmp_path / "t")
    assert back.corpus == task.corpus and back.queries == task.queries and back.qrels == task.qrels
    assert back.info.name == "NanoToy"


def test_beir_titles_and_zero_scores(tmp_path):
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text('{"_id": "1", "title": "T", "text": "body"}\n{"_id": 2, "text": "x"}\n')
    (folder / "queries.jsonl").write_text('{"_id": "q", "text": "what"}\n{"_id": "unjudged", "text": "?"}\n')
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq\t1\t1\nq\t2\t0\n")
    task = load_folder(folder)
    assert task.corpus == {"1": "T\nbody", "2": "x"}
    assert task.qrels == {"q": {"1": 1}} and task.queries == {"q": "what"}  # unjudged queries dropped


def test_hf_parquet_layout(tmp_path):
    folder = tmp_path / "NanoToy"
    for part, table in {
        "corpus": {"_id": ["a", "b"], "text": ["first doc", "second doc"]},
        "queries": {"_id": ["q1"], "text": ["first?"]},
        "qrels": {"query-id": ["q1"], "corpus-id": ["a"]},
    }.items():
        (folder / part).mkdir(parents=True)
        pq.write_table(pa.table(table), folder / part / "train-00000-of-00001.parquet")
    task = load_hf_parquet(folder)
    assert task.corpus == {"a": "first doc", "b": "second doc"} and task.qrels == {"q1": {"a": 1}}
    assert discover(tmp_path) == [folder]


def test_qrels_naming_missing_documents_are_refused(tmp_path):
    task = toy_task()
    task.qrels["q0"]["nowhere"] = 1
    with pytest.raises(ValueError, match="unknown documents"):
        task.check()


def test_hub_offline_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(DataUnavailableError, match="--data"):
        load_hub("SciFact")


# ---------------------------------------------------------------------- builders
def test_build_beir_nano(tmp_path):
    full = toy_task(n_docs=400, n_queries=80, seed=3)
    write_beir(tmp_path / "beir", full)
    task = build_beir_nano(tmp_path / "beir", "NanoToy", n_queries=50, corpus_size=150)
    assert len(task.queries) == 50 and len(task.corpus) == 150
    relevant = {d for rel in task.qrels.values() for d in rel}
    assert relevant <= set(task.corpus)  # no qrel points at a missing document
    assert task.qrels == {q: full.qrels[q] for q in task.queries}
    again = build_beir_nano(tmp_path / "beir", "NanoToy", n_queries=50, corpus_size=150)
    assert again.corpus.keys() == task.corpus.keys()  # seeded


def test_build_qa_nano(tmp_path):
    data = {"data": [{"title": "t", "paragraphs": [
        {"context": f"Paragraph {i} about {WORDS[i % len(WORDS)]} and more.",
         "qas": [{"id": f"q{i}a", "question": f"What about {WORDS[i % len(WORDS)]} {i}?", "answers": []},
                 {"id": f"q{i}b", "question": "Unanswerable?", "is_impossible": True, "answers": []}]}
        for i in range(120)] + [{"context": "Paragraph 0 about alpha and more.", "qas": []}]}]}
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(data))
    task = build_qa_nano([path], "xx", n_queries=50, corpus_size=80)
    assert len(task.queries) == 50 and len(task.corpus) == 80
    assert all(not q.startswith("Unanswerable") for q in task.queries.values())
    gold = [next(iter(rel)) for rel in task.qrels.values()]
    assert len(set(gold)) == 50 and set(gold) <= set(task.corpus)  # one query per paragraph
    assert len(set(task.corpus.values())) == len(task.corpus)  # the repeated paragraph counted once


def test_build_parallel_nano(tmp_path):
    files = {}
    for lang in ("en", "de"):
        files[lang] = tmp_path / f"{lang}.txt"
        files[lang].write_text("\n".join(f"{lang} sentence {i}" for i in range(300)))
    en, de = build_parallel_nano(files, n_queries=20, corpus_size=100)
    assert en.corpus.keys() == de.corpus.keys() and en.qrels == de.qrels and len(en.queries) == 20
    assert en.info.parallel and de.corpus["d5"] == "de sentence 5" if "d5" in de.corpus else True


def test_local_suite_from_shared_data(shared_data, tmp_path):
    from lfm2_retrieval.evaluation.builders import build_local_suite

    folders = build_local_suite(shared_data, tmp_path, qa_languages=["fr", "ja"], ntrex_languages=["en", "ko"],
                                qa_corpus_size=200, scifact_corpus_size=300, ntrex_corpus_size=100)
    names = sorted(f.name for f in folders)
    assert names == ["NanoNTREX_en", "NanoNTREX_ko", "NanoQA_fr", "NanoQA_ja", "NanoSciFact_en"]
    for folder in folders:
        task = load_folder(folder)
        assert len(task.queries) == 50 and set(d for r in task.qrels.values() for d in r) <= set(task.corpus)
    assert len(load_folder(tmp_path / "NanoSciFact_en").corpus) == 300


def test_cross_lingual_qa_from_shared_data(shared_data):
    """NanoXQA: the same questions and paragraphs in en, es and it under one set of ids, and no
    paragraph of any language is one that training reads."""
    import random

    from lfm2_retrieval.evaluation.builders import build_xqa_nano
    from lfm2_retrieval.training.data import qa_pairs

    tasks = build_xqa_nano(shared_data)
    assert [t.info.language for t in tasks] == ["en", "es", "it"] and all(t.info.parallel for t in tasks)
    en, es, it = tasks
    assert len(en.queries) == 50 and en.qrels == es.qrels == it.qrels
    assert en.corpus.keys() == es.corpus.keys() == it.corpus.keys() and len(en.corpus) > 200
    assert set(d for r in en.qrels.values() for d in r) <= set(en.corpus)
    assert all(en.queries[q] != es.queries[q] != it.queries[q] for q in en.queries)  # translated, not copied
    for task in tasks:
        trained = {p.document for p in qa_pairs(shared_data, task.info.language, 0, random.Random(0))}
        assert trained and not trained & set(task.corpus.values()), task.info.language


# ---------------------------------------------------------------------- metrics
def reference_ndcg10(qrels, run):
    """nDCG@10 with binary gains, written out from the definition (not through pytrec_eval)."""
    total = 0.0
    for q, rel in qrels.items():
        ranked = sorted(run.get(q, {}).items(), key=lambda kv: (-kv[1], kv[0]))[:10]
        dcg = sum(1 / math.log2(i + 2) for i, (d, _) in enumerate(ranked) if d in rel)
        idcg = sum(1 / math.log2(i + 2) for i in range(min(10, len(rel))))
        total += dcg / idcg
    return total / len(qrels)


def test_ndcg_matches_the_definition():
    rng = np.random.default_rng(0)
    task = toy_task(n_docs=80, n_queries=30)
    run = {q: {d: float(rng.random()) for d in rng.choice(list(task.corpus), 40, replace=False)} for q in task.queries}
    for q in list(run)[:10]:  # make sure some relevant documents are ranked
        run[q].update({d: 2.0 + rng.random() for d in task.qrels[q]})
    assert abs(score(task.qrels, run)["ndcg@10"] - reference_ndcg10(task.qrels, run)) < 1e-9


def test_queries_without_results_count_as_zero():
    qrels = {"a": {"d1": 1}, "b": {"d2": 1}}
    metrics = score(qrels, {"a": {"d1": 1.0}})
    assert metrics["ndcg@10"] == pytest.approx(0.5) and metrics["mrr@10"] == pytest.approx(0.5)


def test_bm25_on_a_task_and_cross_lingual_grid():
    task = toy_task()
    result = evaluate_task(BM25Retriever(), task)
    assert 0.3 < result.ndcg_at_10 <= 1.0 and result.n_queries == 12
    en = toy_task(seed=1, language="en")
    fr = RetrievalTask(TaskInfo("NanoToy", "fr", parallel=True), {k: v.upper() for k, v in en.corpus.items()},
                       {k: v.upper() for k, v in en.queries.items()}, en.qrels)
    results = list(evaluate_cross_lingual(BM25Retriever(), [en, fr]))
    assert {(r.query_language, r.document_language) for r in results} == {("en", "fr"), ("fr", "en")}
    grid = cross_lingual_grids(results)[("BM25", "NanoToy")]
    assert grid["languages"] == ["en", "fr"] and grid["grid"]["fr"]["en"] > 0.3  # lower-casing makes them match


def test_colbert_harness_agrees_with_pylate_evaluator(pylate_tiny_dir):
    """Our encoder + exact MaxSim + ir-measures against pylate's own evaluator on its own model."""
    from pylate import evaluation, models

    from lfm2_retrieval import ColBERTEncoder
    from lfm2_retrieval.evaluation.retrievers import ColBERTRetriever

    task = toy_task(n_docs=40, n_queries=10, seed=5)
    ours = evaluate_task(ColBERTRetriever(ColBERTEncoder.from_pretrained(pylate_tiny_dir), "ours"), task)
    evaluator = evaluation.PyLateInformationRetrievalEvaluator(
        queries=task.queries, corpus=task.corpus, relevant_docs={q: set(r) for q, r in task.qrels.items()},
        name="toy", show_progress_bar=False, batch_size=8)
    theirs = evaluator(models.ColBERT(str(pylate_tiny_dir), device="cpu"))
    key = next(k for k in theirs if k.endswith("ndcg@10"))
    assert abs(ours.ndcg_at_10 - theirs[key]) < 1e-4, (ours.ndcg_at_10, theirs)


def test_report_tables_and_references():
    task = toy_task()
    results = [evaluate_task(BM25Retriever(), task)]
    columns, rows = monolingual_table(results)
    assert columns == ["NanoToy_en"] and rows["BM25"]["avg"] == results[0].ndcg_at_10
    refs = {"ref": {"model": "Published-1", "monolingual": {"NanoToy": 0.5}}}
    (delta,) = reference_deltas(results, refs)
    assert delta["delta"] == pytest.approx(results[0].ndcg_at_10 - 0.5)
    assert "Published-1" in markdown(results, refs)


def test_lexical_tokens_for_unspaced_scripts():
    assert tokenize("Hello, World!") == ["hello", "world"]
    zh = tokenize("北京大学")
    assert "北京" in zh and "大学" in zh and "北" in zh
    assert "東京" in tokenize("東京タワー") and "한국" in tokenize("한국어")


@pytest.mark.slow
def test_dev_suite_shares_nothing_with_the_evaluation_suite(shared_data, tmp_path):
    from lfm2_retrieval.evaluation.builders import build_atomically, build_dev_suite, build_local_suite

    evaluation = {f.name: load_folder(f) for f in build_local_suite(shared_data, tmp_path / "eval")}
    dev = {f.name: load_folder(f) for f in build_atomically(build_dev_suite, shared_data, tmp_path / "dev")}
    assert {"NanoSciFact_en", "NanoQA_en", "NanoQA_ja", "NanoQA_ko", "NanoNTREX_ja"} <= set(dev)
    assert not (tmp_path / "dev.partial").exists()
    for name, task in dev.items():
        assert len(task.queries) == 50 and set(d for r in task.qrels.values() for d in r) <= set(task.corpus)
        other = evaluation.get(name)
        if other is None:
            continue
        assert not set(task.queries.values()) & set(other.queries.values()), name
        if name.startswith("NanoQA") or name.startswith("NanoNTREX"):  # SciFact dev and test share one corpus
            assert not set(task.corpus.values()) & set(other.corpus.values()), name
        assert not set(task.queries) & set(other.queries), name


def test_a_failed_suite_build_leaves_no_half_suite(tmp_path):
    from lfm2_retrieval.evaluation.builders import build_atomically

    def failing(shared, out):
        (Path(out) / "NanoX_en").mkdir(parents=True)
        raise RuntimeError("disk full")

    (tmp_path / "suite" / "NanoOld_en").mkdir(parents=True)
    with pytest.raises(RuntimeError):
        build_atomically(failing, tmp_path, tmp_path / "suite")
    assert [p.name for p in (tmp_path / "suite").iterdir()] == ["NanoOld_en"]  # the old suite is intact


def test_published_numbers_are_filled_from_the_shared_reference():
    from lfm2_retrieval.evaluation.report import load_references

    refs = load_references(Path(__file__).resolve().parents[1] / "eval" / "reference")
    lfm2 = refs["lfm2-colbert-350m"]
    assert (
        len(
            [
                t
                for t in lfm2["monolingual"]
                if "_" not in t and t.startswith("Nano") and t != "NanoBEIR-multilingual-mean"
            ]
        )
        == 13
    )
    assert lfm2["monolingual"]["NanoSciFact"] == 0.8043
    grid = lfm2["cross_lingual"]["NanoBEIR-multilingual-mean"]
    assert len(grid) == 9 and all(len(row) == 9 for row in grid.values()) and grid["ko"]["ja"] == 0.440
    assert refs["gte-moderncolbert-v1"]["cross_lingual"]["NanoBEIR-multilingual-mean"]["ar"]["ar"] == 0.309
    assert refs["bm25-nanobeir"]["monolingual"]["NanoSciFact"] == 0.7282
    # A result on official data named as NanoBEIR names it gets its deltas.
    from lfm2_retrieval.evaluation.harness import Result

    result = Result("mine", "NanoSciFact", "en", "en", 0.70, 0.9, 0.7, 50, 2000, 1.0)
    deltas = {d["reference"]: d["delta"] for d in reference_deltas([result], refs)}
    assert deltas["LiquidAI/LFM2-ColBERT-350M"] == pytest.approx(0.70 - 0.8043)
    assert deltas["BM25"] == pytest.approx(0.70 - 0.7282)


def test_a_cached_dense_teacher_is_a_system(tmp_path):
    from lfm2_retrieval.evaluation.retrievers import TeacherRetriever
    from lfm2_retrieval.model.dense import TeacherCache

    class BagOfWords:
        """A stand-in dense model: hashed word counts, so a question finds its own words."""

        id, dim = "bag-of-words", 64

        def embed(self, texts, role):
            out = np.zeros((len(texts), self.dim), np.float32)
            for i, text in enumerate(texts):
                for word in tokenize(text):
                    out[i, hash(word) % self.dim] += 1
            return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    task = toy_task()
    system = TeacherRetriever(TeacherCache(BagOfWords(), tmp_path), "bag")
    first = evaluate_task(system, task)
    assert first.ndcg_at_10 > 0.3  # far above chance (about 0.05 over 60 documents)
    assert len(system.cache) == len(task.corpus) + len(task.queries)  # embedded once, kept
    assert evaluate_task(system, task).ndcg_at_10 == first.ndcg_at_10


def test_more_ntrex_languages_use_the_grids_held_out_sentences(shared_data):
    import importlib.util

    from lfm2_retrieval.evaluation.builders import ntrex_files, ntrex_split_sentences
    from lfm2_retrieval.training.data import parallel_pairs

    spec = importlib.util.spec_from_file_location(
        "ntrex_languages", Path(__file__).resolve().parents[1] / "eval" / "ntrex_languages.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tasks = {t.info.language: t for t in module.evaluation_tasks(shared_data, ["ru", "hi", "sw", "zho-CN"])}
    assert set(tasks) == {"en", "ru", "hi", "sw", "zho-CN"}
    evaluation, _ = ntrex_split_sentences(shared_data)
    lines = {int(d[1:]) for d in tasks["ru"].corpus}
    assert len(lines) == 500 and lines <= evaluation and set(tasks["ru"].queries) == set(tasks["en"].queries)
    assert "newstest2019-ref.rus.txt" == ntrex_files(shared_data, ["ru"])["ru"].name
    # Training on those languages never reads those sentences.
    russian = ntrex_files(shared_data, ["ru"])["ru"].read_text(encoding="utf-8").splitlines()
    held_out = {russian[i].strip() for i in lines}
    pairs = parallel_pairs(shared_data, ["en", "ru", "hi"], 0, random.Random(0), per_sentence=4)
    assert pairs and not any(p.query in held_out or p.document in held_out for p in pairs)
