"""Snippets (engine/snippets.py): the window of a hit that answers the query, BM25's matched
words highlighted; in the engine's answer and in POST /search."""

import pytest
from fastapi.testclient import TestClient

from lfm2_retrieval.api import ApiSettings, create_app
from lfm2_retrieval.engine import SearchEngine, TextDocument
from lfm2_retrieval.engine.snippets import snippet
from lfm2_retrieval.index.analysis import Analysis, LexicalQuery

FILLER = "Texto de relleno sin interés alguno para esta pregunta. " * 12


def words(s):
    return [s.text[a:b] for a, b in s.highlights]


def test_whole_words_every_occurrence_stems_and_no_stop_words():
    text = "Para subir archivos al servidor, abra el panel. " + FILLER + "Cada archivo tiene un límite; un archivo más."
    s = snippet(text, LexicalQuery("¿cómo subo un archivo?", ("es",)), Analysis(), "es", chars=0)
    assert words(s) == ["subir", "archivos", "archivo", "archivo"]  # "un" is a stop word: never highlighted
    assert s.text == text and s.start == 0


def test_the_window_holds_the_most_query_words():
    text = "Un archivo al principio. " + FILLER + "Para subir archivos al servidor grande, abra el panel. " + FILLER
    s = snippet(text, LexicalQuery("subir archivos servidor", ("es",)), Analysis(), "es", chars=120)
    assert len(s.text) <= 122 and s.text.startswith("\u2026") and s.text.endswith("\u2026")
    assert set(words(s)) == {"subir", "archivos", "servidor"}
    assert text[s.start:].startswith(s.text[1:].rstrip("\u2026")[:20])
    assert s.formatted.count("<mark>") == 3


def test_html_is_escaped_and_pairs_of_unspaced_scripts_are_marked():
    s = snippet("<b>CORS</b> & friends", LexicalQuery("cors", ("en",)), Analysis(), "en", chars=0)
    assert s.formatted == "&lt;b&gt;<mark>CORS</mark>&lt;/b&gt; &amp; friends"
    s = snippet("東京タワーの高さは333メートルです", LexicalQuery("東京タワー", ("ja",)), Analysis(), "ja", chars=0)
    assert words(s) == ["東京タワー"]


def test_a_plain_index_highlights_the_words_themselves():
    s = snippet("archivos y archivo", LexicalQuery("archivo", ("es",)), Analysis.PLAIN, "es", chars=0)
    assert words(s) == ["archivo"]


@pytest.fixture(scope="module")
def engine(tmp_path_factory, pylate_tiny_dir):
    engine = SearchEngine.open(tmp_path_factory.mktemp("snip") / "idx", model=str(pylate_tiny_dir), create=True)
    engine.upsert([TextDocument("es", "Para subir archivos al servidor, abra el panel de control.", {"lang": "es"}),
                   TextDocument("en", "Adding CORS headers: how the allowed origins are set.", {"lang": "en"})])
    return engine


@pytest.mark.parametrize("mode", ["lexical", "semantic", "hybrid"])
def test_search_returns_snippets_when_asked(engine, mode):
    with TestClient(create_app(engine, ApiSettings(api_key=None))) as client:
        body = client.post("/search", json={"query": "how do I add CORS?", "mode": mode, "k": 2,
                                            "highlight": True, "snippet_chars": 0}).json()
        hits = {h["id"]: h for h in body["results"][0]["hits"]}
        assert [body_text[a:b] for a, b in hits["en#0"]["snippet"]["highlights"]
                for body_text in [hits["en#0"]["snippet"]["text"]]] == ["Adding", "CORS"]
        plain = client.post("/search", json={"query": "CORS", "mode": mode, "k": 1}).json()
        assert "snippet" not in plain["results"][0]["hits"][0] or plain["results"][0]["hits"][0]["snippet"] is None
        assert client.post("/search", json={"query": "x", "highlight": True, "snippet_chars": -1}).status_code == 422


def test_the_clients_ask_for_snippets(engine):
    from lfm2_retrieval.client import LocalClient

    hits = LocalClient(engine).search("CORS headers", k=2, mode="lexical", highlight=True)
    assert hits[0].id == "en#0" and "<mark>CORS</mark>" in hits[0].snippet.formatted
