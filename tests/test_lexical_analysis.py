"""Lexical analysis per language (index/analysis.py): stop words, stems, statistics within each
language, the title field; recorded in the manifest; old indexes keep working; optimize and
`optimize --lexical-only` re-analyse."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from lfm2_retrieval.index import MultiVectorIndex
from lfm2_retrieval.index.analysis import Analysis, tokenize
from lfm2_retrieval.index.lexical import BM25Index, TermStatistics

DIM = 16


def unit(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# ---------------------------------------------------------------------- terms
def test_stop_words_and_stems_of_each_language():
    a = Analysis()
    assert a.terms("How do I add CORS headers?", "en") == ["add", "cor", "header"]
    assert a.terms("¿Cómo subo un archivo?", "es") == ["sub", "archiv"]  # "cómo" is "como" without its accent
    assert a.terms("archivos", "es") == a.terms("archivo", "es")
    assert a.terms("аутентификацию", "ru") == a.terms("аутентификация", "ru")
    assert a.terms("как сделать", "ru") == ["сдела"]
    assert a.terms("東京タワー", "ja") == tokenize("東京タワー")  # unspaced scripts keep their bigrams
    assert a.terms("How do I add CORS headers?", "") == tokenize("How do I add CORS headers?")  # no language
    assert Analysis.PLAIN.terms("How do I add CORS headers?", "en") == tokenize("How do I add CORS headers?")


def test_a_query_of_stop_words_only_is_still_a_query():
    terms = Analysis().query_terms("to be or not to be", ["en"], ["en"])
    assert set(terms) == {"to", "be", "or", "not"}


def test_each_chunk_meets_the_query_stemmed_as_it_was_without_the_query_language_stop_words():
    terms = Analysis().query_terms("die Katzen", ["de"], ["de", "en", ""])
    assert "die" not in terms  # a German query's stop word, for every chunk
    assert terms["katz"] == {"de"} and terms["katzen"] == {"en", ""}
    terms = Analysis().query_terms("how do I add CORS?", ["en"], ["en", "de", "ja"])
    assert terms == {"add": {"en", "de", "ja"}, "cor": {"en", "de"}, "cors": {"ja"}}


def test_the_analysis_round_trips_through_json():
    a = Analysis(stop_words=False, title_weight=3)
    assert Analysis.from_json(json.loads(json.dumps(a.to_json()))) == a
    assert Analysis.from_json(None) == Analysis.PLAIN


# ---------------------------------------------------------------------- BM25
def mixed_collection() -> tuple[list[str], list[str]]:
    """The issue's case: "how to add ..." pages in the English quarter of a collection of
    several languages, where "how", "do", "I", "add" are rarer overall than in English, and one
    page about CORS."""
    topics = ["disks", "printers", "users", "networks", "mail", "backups", "kernels", "fonts", "sound", "logs"]
    texts, langs = [], []
    for i in range(10):
        texts.append(f"How do I add {topics[i]}? How I do it: with the tool for {topics[i]}.")
        langs.append("en")
    for i in range(40):
        texts.append(f"The {topics[i % 10]} page number {i} describes settings and files of the system")
        langs.append("en")
    texts.append("CORS: cross-origin resource sharing, allowed origins for the browser")
    langs.append("en")
    for i in range(60):
        texts.append(f"Ein Text über das Thema Nummer {i} und die Dinge darin")
        langs.append("de")
        texts.append(f"Un texto sobre el tema número {i} y las cosas que contiene")
        langs.append("es")
    return texts, langs


def test_function_words_no_longer_outscore_the_content_word():
    texts, langs = mixed_collection()
    query = "how do I add CORS?"
    plain = BM25Index.build(texts, langs, analysis=Analysis.PLAIN)
    assert "CORS" not in texts[plain.search([query], 1)[0][0][0]]  # what the issue saw
    analysed = BM25Index.build(texts, langs, analysis=Analysis())
    assert "CORS" in texts[analysed.search([query], 1)[0][0][0]]


def test_inflected_forms_match():
    texts = ["Настройка аутентификации с OAuth2 и токены JWT", "Погода на завтра", "Subir archivos al servidor",
             "El tiempo de mañana"]
    langs = ["ru", "ru", "es", "es"]
    index = BM25Index.build(texts, langs, analysis=Analysis())
    rows, _ = index.search(["как сделать аутентификацию с OAuth2 и JWT токенами"], 2)[0]
    assert rows[0] == 0
    rows, _ = index.search(["¿cómo subo un archivo?"], 2)[0]
    assert list(rows) == [2]
    plain = BM25Index.build(texts, langs, analysis=Analysis.PLAIN)
    assert len(plain.search(["¿cómo subo un archivo?"], 2)[0][0]) == 0  # "archivo" is not "archivos"


def test_statistics_within_a_language():
    """"install" is in every English text and in no other: across the collection it looks
    rare, within English it says little. With statistics per language its IDF drops."""
    texts = [f"install package {i}" for i in range(300)] + [f"noticia número {i} del día" for i in range(900)]
    langs = ["en"] * 300 + ["es"] * 900
    by_language = BM25Index.build(texts, langs, analysis=Analysis(title_weight=0, language_statistics=True))
    collection_wide = BM25Index.build(texts, langs, analysis=Analysis(title_weight=0))
    assert by_language.search(["install"], 1)[0][1][0] < 0.5 * collection_wide.search(["install"], 1)[0][1][0]
    stats = by_language.statistics("install")
    (stem,) = Analysis().terms("install", "en")
    assert stats.docs == {"en": 300, "es": 900} and stats.df[stem] == {"en": 300}


def test_the_title_field_counts():
    texts = ["Mentions the firewall once among many other words about networks and cables",
             "This page explains rules, chains and tables in detail"]
    titles = ["Cables", "Firewall"]
    index = BM25Index.build(texts, ["en", "en"], titles, Analysis(title_weight=2))
    assert index.search(["firewall"], 2)[0][0][0] == 1
    assert BM25Index.build(texts, ["en", "en"], titles, Analysis(title_weight=0)).search(["firewall"], 2)[0][0][0] == 0


def test_saved_and_loaded_it_scores_the_same(tmp_path):
    texts, langs = mixed_collection()
    index = BM25Index.build(texts, langs, analysis=Analysis())
    index.save(tmp_path / "bm25")
    again = BM25Index.load(tmp_path / "bm25")
    assert again.analysis == Analysis() and again.languages == index.languages
    for q in ["how do I add CORS?", "die Dinge", "las cosas"]:
        (r1, s1), (r2, s2) = index.search([q], 5)[0], again.search([q], 5)[0]
        assert list(r1) == list(r2) and np.allclose(s1, s2)


def test_the_saved_reader_scores_as_bm25s_loader_does(tmp_path):
    import bm25s

    from lfm2_retrieval.index.lexical import SavedBM25

    texts, langs = mixed_collection()
    BM25Index.build(texts, langs, analysis=Analysis()).save(tmp_path / "bm25")
    theirs, ours = bm25s.BM25.load(str(tmp_path / "bm25"), mmap=True), SavedBM25.load(tmp_path / "bm25")
    assert ours.vocab_dict == theirs.vocab_dict and ours.b == theirs.b
    terms = list(theirs.vocab_dict)
    for query in (terms[:1], terms[3:9], terms[:2] * 2):  # a term twice counts twice in both
        assert np.allclose(ours.get_scores(query), theirs.get_scores(query))
    assert not ours.get_scores(["not-a-term"]).any()


def test_a_lexical_search_loads_neither_torch_nor_numba(tmp_path):
    """Start-up: `lfm2-search search --mode lexical` answers without the model's libraries."""
    import subprocess
    import sys

    texts, langs = mixed_collection()
    add_mixed(MultiVectorIndex.create(tmp_path / "idx", dim=DIM, nbits=2), texts, langs)
    script = (f"import sys; from lfm2_retrieval.engine import SearchEngine, SearchRequest; "
              f"e = SearchEngine.open({str(tmp_path / 'idx')!r}); "
              f"hits = e.answer(SearchRequest.of(query='how do I add CORS?', mode='lexical')).results[0].hits; "
              f"assert hits and 'CORS' in hits[0].text, hits; "
              f"print(sorted(m for m in ('torch', 'numba', 'bm25s', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    # The command line's own path: a read-only command ends without the interpreter's teardown
    # (cli.main), and its whole answer still arrives through a pipe.
    command = [sys.executable, "-m", "lfm2_retrieval.cli", "search", "how do I add CORS?", "--mode", "lexical",
               "-k", "3", "-i", str(tmp_path / "idx")]
    done = subprocess.run([*command, "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["results"][0]["hits"]) == 3
    missing = subprocess.run([*command[:-1], str(tmp_path / "none")], capture_output=True, text=True)
    assert missing.returncode == 1 and "no index at" in missing.stderr


def test_statistics_add_up():
    a = TermStatistics({"en": 2}, {"en": 10}, {"x": {"en": 1}})
    b = TermStatistics({"en": 1, "de": 3}, None, {"x": {"de": 2}, "y": {}})
    total = a + b
    assert total.docs == {"en": 3, "de": 3} and total.lengths is None and total.df == {"x": {"en": 1, "de": 2}, "y": {}}
    assert TermStatistics.total([a, b]).n_docs == 6


# ---------------------------------------------------------------------- in the index
def add_mixed(index: MultiVectorIndex, texts, langs, start: int = 0, titles=None) -> None:
    ids = [f"t{start + i}" for i in range(len(texts))]
    meta = [{"lang": lang, **({"title": titles[i]} if titles else {})} for i, lang in enumerate(langs)]
    index.add(ids, [unit(4, start + i) for i in range(len(texts))], list(texts), meta)


def test_scores_by_language_do_not_depend_on_how_the_index_is_split(tmp_path):
    texts, langs = mixed_collection()
    index = MultiVectorIndex.create(tmp_path / "idx", dim=DIM, nbits=2)
    for start in range(0, len(texts), 60):  # segments with different language mixes
        add_mixed(index, texts[start:start + 60], langs[start:start + 60], start)
    assert index.stats()["segments"] == 3
    queries = ["how do I add CORS?", "die Dinge darin", "el tema número 7"]
    split = [{h.id: h.score for h in hits} for hits in index.search_lexical(queries, k=100)]
    index.optimize()
    merged = [{h.id: h.score for h in hits} for hits in index.search_lexical(queries, k=100)]
    for a, b in zip(split, merged):
        assert set(a) == set(b)
        for doc_id in a:
            assert a[doc_id] == pytest.approx(b[doc_id], rel=1e-4)


def test_a_new_index_records_its_analysis_and_an_old_one_keeps_working(tmp_path):
    texts, langs = mixed_collection()
    index = MultiVectorIndex.create(tmp_path / "new", dim=DIM, nbits=2)
    assert index.manifest.analysis == Analysis()
    add_mixed(index, texts, langs)
    info = json.loads(next((tmp_path / "new" / "segments").glob("seg-*/segment.json")).read_text())
    assert Analysis.from_json(info["analysis"]) == Analysis()

    old = MultiVectorIndex.create(tmp_path / "old", dim=DIM, nbits=2)
    manifest = json.loads((tmp_path / "old" / "manifest.json").read_text())
    del manifest["lexical"]  # as an index written before analysis existed
    (tmp_path / "old" / "manifest.json").write_text(json.dumps(manifest))
    old = MultiVectorIndex(tmp_path / "old")
    assert old.manifest.analysis == Analysis.PLAIN
    add_mixed(old, texts, langs)
    query = "how do I add CORS?"
    assert "CORS" not in old.search_lexical([query], k=1)[0][0].text  # plain words, as before
    old.optimize()  # re-analyses with today's default
    assert old.manifest.analysis == Analysis()
    assert "CORS" in old.search_lexical([query], k=1)[0][0].text


def test_reanalyze_is_one_commit_and_keeps_the_vectors(tmp_path):
    texts, langs = mixed_collection()
    index = MultiVectorIndex.create(tmp_path / "idx", dim=DIM, nbits=2, analysis=Analysis.PLAIN)
    add_mixed(index, texts, langs)
    before = index.search([unit(3, 5)], k=5)[0]
    commit = index.commit
    assert index.reanalyze(Analysis()) == len(texts)
    assert index.commit == commit + 1 and index.manifest.analysis == Analysis()
    after = index.search([unit(3, 5)], k=5)[0]
    assert [(h.id, h.score) for h in before] == [(h.id, h.score) for h in after]
    assert "CORS" in index.search_lexical(["how do I add CORS?"], k=1)[0][0].text
    add_mixed(index, ["How do I add more items?"], ["en"], start=500)  # new segments use it too
    assert all(seg.lexical.analysis == Analysis() for seg in index.snapshot.segments)


def test_the_title_of_a_document_is_a_field_in_the_index(tmp_path):
    texts = ["Rules, chains and tables explained step by step", "We mention a firewall in passing here"]
    index = MultiVectorIndex.create(tmp_path / "idx", dim=DIM, nbits=2)  # title x3, the default
    add_mixed(index, texts, ["en", "en"], titles=["Firewall", "Cables"])
    assert index.search_lexical(["firewall"], k=2)[0][0].id == "t0"  # by its title alone, first
    unweighted = MultiVectorIndex.create(tmp_path / "body", dim=DIM, nbits=2, analysis=Analysis(title_weight=0))
    add_mixed(unweighted, texts, ["en", "en"], titles=["Firewall", "Cables"])
    assert [h.id for h in unweighted.search_lexical(["firewall"], k=2)[0]] == ["t1"]


def test_cli_chooses_and_changes_the_analysis(tmp_path, pylate_tiny_dir):
    from lfm2_retrieval.cli import app

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "cors.md").write_text("# CORS\n\nCross-origin resource sharing: allowed origins.\n")
    (docs / "add.md").write_text("# Adding\n\nHow do I add things? How to add: add them, as I do.\n")
    runner = CliRunner()
    where = str(tmp_path / "idx")
    result = runner.invoke(app, ["index", str(docs), "--index", where, "--model", str(pylate_tiny_dir),
                                 "--analysis", "plain"])
    assert result.exit_code == 0, result.output
    assert MultiVectorIndex(where).manifest.analysis == Analysis.PLAIN
    result = runner.invoke(app, ["optimize", "--index", where, "--lexical-only", "--analysis", "language",
                                 "--title-weight", "2"])
    assert result.exit_code == 0, result.output
    assert "BM25 made anew for 2 chunk(s)" in result.output
    assert MultiVectorIndex(where).manifest.analysis == Analysis(title_weight=2)
    result = runner.invoke(app, ["optimize", "--index", where, "--analysis", "english"])
    assert result.exit_code != 0 and "--analysis must be 'language' or 'plain'" in result.output


def test_a_sharded_index_keeps_and_changes_its_analysis(tmp_path):
    from lfm2_retrieval.shards import ShardedIndex, split_index

    texts, langs = mixed_collection()
    index = MultiVectorIndex.create(tmp_path / "idx", dim=DIM, nbits=2, analysis=Analysis.PLAIN)
    add_mixed(index, texts, langs)
    sharded = split_index(index.path, tmp_path / "sharded", n_shards=2)
    assert all(shard.manifest.analysis == Analysis.PLAIN for shard in sharded.shards)  # the split keeps it
    query = "how do I add CORS?"
    assert "CORS" not in sharded.search_lexical([query], k=1)[0][0].text
    assert sharded.reanalyze(Analysis()) == len(texts)
    sharded = ShardedIndex(sharded.path)
    assert all(shard.manifest.analysis == Analysis() for shard in sharded.shards)
    assert "CORS" in sharded.search_lexical([query], k=1)[0][0].text
    index.reanalyze(Analysis())  # sharded and unsharded score alike
    single = {h.id: h.score for h in index.search_lexical([query], k=20)[0]}
    for hit in sharded.search_lexical([query], k=20)[0]:
        assert hit.score == pytest.approx(single[hit.id], rel=1e-4)
