"""Every supported file type, and the ways files go wrong."""

import pytest

from file_fixtures import pdf_bytes, write_corpus
from lfm2_retrieval.ingest import RecordFields, UnreadableFile, read_file
from lfm2_retrieval.ingest.readers import stream_file
from lfm2_retrieval.ingest.readers import decode_text


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


def read(path, fields=None):
    return read_file(path, path.read_bytes(), fields)


def test_plain_text_and_titles(corpus):
    md = read(corpus["md"]).texts
    assert len(md) == 1 and md[0].title == "Compression guide" and "Residual codecs" in md[0].text
    assert read(corpus["rst"]).texts[0].title == "Manual title"
    assert read(corpus["txt"]).texts[0].title == "notes"  # no heading: the file name


def test_html_keeps_visible_text_only(corpus):
    (doc,) = read(corpus["html"]).texts
    assert doc.title == "Recipes"
    assert "Knead the dough & let it rise." in doc.text and "Bread" in doc.text
    assert "hidden" not in doc.text and "p{}" not in doc.text


def test_json_records_with_ids_and_metadata(corpus):
    texts = read(corpus["json"]).texts
    assert [t.record_id for t in texts] == ["j1", "j2"]
    assert texts[0].metadata == {"topic": "space"} and texts[1].text.startswith("Photosynthesis")


def test_json_object_wrapping_a_list(tmp_path):
    path = tmp_path / "wrapped.json"
    path.write_text('{"documents": [{"text": "a"}, {"text": "b", "tags": ["x", 1]}]}')
    texts = read(path).texts
    assert [t.record_id for t in texts] == ["0", "1"]  # no id field: the row number
    assert texts[1].metadata == {"tags": '["x", 1]'}  # non-scalar values become JSON text


def test_jsonl_skips_malformed_lines_and_keeps_the_rest(corpus):
    result = read(corpus["jsonl"])
    assert [t.record_id for t in result.texts] == ["l1", "l2"]
    assert result.texts[1].metadata == {"year": 2019}
    assert any("malformed" in w and "line 2" in w for w in result.warnings)


def test_csv_tsv_parquet(corpus):
    csv = read(corpus["csv"]).texts
    assert [(t.record_id, t.metadata["lang"]) for t in csv] == [("c1", "en"), ("c2", "fr")]
    assert csv[0].text == "Rivers flow to the sea, mostly."
    assert read(corpus["tsv"]).texts[0].text == "Deserts receive little rain."
    pq = read(corpus["parquet"]).texts
    assert [t.metadata["rank"] for t in pq] == [1, 2]


def test_configurable_record_fields(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"_id": "d1", "body": "hello there", "title": "T", "a": 1, "b": 2}\n')
    (doc,) = read(path, RecordFields(text="body", metadata=["a"])).texts
    assert (doc.record_id, doc.text, doc.title, doc.metadata) == ("d1", "hello there", "T", {"a": 1})
    with pytest.raises(UnreadableFile, match="no 'text' field"):
        read(path)


def test_pdf_pages_are_kept(corpus):
    (doc,) = read(corpus["pdf"]).texts
    assert "lighthouses" in doc.text and "harbours" in doc.text
    assert doc.page_at(0) == 1 and doc.page_at(doc.text.index("harbours")) == 2


def test_damaged_pdf_is_unreadable(tmp_path):
    path = tmp_path / "bad.pdf"
    path.write_bytes(pdf_bytes(["fine"])[:60])
    with pytest.raises(UnreadableFile):
        read(path)


def test_binary_and_broken_encodings(corpus, tmp_path):
    with pytest.raises(UnreadableFile, match="binary"):
        read(corpus["binary"])
    latin = read(corpus["broken"])
    assert latin.texts[0].text == "Café au lait, crème brûlée." and "Windows-1252" in latin.warnings[0]
    damaged, warnings = decode_text("naïve".encode() + b"\xff tail")
    assert damaged == "naïve\ufffd tail" and "invalid UTF-8" in warnings[0]
    assert decode_text("日本語".encode("utf-16"))[0] == "日本語"
    assert decode_text(b"\xef\xbb\xbfbom")[0] == "bom"


