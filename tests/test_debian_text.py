"""Parallel text from Debian packages (training/debian_text.py): gettext catalogues and
LibreOffice help pages aligned by paragraph id (debian.tsv); GNOME's help aligned unit by unit
(documentation.tsv); translated manual pages aligned paragraph by paragraph (manpages.tsv,
training/manual_pages.py): written as the TSV the dense head reads."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from lfm2_retrieval.training.debian_text import (DOCUMENTATION_PACKAGES, FILES, LICENSES, _Paragraphs,
                                                 clean_message, help_paragraphs, language_code, mallard_pairs,
                                                 message_rows, mo_pairs, once_per_language, sample_sources, usable,
                                                 wanted, write_tsv)
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


def test_desktop_messages_keep_seen_languages_once_each(tmp_path):
    """desktop.tsv: the same rows as debian.tsv's messages (unseen languages out), and a message
    that two packages both translate counted once a language; a catalogue with a broken
    Plural-Forms header is skipped, not fatal."""
    message = "Could not open the folder you asked for"
    write_mo(tmp_path / "gtk/usr/share/locale/ar/LC_MESSAGES/gtk30.mo",
             {"": "Content-Type: text/plain; charset=UTF-8\n", message: "تعذر فتح المجلد الذي طلبته"})
    write_mo(tmp_path / "gtk/usr/share/locale/uk/LC_MESSAGES/gtk30.mo",  # unseen: held out
             {"": "Content-Type: text/plain; charset=UTF-8\n", message: "Не вдалося відкрити теку"})
    write_mo(tmp_path / "gtk/usr/share/locale/hi/LC_MESSAGES/gtk30.mo",  # "plural=" missing
             {"": "Content-Type: text/plain; charset=UTF-8\nPlural-Forms: nplurals=2;\n", message: "फ़ोल्डर"})
    write_mo(tmp_path / "files/usr/share/locale/ar/LC_MESSAGES/nautilus.mo",
             {"": "Content-Type: text/plain; charset=UTF-8\n", message: "تعذر فتح المجلد"})
    rows = message_rows("gtk", tmp_path / "gtk") + message_rows("files", tmp_path / "files")
    assert [r[2] for r in rows] == ["ar", "ar"]
    assert once_per_language(rows) == [(message, "تعذر فتح المجلد الذي طلبته", "ar", "gtk")]
    assert "desktop.tsv" in FILES and all(package in LICENSES for package in FILES["desktop.tsv"][1])


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


MALLARD_PAGE = '''<?xml version="1.0" encoding="utf-8"?>
<page xmlns="http://projectmallard.org/1.0/" type="topic" id="bounce">
  <info>
    <link type="guide" xref="a11y"/>
    <credit type="author"><name>A. Writer</name><email>a@example.org</email></credit>
    <desc>{desc}</desc>
  </info>
  <title>{title}</title>
  <p>{para} <gui>Settings</gui>.</p>
  <steps><item><p>{step}</p></item></steps>
</page>
'''


def write_mallard(root: Path, locale: str, **texts) -> None:
    page = root / "usr/share/help" / locale / "gnome-help" / "bounce.page"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(MALLARD_PAGE.format(**texts), encoding="utf-8")


def test_gnome_help_aligns_units_in_document_order(tmp_path):
    english = dict(desc="Ignore quickly repeated key presses.", title="Turn on bounce keys",
                   para="Turn on bounce keys in", step="Open the Activities overview and start typing.")
    write_mallard(tmp_path, "C", **english)
    write_mallard(tmp_path, "de", desc="Schnell wiederholte Tastendrücke ignorieren.", title="Tastenprellen",
                  para="Schalten Sie Tastenprellen ein in", step="Open the Activities overview and start typing.")
    write_mallard(tmp_path, "ja", desc="同じキーを無視します。", title="バウンスキー", para="有効にする", step="")
    (tmp_path / "usr/share/help/ja/gnome-help/bounce.page").write_text(  # a unit fewer: not aligned
        MALLARD_PAGE.replace("<steps><item><p>{step}</p></item></steps>", "").format(
            desc="同じキーを無視します。", title="バウンスキー", para="有効にする"), encoding="utf-8")
    write_mallard(tmp_path, "fr", desc="x", title="y", para="z", step="w")
    (tmp_path / "usr/share/help/fr/gnome-help/bounce.page").write_text("<page><p>broken", encoding="utf-8")
    pairs = list(mallard_pairs(tmp_path))
    assert {p[2] for p in pairs} == {"de"}  # ja has a unit fewer, fr does not parse: both skipped
    assert ("Ignore quickly repeated key presses.", "Schnell wiederholte Tastendrücke ignorieren.", "de") in pairs
    assert ("Turn on bounce keys in Settings.", "Schalten Sie Tastenprellen ein in Settings.", "de") in pairs
    assert "A. Writer" not in {p[0] for p in pairs}  # credits are not text
    untranslated = [p for p in pairs if p[0] == p[1]]
    assert untranslated and not any(usable(s, t) for s, t, _ in untranslated)  # left in English: no row


def test_language_codes_have_one_spelling_and_unseen_languages_stay_out():
    assert {language_code(x) for x in ("de", "de_DE", "de-DE")} == {"de"}
    assert language_code("pt_BR") == "pt-br" and language_code("zh-TW") == "zh-tw"
    assert language_code("sr@latin") == "sr-latn" and language_code("ar-MA") == "ar"
    assert not wanted("en@quot") and not wanted("en_GB") and not wanted("fa-IR") and not wanted("uk")
    assert wanted("ja") and wanted("pt_BR")


def test_model_card_names_each_file_and_only_its_licences():
    from lfm2_retrieval.training.model_card import _dense_head_lines

    messages = " ".join(_dense_head_lines([{"distill_dense": 1.0, "dense_parallel_tsv": ["~/p/debian.tsv"]}]))
    both = " ".join(_dense_head_lines([{"distill_dense": 1.0,
                                        "dense_parallel_tsv": ["~/p/debian.tsv", "~/p/documentation.tsv"]}]))
    assert "libreoffice-help MPL-2.0" in messages and "gnome-user-docs" not in messages
    assert "gnome-user-docs CC-BY-SA-3.0" in both and "documentation.tsv: GNOME's help" in both


def test_the_real_documents_benchmark_stays_out_of_training():
    # eval/real_documents.py searches the Debian handbook across languages: its aligned
    # paragraphs would teach exactly that task.
    assert "debian-handbook" not in DOCUMENTATION_PACKAGES
    assert "debian-handbook" in Path(__file__).parents[1].joinpath("eval", "real_documents.py").read_text()


def test_a_config_names_parallel_files_by_name_plain_or_gzipped(tmp_path, monkeypatch):
    """dense_parallel_tsv = ["debian.tsv"] is a file of the parallel-text folder
    ($LFM2_SEARCH_PARALLEL), read gzip'd when only the .gz is there (what a device machine gets)."""
    import gzip

    from lfm2_retrieval.training.config import TrainConfig
    from lfm2_retrieval.training.trainer import dense_distillation

    class Cache:  # the teacher cache is not read while targets are gathered
        pass

    class Teacher:
        cache = Cache()

    rows = [("the first source sentence here", "la première phrase source ici", "fr", "test"),
            ("a second source sentence here", "una segunda frase fuente aquí", "es", "test")]
    write_tsv(rows[:1], tmp_path / "debian.tsv")
    with gzip.open(tmp_path / "documentation.tsv.gz", "wt", encoding="utf-8") as f:
        f.write("\t".join(rows[1]) + "\n")
    monkeypatch.setenv("LFM2_SEARCH_PARALLEL", str(tmp_path))
    cfg = TrainConfig(shared_data=str(tmp_path / "no-shared-data"), distill_dense=1.0,
                      dense_parallel_tsv=["debian.tsv", "documentation.tsv"])
    texts = {t.text for t in dense_distillation(cfg, [], Teacher()).parallel}
    assert texts == {r[0] for r in rows} | {r[1] for r in rows}
    cfg.dense_parallel_tsv = ["elsewhere.tsv"]
    with pytest.raises(FileNotFoundError, match="elsewhere.tsv"):
        dense_distillation(cfg, [], Teacher())


