"""Parallel text from Debian packages (training/debian_text.py): gettext catalogues and
LibreOffice help pages aligned by paragraph id, written as the TSV the dense head reads."""

from __future__ import annotations

import struct
from pathlib import Path

from lfm2_retrieval.training.debian_text import (_Paragraphs, clean_message, help_paragraphs, mo_pairs,
                                                 sample_sources, usable, write_tsv)
from lfm2_retrieval.training.dense_distillation import tsv_targets


def write_mo(path: Path, messages: dict[str, str]) -> None:
    """A GNU .mo file (the format msgfmt writes: header, two string tables, the strings)."""
    keys = sorted(messages)
    ids, strs = b"", b""
    offsets = []
    for key in keys:
        k, v = key.encode(), messages[key].encode()
        offsets.append((len(ids), len(k), len(strs), len(v)))
        ids += k + b"\0"
        strs += v + b"\0"
    start = 7 * 4 + 16 * len(keys)
    table_k = b"".join(struct.pack("<II", length, start + o) for o, length, _, _ in offsets)
    table_v = b"".join(struct.pack("<II", length, start + len(ids) + o) for _, _, o, length in offsets)
    header = struct.pack("<IIIIIII", 0x950412DE, 0, len(keys), 7 * 4, 7 * 4 + 8 * len(keys), 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + table_k + table_v + ids + strs)


def test_gettext_catalogues_give_message_pairs(tmp_path):
    write_mo(tmp_path / "usr/share/locale/de/LC_MESSAGES/tool.mo",
             {"": "Content-Type: text/plain; charset=UTF-8\n", "cannot open the file for reading": "kann die Datei "
              "nicht zum Lesen öffnen", "&Save the document now": "Dokument jetzt &speichern"})
    pairs = {(clean_message(s), clean_message(t), loc) for s, t, loc in mo_pairs(tmp_path)}
    assert ("cannot open the file for reading", "kann die Datei nicht zum Lesen öffnen", "de") in pairs
    assert ("Save the document now", "Dokument jetzt speichern", "de") in pairs
    assert usable("cannot open the file for reading", "kann die Datei nicht zum Lesen öffnen")
    assert not usable("Save", "Speichern") and not usable("same text in both", "same text in both")


def test_help_pages_align_by_paragraph_id(tmp_path):
    page = '<html><body><h1 id="hd1">Inserting a chart</h1><p id="par1">Choose <b>Insert - Chart</b> to add ' \
           'one.</p><p>no id: not aligned</p><ul><li id="li1">First item of the list</li></ul></body></html>'
    folder = tmp_path / "usr/share/libreoffice/help/en-US/text/swriter"
    folder.mkdir(parents=True)
    (folder / "chart.html").write_text(page)
    found = help_paragraphs(tmp_path, "en-US")
    assert found == {"text/swriter/chart.html#hd1": "Inserting a chart",
                     "text/swriter/chart.html#par1": "Choose Insert - Chart to add one.",
                     "text/swriter/chart.html#li1": "First item of the list"}
    parser = _Paragraphs()
    parser.feed('<p id="a">outer <span>inner</span> text</p>')
    assert parser.paragraphs == {"a": "outer inner text"}


def test_rows_round_trip_into_dense_targets(tmp_path):
    rows = [(f"source sentence number {i % 5}", f"Übersetzung {i} mit \"Anführungszeichen\"", "de", "test")
            for i in range(20)]
    kept = sample_sources(rows, 2, seed=0)
    assert len({r[0] for r in kept}) == 2 and sample_sources(rows, 2, seed=0) == kept
    write_tsv(kept, tmp_path / "debian.tsv")
    targets = tsv_targets(tmp_path / "debian.tsv", roles=("query",))
    assert {t.teacher_text for t in targets} == {r[0] for r in kept}
    assert {t.text for t in targets} == {r[0] for r in kept} | {r[1] for r in kept}