def test_unsupported_and_empty(tmp_path):
    with pytest.raises(UnreadableFile, match="unsupported"):
        read_file(tmp_path / "x.docx", b"PK")
    empty = tmp_path / "empty.txt"
    empty.write_text("   \n")
    assert read(empty).texts == []


def test_html_parsing_is_linear_on_malformed_markup(tmp_path):
    """'<a ' * 20000 (60 KB) once took 95 s in the standard library's parser, writer lock held."""
    import time

    from lfm2_retrieval.ingest.readers import html_text

    started = time.perf_counter()
    for bad in ("<a " * 20000, "<div>" * 100_000 + "deep text", "<p>unclosed <b>bold <i>" * 5000, "   ", "<<<>>>"):
        html_text(bad)
    assert time.perf_counter() - started < 5
    text, _ = html_text("<div>" * 100_000 + "deep text")
    assert text == "deep text"
    text, title = html_text("<title>T</title><!-- a comment --><p>one</p><p>two<br>three</p><svg><text>x</text></svg>")
    assert title == "T" and text.split() == ["one", "two", "three"]


MKDOCS_PAGE = """---
title: "Request Body"
---
<!-- a comment
over lines -->
# Request Body { #request-body }

When you send data to your API, you send it as a **request body**.

/// info | Technical Details

Use `Pydantic` models, see [the docs](https://docs.pydantic.dev) and ![a diagram](img.png).

///

## Import Pydantic's `BaseModel` { #import-basemodel }

{* ../../docs_src/body/tutorial001.py hl[4] *}

```python
# a comment in code, not a heading
from pydantic import BaseModel
```

| name | type |
|------|------|
| item | str  |

Results
-------

<p align="center"><img src="x.png" alt="x">Rendered <b>HTML</b></p>

!!! warning
    Keep it short.

::: tip
"""


def test_markdown_is_read_as_a_reader_sees_it_with_its_sections(tmp_path):
    path = tmp_path / "body.md"
    path.write_text(MKDOCS_PAGE)
    (text,) = read_file(path, path.read_bytes()).texts
    assert text.title == "Request Body"
    for markup in ("{ #", "{*", "///", ":::", "!!!", "<p", "<img", "<!--", "**", "`", "](", "|", "---", "title:"):
        assert markup not in text.text, markup
    for words in ("Request Body", "Technical Details", "Use Pydantic models, see the docs and a diagram.",
                  "# a comment in code, not a heading", "name type", "item str", "Rendered HTML", "Keep it short."):
        assert words in text.text, words
    assert [name for _, name in text.sections] == [
        "Request Body", "Request Body > Import Pydantic's BaseModel", "Request Body > Results"]
    for start, name in text.sections:
        assert text.text[start:].startswith(name.rsplit(" > ", 1)[-1])
    # Plain text files keep their text as it is.
    plain = tmp_path / "notes.txt"
    plain.write_text("# not markdown { #x }")
    assert read_file(plain, plain.read_bytes()).texts[0].text == "# not markdown { #x }"


def test_markdown_without_headings_or_with_an_unclosed_fence(tmp_path):
    path = tmp_path / "flat.md"
    path.write_text("Just a line with a [link](u).\n\n```\n# inside a fence that never closes\n")
    (text,) = read_file(path, path.read_bytes()).texts
    assert text.title == "flat" and text.sections is None
    assert text.text == "Just a line with a link.\n\n# inside a fence that never closes"