ENGLISH_PAGE = r'''.\" SPDX-License-Identifier: Linux-man-pages-copyleft
.TH pipe 7 2022-12-04 "Linux man-pages 6.03"
.SH NAME
pipe \- overview of pipes and FIFOs
.SH DESCRIPTION
A pipe has a
.I read end
and a
.IR "write end" .
It is created by
.BR pipe (2),
which returns \fBtwo\fP file descriptors\(emone for each end.
.SS I/O on pipes and FIFOs
.PP
.EX
int fd[2]; pipe(fd);
.EE
.TP
.B O_NONBLOCK
Reads and writes do not block when the pipe is empty or full.
.SH SEE ALSO
Read fifo(7) for further details about named pipes.
'''
GERMAN_PAGE = r'''.\" -*- coding: UTF-8 -*-
.TH pipe 7 "4. Dezember 2022" "Linux man-pages 6.03"
.SH BEZEICHNUNG
pipe \- Überblick über Pipes und FIFOs
.SH BESCHREIBUNG
Eine Pipe hat ein
.I Leseende
und ein
.IR Schreibende .
Sie wird von
.BR pipe (2)
erzeugt, das \fBzwei\fP Dateideskriptoren liefert\(emeinen für jedes Ende.
.SS "E/A auf Pipes und FIFOs"
.PP
.EX
int fd[2]; pipe(fd);
.EE
.TP
.B O_NONBLOCK
Lese- und Schreibvorgänge blockieren nicht, wenn die Pipe leer oder voll ist.
.SH "SIEHE AUCH"
Read fifo(7) for further details about named pipes.
.SH ÜBERSETZUNG
Die deutsche Übersetzung dieser Handbuchseite wurde von Jemand erstellt.
'''