def test_html_headings_become_sections_without_their_permalinks(tmp_path):
    path = tmp_path / "page.html"
    path.write_text("<html><head><title>Guide</title></head><body><nav>menu</nav>"
                    "<h1>Install <a class='headerlink' href='#install'>¶</a></h1><p>Intro.</p>"
                    "<h2>On Debian</h2><p>apt install it.</p><h3>Old releases</h3><p>Use backports.</p>"
                    "<h2>On Windows</h2><p>Run the installer.</p></body></html>")
    (text,) = read_file(path, path.read_bytes()).texts
    assert "¶" not in text.text and text.title == "Guide"
    assert [name for _, name in text.sections] == [
        "Install",
        "Install > On Debian",
        "Install > On Debian > Old releases",
        "Install > On Windows",
    ]
    for start, name in text.sections:
        assert text.text[start:].startswith(name.rsplit(" > ", 1)[-1])


def test_xhtml_with_an_xml_declaration_and_navigation_bars(tmp_path):
    """A DocBook/Publican page (the Debian handbook's): once read as empty because lxml refuses
    an encoding declaration in decoded text; its navigation bars are not text."""
    path = tmp_path / "sect.apt-get.xhtml"
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "x.dtd">'
        '<html xmlns="http://www.w3.org/1999/xhtml"><head><title>6.2. apt-get</title></head><body>'
        '<div id="banner"><a href="/get/">Download the ebook</a></div><ul class="docnav top"><li>Prev</li></ul>'
        '<h2 class="title">6.2. apt-get</h2><div class="para">APT is a vast project.</div>'
        '<div class="navfooter">Next</div></body></html>'
    )
    (text,) = read_file(path, path.read_bytes()).texts
    assert text.title == "6.2. apt-get" and text.text == "6.2. apt-get\n\nAPT is a vast project."


def test_record_files_are_streams(tmp_path):
    """JSON Lines, CSV and Parquet are read as they are consumed; warnings fill as they go."""
    path = tmp_path / "log.jsonl"
    path.write_bytes(
        b'{"id": "a", "text": "first"}\n{broken\n' + '{"id": "b", "text": "caf\u00e9 '.encode() + b'\xff"}\n'
    )
    result = stream_file(path)
    assert not isinstance(result.texts, list) and result.warnings == []
    texts = list(result.texts)
    assert [t.record_id for t in texts] == ["a", "b"] and texts[1].text == "café \ufffd"
    assert any("malformed line" in w for w in result.warnings)
    assert any("invalid UTF-8 (first at byte" in w and "1 character" in w for w in result.warnings)


def test_csv_stream_keeps_rows_before_a_malformed_one(tmp_path):
    import csv as csv_module

    path = tmp_path / "rows.csv"
    path.write_bytes(b"id,text\n1,caf\xe9 au lait\n")  # no valid UTF-8 anywhere: Windows-1252
    result = read(path)
    assert result.texts[0].text == "café au lait" and "Windows-1252" in result.warnings[0]
    old = csv_module.field_size_limit()
    try:
        path.write_text("id,text\n1,short\n2," + "x" * 5000 + "\n", encoding="utf-8")
        result = stream_file(path)
        first = next(result.texts)
        csv_module.field_size_limit(1000)  # the reader set its own limit when it started: row 2 is too long now
        rest = list(result.texts)
    finally:
        csv_module.field_size_limit(old)
    assert first.text == "short" and rest == [] and any("rows before it are kept" in w for w in result.warnings)


def test_a_pdf_without_its_end_marker_warns_under_its_own_name(tmp_path, capfd):
    """pypdf logs "EOF marker not found" on its own logger, which named no file: its messages
    become the file's warnings (reported with its path), and nothing is printed on its own."""
    import logging

    path = tmp_path / "cut.pdf"
    data = pdf_bytes(["a page that reads fine"])
    path.write_bytes(data[:data.rindex(b"%%EOF")])
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger().addHandler(handler)
    try:
        result = read(path)
    except UnreadableFile as exc:  # a pypdf that cannot recover: the skip names the file
        result = None
        assert "PDF" in str(exc)
    finally:
        logging.getLogger().removeHandler(handler)
    assert not [r for r in records if r.name.startswith("pypdf")]  # nothing reached the root logger
    assert "EOF marker" not in capfd.readouterr().err
    if result is not None:
        assert any("EOF marker" in w for w in result.warnings), result.warnings