def test_manual_pages_read_as_sections_of_plain_paragraphs():
    from lfm2_retrieval.training.manual_pages import macro_arguments, page_sections

    assert macro_arguments('"write end" .') == ["write end", "."] and macro_arguments("pipe (2),") == ["pipe", "(2),"]
    sections = page_sections(ENGLISH_PAGE)
    assert sections == [
        ["pipe - overview of pipes and FIFOs"],
        ["A pipe has a read end and a write end. It is created by pipe(2), which returns two file descriptors—one "
         "for each end.", "I/O on pipes and FIFOs",  # a subsection's title is a paragraph; code is left out
         "Reads and writes do not block when the pipe is empty or full."],  # .TP's tag (the option) too
        ["Read fifo(7) for further details about named pipes."]]


def test_manual_pages_align_by_section_and_paragraph(tmp_path, monkeypatch):
    """The translated page pairs with the English page of the same name, paragraph by paragraph;
    the translators' extra section, an untranslated paragraph, a page of another version (a
    section's paragraph count or the number of sections differs) and an unseen language give no row."""
    import gzip

    from lfm2_retrieval.training.debian_text import collect_manpages

    def package(name: str, pages: dict[str, str]) -> None:
        for rel, text in pages.items():
            path = tmp_path / "unpacked" / name / "usr/share/man" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(gzip.compress(text.encode()))

    package("manpages", {"man7/pipe.7.gz": ENGLISH_PAGE})
    package("manpages-de", {"de/man7/pipe.7.gz": GERMAN_PAGE})
    package("manpages-fr", {"fr/man7/pipe.7.gz": GERMAN_PAGE.replace(".TP\n.B O_NONBLOCK\nLese", ".PP\nLese")
                            .replace(".SS \"E/A auf Pipes und FIFOs\"\n", "")})  # a paragraph fewer
    package("manpages-uk", {"uk/man7/pipe.7.gz": GERMAN_PAGE})  # unseen
    package("manpages-ru", {"ru/man7/pipe.7.gz": GERMAN_PAGE.replace("pipe \\- Überblick", "pipe \\- обзор")
                            .replace(".SH BEZEICHNUNG\n", ".SH BEZEICHNUNG\n.SH EXTRA\n.SH EXTRA2\n")})  # 2 more

    def fake_download(packages, folder):  # apt-get download and dpkg-deb -x: the folders above
        return {p: tmp_path / "unpacked" / p for p in packages if (tmp_path / "unpacked" / p).exists()}

    monkeypatch.setattr("lfm2_retrieval.training.debian_text.download", fake_download)
    monkeypatch.setattr("lfm2_retrieval.training.debian_text.unpack", lambda deb, into: deb)
    rows = collect_manpages(tmp_path, ["manpages"], ["manpages-de", "manpages-fr", "manpages-uk", "manpages-ru"],
                            log=lambda _: None)
    assert {r[2] for r in rows} == {"de"}  # uk unseen; fr's and ru's pages do not line up
    assert ("pipe - overview of pipes and FIFOs", "pipe - Überblick über Pipes und FIFOs", "de", "manpages-de") in rows
    assert ("Reads and writes do not block when the pipe is empty or full.",
            "Lese- und Schreibvorgänge blockieren nicht, wenn die Pipe leer oder voll ist.", "de",
            "manpages-de") in rows
    assert len([r for r in rows if r[2] == "de"]) == 4  # NAME, two paragraphs and the subsection; not SEE ALSO
    assert not any("Jemand" in r[1] for r in rows)  # the translators' section has no English counterpart
    assert "manpages.tsv" in FILES and all(package in LICENSES for package in FILES["manpages.tsv"][1])


def test_manual_pages_leave_out_macro_definitions_however_they_end():
    """asciidoctor's pages (util-linux) define macros inside an .if block, ended by ".  ." rather
    than "..": the page's text after them is read, the definitions' lines are not."""
    from lfm2_retrieval.training.manual_pages import page_sections

    page = (".SH NAME\nisosize \\- output the length of an iso9660 filesystem\n"
            ".de URL\n\\fI\\\\$2\\fP <\\\\$1>\\\\$3\n..\n"
            ".if \\n[.g] \\{\\\n.  am URL\nnot text\n.  .\n.\\}\n"
            ".SH DESCRIPTION\nThis command outputs the length of an iso9660 filesystem.\n")
    assert page_sections(page) == [["isosize - output the length of an iso9660 filesystem"],
                                   ["This command outputs the length of an iso9660 filesystem."]]
