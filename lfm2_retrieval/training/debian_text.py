"""Parallel text from Debian packages, for the dense head's distillation: English source ->
translation rows, fetched with `apt-get download` (package registries are reachable where the
hub is not) and written as TSV (training/dense_distillation.py tsv_targets reads it).

    python -m lfm2_retrieval.training.debian_text                    # ~/.cache/lfm2-search/parallel
    python -m lfm2_retrieval.training.debian_text --only messages --max-sources 8000 --help-languages de fr ja
    python -m lfm2_retrieval.training.debian_text --only desktop   # desktop.tsv alone
    python -m lfm2_retrieval.training.debian_text --only manpages  # manpages.tsv alone

One file a kind of text, so that adding one leaves the others' rows (and their teacher vectors) as
they were:
- debian.tsv, short texts:
  - gettext catalogues (.mo files under /usr/share/locale/LANG/LC_MESSAGES of GNU and Debian
    tools: coreutils, tar, grep, apt, dpkg, util-linux, glibc...): msgid -> msgstr, whole messages
    of at least MIN_WORDS words (usage lines and error messages: short, everyday, in 80+ languages).
  - LibreOffice's help pages (libreoffice-help-LANG, about 35 languages): HTML pages at the same
    path in every language whose paragraphs carry the same `id`, so paragraphs align exactly.
- documentation.tsv, paragraphs of prose (closer to the passages a search engine returns):
  GNOME's help (gnome-user-docs: the desktop help and the system administrator's guide, about
  40 languages): Mallard pages translated in place by itstool, so a translated page has the
  English page's titles and paragraphs in the same order; a page whose count differs is skipped.
  Not the Debian Administrator's Handbook, although it aligns as well: it is the corpus of
  eval/real_documents.py, whose cross-lingual task (a page title against the English pages) a
  model trained on its aligned paragraphs would have seen.
- desktop.tsv, the GNOME desktop's interface messages (GTK, GLib, GNOME Shell, Settings, Files,
  gedit, Software, Evolution's data server): gettext again, but translated into about 150
  languages, so it brings the scripts debian.tsv barely has (6,000 English messages drawn:
  Arabic, Hindi, Bengali, Thai, Georgian, Telugu, Marathi, Armenian... thousands of rows each
  where debian.tsv has tens).
- manpages.tsv, paragraphs of manual pages: manpages-l10n's translations (manpages-de, -fr, -ru,
  -el, -vi... about 20 languages; the Japanese and Chinese pages of the JM and CMPP projects),
  and the pages dpkg and apt ship translated, aligned with the English pages of the same release
  paragraph by paragraph where the whole page lines up (training/manual_pages.py). Prose about
  commands and system calls, and Cyrillic and Greek paragraphs the other files have few of.

Rows: source, translation, language (a BCP-47-like code: de, pt-br, zh-cn, sr-latn), origin
(package). English variants (en@quot, en_GB) are left out, and so are the six languages kept
unseen by the dense head (dense_distillation.UNSEEN: uk, fa, he, sw, hu, ta) and any paragraph
a translation left in English. `--max-sources` draws that many English sources (seeded) so the
teacher cache stays affordable on a CPU: every source is embedded by the teacher twice (query
and passage roles).

Licences (the model card lists them): LibreOffice help MPL-2.0; coreutils, tar, grep, sed,
findutils, diffutils, wget, gettext GPL-3.0-or-later; apt, dpkg, util-linux, e2fsprogs
GPL-2.0-or-later; glibc LGPL-2.1-or-later; gnupg GPL-3.0-or-later; GNOME help CC-BY-SA-3.0;
GTK, GLib LGPL-2.1-or-later; Evolution's data server LGPL-2.0-or-later; GNOME Shell, Settings,
gedit, Software GPL-2.0-or-later; Files (nautilus) GPL-3.0-or-later; manpages-l10n's translations
GPL-3.0-or-later; the JM project's (manpages-ja) and CMPP's (manpages-zh) under their original
pages' licences (GFDL-1.2-or-later for some of CMPP's); the English pages under their packages':
Linux man-pages (manpages, manpages-dev) Linux-man-pages-copyleft, GPL-2.0-or-later and BSD
licences page by page; systemd LGPL-2.1-or-later; procps, psmisc, man-db GPL-2.0-or-later;
shadow (passwd, login) BSD-3-Clause and GPL-2.0-or-later; gzip GPL-3.0-or-later; less
GPL-3.0-or-later or the Less License.
"""

from __future__ import annotations

import argparse
import gettext
import html.parser
import os
import random
import re
import struct
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

GETTEXT_PACKAGES = ("coreutils", "tar", "grep", "sed", "findutils", "diffutils", "wget", "gettext", "apt", "dpkg",
                    "util-linux-locales", "libc-l10n", "e2fsprogs-l10n", "gnupg-l10n")
HELP_LANGUAGES = ("ar", "bg", "bn", "ca", "cs", "da", "de", "el", "es", "et", "fi", "fr", "hi", "id", "it", "ja",
                  "km", "ko", "lt", "lv", "mk", "nb", "nl", "pl", "pt", "pt-br", "ro", "ru", "sk", "sl", "sv",
                  "tr", "vi", "zh-cn", "zh-tw")
UNSEEN_LOCALES = ("uk", "fa", "he", "sw", "hu", "ta")
DOCUMENTATION_PACKAGES = ("gnome-user-docs",)
DESKTOP_PACKAGES = ("libgtk-3-common", "libglib2.0-data", "gnome-shell-common", "gnome-control-center-data",
                    "nautilus-data", "gedit-common", "gnome-software-common", "evolution-data-server-common")
# Translated manual pages (uk and hu are unseen languages; pt is an empty package) and the packages
# whose English pages they translate (dpkg and apt ship their own translations too).
MANPAGE_TRANSLATIONS = tuple(f"manpages-{lang}" for lang in (
    "cs", "cs-dev", "da", "da-dev", "de", "de-dev", "el", "es", "es-dev", "fi", "fr", "fr-dev", "id", "it", "it-dev",
    "ja", "ja-dev", "mk", "nb", "nl", "nl-dev", "pl", "pl-dev", "pt-br", "pt-br-dev", "ro", "ru", "ru-dev", "sr", "sv",
    "tr", "vi", "zh"))
MANPAGE_ENGLISH = ("manpages", "manpages-dev", "coreutils", "util-linux", "procps", "passwd", "login", "grep", "sed",
                   "tar", "findutils", "diffutils", "gzip", "man-db", "psmisc", "dpkg", "apt", "less", "systemd")
MIN_WORDS = 4
LICENSES = {"libreoffice-help": "MPL-2.0", "coreutils": "GPL-3.0-or-later", "tar": "GPL-3.0-or-later",
            "grep": "GPL-3.0-or-later", "sed": "GPL-3.0-or-later", "findutils": "GPL-3.0-or-later",
            "diffutils": "GPL-3.0-or-later", "wget": "GPL-3.0-or-later", "gettext": "GPL-3.0-or-later",
            "apt": "GPL-2.0-or-later", "dpkg": "GPL-2.0-or-later", "util-linux-locales": "GPL-2.0-or-later",
            "libc-l10n": "LGPL-2.1-or-later", "e2fsprogs-l10n": "GPL-2.0-or-later",
            "gnupg-l10n": "GPL-3.0-or-later", "gnome-user-docs": "CC-BY-SA-3.0",
            "libgtk-3-common": "LGPL-2.1-or-later", "libglib2.0-data": "LGPL-2.1-or-later",
            "gnome-shell-common": "GPL-2.0-or-later", "gnome-control-center-data": "GPL-2.0-or-later",
            "nautilus-data": "GPL-3.0-or-later", "gedit-common": "GPL-2.0-or-later",
            "gnome-software-common": "GPL-2.0-or-later", "evolution-data-server-common": "LGPL-2.0-or-later",
            "manpages-l10n": "GPL-3.0-or-later", "manpages-ja": "the original pages' licences",
            "manpages-zh": "GFDL-1.2-or-later and the original pages' licences",
            "manpages": "Linux-man-pages-copyleft or GPL-2.0-or-later or BSD (page by page)",
            "manpages-dev": "Linux-man-pages-copyleft or GPL-2.0-or-later or BSD (page by page)",
            "util-linux": "GPL-2.0-or-later", "procps": "GPL-2.0-or-later",
            "passwd": "BSD-3-Clause and GPL-2.0-or-later", "login": "BSD-3-Clause and GPL-2.0-or-later",
            "gzip": "GPL-3.0-or-later", "man-db": "GPL-2.0-or-later", "psmisc": "GPL-2.0-or-later",
            "less": "GPL-3.0-or-later or the Less License", "systemd": "LGPL-2.1-or-later"}
# What each file holds, and from which packages: the model card names them and their licences.
FILES = {"debian.tsv": ("gettext catalogues and LibreOffice help pages", (*GETTEXT_PACKAGES, "libreoffice-help")),
         "documentation.tsv": ("GNOME's help", DOCUMENTATION_PACKAGES),
         "desktop.tsv": ("the GNOME desktop's gettext catalogues", DESKTOP_PACKAGES),
         "manpages.tsv": ("translated manual pages and their English pages",
                          ("manpages-l10n", "manpages-ja", "manpages-zh", *MANPAGE_ENGLISH))}
# Region kept only where it names a written standard of its own; elsewhere de-DE is de.
KEEP_REGION = {"pt-br", "zh-cn", "zh-tw", "zh-hk", "sr-latn"}


def language_code(locale: str) -> str:
    """One spelling per language across packages: de_DE, de-DE, de -> de; pt_BR -> pt-br;
    zh_CN -> zh-cn; sr@latin -> sr-latn; en@quot -> en-quot (an English variant: left out)."""
    code = locale.lower().replace("_", "-").replace("@latin", "-latn").replace("@", "-")
    if code in KEEP_REGION:
        return code
    language, _, region = code.partition("-")
    return language if len(region) == 2 else code


def unseen(locale: str) -> bool:
    """A language held out from the dense head, so that "unseen languages" stays a measurement."""
    return language_code(locale).split("-")[0] in UNSEEN_LOCALES


def english_variant(locale: str) -> bool:
    """An English variant (en@quot, en_GB): its "translations" say nothing new."""
    return language_code(locale).split("-")[0] == "en"


def wanted(locale: str) -> bool:
    return not unseen(locale) and not english_variant(locale)


def default_folder() -> Path:
    return Path(os.environ.get("LFM2_SEARCH_PARALLEL", Path.home() / ".cache" / "lfm2-search" / "parallel"))


def download(packages: list[str], folder: Path) -> dict[str, Path]:
    """{package: its .deb} in `folder`, downloading those not there yet (apt-get download)."""
    folder.mkdir(parents=True, exist_ok=True)
    have = {p: next(iter(sorted(folder.glob(f"{p}_*.deb"))), None) for p in packages}
    missing = [p for p, deb in have.items() if deb is None]
    if missing:
        done = subprocess.run(["apt-get", "download", *missing], cwd=folder, capture_output=True, text=True)
        if done.returncode != 0:  # one unknown package fails the lot: fetch one by one, keep what exists
            for package in missing:
                subprocess.run(["apt-get", "download", package], cwd=folder, capture_output=True, text=True)
    return {p: deb for p in packages if (deb := next(iter(sorted(folder.glob(f"{p}_*.deb"))), None))}


def unpack(deb: Path, into: Path) -> Path:
    subprocess.run(["dpkg-deb", "-x", str(deb), str(into)], check=True)
    return into


# ---------------------------------------------------------------------- gettext
def mo_pairs(root: Path) -> Iterator[tuple[str, str, str]]:
    """(English msgid, translation, locale) of every .mo file under root/usr/share/locale."""
    for mo in sorted((root / "usr" / "share" / "locale").glob("*/LC_MESSAGES/*.mo")):
        locale = mo.parts[-3]
        try:
            with open(mo, "rb") as f:
                catalog = gettext.GNUTranslations(f)._catalog  # the parsed msgid -> msgstr table
        except (OSError, ValueError, IndexError, struct.error):  # damaged: bad magic, offsets, UTF-8, Plural-Forms
            continue
        for source, translation in catalog.items():
            if isinstance(source, tuple):  # plural forms: (msgid, n)
                source = source[0]
            if isinstance(source, str) and source and isinstance(translation, str):
                yield source, translation, locale


def clean_message(text: str) -> str:
    """A message as one line: accelerators (&, _) and surrounding space removed."""
    text = re.sub(r"\s+", " ", text.replace("&", "")).strip()
    return text


# ---------------------------------------------------------------------- LibreOffice help
class _Paragraphs(html.parser.HTMLParser):
    """Text of every element with an id (LibreOffice help's paragraphs, headings, list items)."""

    BLOCKS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "td"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: dict[str, str] = {}
        self._stack: list[tuple[str, str | None, list[str]]] = []

    def handle_starttag(self, tag, attrs):
        if tag in self.BLOCKS:
            self._stack.append((tag, dict(attrs).get("id"), []))

    def handle_endtag(self, tag):
        if self._stack and self._stack[-1][0] == tag:
            _, pid, parts = self._stack.pop()
            text = re.sub(r"\s+", " ", "".join(parts)).strip()
            if pid and text:
                self.paragraphs[pid] = text
            if self._stack:
                self._stack[-1][2].append(" " + text)

    def handle_data(self, data):
        if self._stack:
            self._stack[-1][2].append(data)


def help_paragraphs(root: Path, language: str) -> dict[str, str]:
    """{page/paragraph id: text} of one language's help pages."""
    base = root / "usr" / "share" / "libreoffice" / "help" / language
    out = {}
    for page in sorted(base.rglob("*.html")):
        parser = _Paragraphs()
        try:
            parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        except Exception:  # a page that does not parse is skipped, not fatal
            continue
        rel = page.relative_to(base).as_posix()
        out.update((f"{rel}#{pid}", text) for pid, text in parser.paragraphs.items())
    return out


# ---------------------------------------------------------------------- GNOME help (Mallard)
MALLARD = "{http://projectmallard.org/1.0/}"
MALLARD_SKIP = {"credit", "license", "revision", "link", "name", "email", "years"}  # people, links, dates


def mallard_units(page: Path) -> list[str]:
    """A Mallard page's translatable text in document order: its titles, paragraphs and the
    description in its <info> (the rest of <info> is credits, links and revisions)."""
    units: list[str] = []

    def walk(element: ET.Element, in_info: bool) -> None:
        tag = element.tag.removeprefix(MALLARD)
        if tag in MALLARD_SKIP:
            return
        if tag in ("title", "desc", "p") and (not in_info or tag == "desc"):
            units.append(" ".join("".join(element.itertext()).split()))
            return
        for child in element:
            walk(child, in_info or tag == "info")

    walk(ET.parse(page).getroot(), False)
    return units


def mallard_pairs(root: Path) -> Iterator[tuple[str, str, str]]:
    """(English, translation, locale) of every page of every guide under root/usr/share/help whose
    translation has as many units as the English page (itstool keeps the order)."""
    base = root / "usr" / "share" / "help"
    if not (base / "C").is_dir():
        return
    for english_page in sorted((base / "C").glob("*/*.page")):
        rel = english_page.relative_to(base / "C")
        try:
            english = mallard_units(english_page)
        except ET.ParseError:
            continue
        for locale_dir in sorted(p for p in base.iterdir() if p.is_dir() and p.name != "C"):
            page = locale_dir / rel
            try:
                translated = mallard_units(page) if page.exists() else []
            except ET.ParseError:  # a damaged translation is skipped, not fatal
                continue
            if len(translated) == len(english):
                yield from ((e, t, locale_dir.name) for e, t in zip(english, translated))


# ---------------------------------------------------------------------- the rows
def usable(source: str, translation: str, max_chars: int = 1000) -> bool:
    return (len(source.split()) >= MIN_WORDS and translation != source and len(source) <= max_chars
            and "\t" not in source + translation and "\n" not in source + translation)


Row = tuple[str, str, str, str]  # source, translation, language, package


def unpacked(folder: Path, packages: list[str], log=print) -> Iterator[tuple[str, Path]]:
    """(package, its unpacked root) of each package fetched (into folder/debs) and unpacked into a
    scratch folder that lasts until the iteration ends; a package apt cannot fetch is skipped."""
    debs = download(list(packages), folder / "debs")
    with tempfile.TemporaryDirectory() as scratch:
        for package in packages:
            if package not in debs:
                log(f"{package}: not downloadable here, skipped")
                continue
            yield package, unpack(debs[package], Path(scratch) / package)


def package_rows(folder: Path, packages: list[str], read: Callable[[str, Path], list[Row]], log=print) -> list[Row]:
    """Each package's rows, read by `read(package, its root)`, one log line each."""
    rows: list[Row] = []
    for package, root in unpacked(folder, packages, log):
        found = read(package, root)
        rows += found
        log(f"{package}: {len(found)} rows")
    return rows


def message_rows(package: str, root: Path) -> list[Row]:
    """One unpacked package's gettext rows: whole messages, in the languages the dense head sees
    (English variants are dropped by the callers: see main)."""
    rows = []
    for source, translation, locale in mo_pairs(root):
        source, translation = clean_message(source), clean_message(translation)
        if not unseen(locale) and usable(source, translation):
            rows.append((source, translation, language_code(locale), package))
    return rows


def collect(folder: Path, gettext_packages: list[str], help_languages: list[str], log=print) -> list[Row]:
    """debian.tsv's rows: the tools' gettext catalogues, then LibreOffice's help paragraphs."""
    rows = package_rows(folder, gettext_packages, message_rows, log)
    english_deb = download(["libreoffice-help-en-us"], folder / "debs").get("libreoffice-help-en-us")
    if english_deb is None:
        return rows
    with tempfile.TemporaryDirectory() as scratch:
        english = help_paragraphs(unpack(english_deb, Path(scratch) / "help-en"), "en-US")

    def help_rows(package: str, root: Path) -> list[Row]:
        lang = package.removeprefix("libreoffice-help-")
        language_dir = lang if (root / "usr/share/libreoffice/help" / lang).exists() else _help_dir(root)
        found = help_paragraphs(root, language_dir)
        return [(english[key], text, language_code(lang), "libreoffice-help") for key, text in found.items()
                if key in english and usable(english[key], text)]

    return rows + package_rows(folder, [f"libreoffice-help-{lang}" for lang in help_languages], help_rows, log)


def collect_desktop(folder: Path, packages: list[str], log=print) -> list[Row]:
    """desktop.tsv's rows: the GNOME desktop's gettext catalogues, whose translators cover about
    150 languages (Arabic, Hindi, Bengali, Thai, Georgian, Telugu... where the tools of debian.tsv
    have a few dozen messages at most). A message several packages share is kept once a language."""
    def rows_of(package: str, root: Path) -> list[Row]:
        return [r for r in message_rows(package, root) if not english_variant(r[2])]

    return once_per_language(package_rows(folder, packages, rows_of, log))


def once_per_language(rows: list[Row]) -> list[Row]:
    """The first row of each (source, language): GTK's "Cancel the operation" is also Files' and
    Settings', and a message counted three times would weigh three times in the draw of targets."""
    first: dict[tuple[str, str], Row] = {}
    for row in rows:
        first.setdefault((row[0], row[2]), row)
    return list(first.values())


DOCUMENTATION_READERS = {"gnome-user-docs": mallard_pairs}  # package -> (English, translation, locale) pairs


def collect_documentation(folder: Path, packages: list[str], log=print) -> list[Row]:
    """documentation.tsv's rows: GNOME's help, unit by unit."""
    for package in packages:
        if package not in DOCUMENTATION_READERS:
            log(f"{package}: no reader for it, skipped")

    def rows_of(package: str, root: Path) -> list[Row]:
        return [(source, translation, language_code(locale), package)
                for source, translation, locale in DOCUMENTATION_READERS[package](root)
                if wanted(locale) and usable(source, translation, max_chars=2000)]

    readable = [p for p in packages if p in DOCUMENTATION_READERS]
    return list(dict.fromkeys(package_rows(folder, readable, rows_of, log)))


def collect_manpages(folder: Path, english_packages: list[str], translations: list[str], log=print) -> list[Row]:
    """manpages.tsv's rows: every translated page (in the translation packages, and in the English
    packages' own usr/share/man/LANG) paired with the English page of the same name, paragraph by
    paragraph (manual_pages.aligned_paragraphs)."""
    from .manual_pages import Sections, aligned_paragraphs, pages, read_page

    english: dict[str, Sections] = {}
    translated: list[tuple[str, str, str, Sections]] = []  # package, locale, page, its sections
    for package, root in unpacked(folder, [*english_packages, *translations], log):
        found = 0
        for locale, page, path in pages(root):
            if not locale:
                english.setdefault(page, read_page(path))
            elif wanted(locale):
                translated.append((package, locale, page, read_page(path)))
            found += 1
        log(f"{package}: {found} pages")
    rows = [(source, translation, language_code(locale), package)
            for package, locale, page, sections in translated if page in english
            for source, translation in aligned_paragraphs(english[page], sections)
            if usable(source, translation, max_chars=2000)]
    log(f"{len(translated)} translated pages, {sum(page in english for _, _, page, _ in translated)} "
        f"with their English page among {len(english)}")
    return list(dict.fromkeys(rows))


def _help_dir(root: Path) -> str:
    folders = [p.name for p in (root / "usr/share/libreoffice/help").iterdir() if p.is_dir()]
    return folders[0] if folders else ""


def sample_sources(rows: list, max_sources: int, seed: int) -> list:
    """Only the rows of `max_sources` English sources drawn with the seed (0: all)."""
    sources = sorted({r[0] for r in rows})
    if not max_sources or len(sources) <= max_sources:
        return rows
    keep = set(random.Random(seed).sample(sources, max_sources))
    return [r for r in rows if r[0] in keep]


def write_tsv(rows: list, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.writelines("\t".join(row) + "\n" for row in rows)  # no field holds a tab or a newline (usable)
    tmp.replace(path)  # complete or absent


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folder", type=Path, default=default_folder(), help="where .deb files and the TSV go")
    p.add_argument("--packages", nargs="*", default=list(GETTEXT_PACKAGES), help="packages with gettext catalogues")
    p.add_argument("--help-languages", nargs="*", default=list(HELP_LANGUAGES),
                   help="LibreOffice help languages (libreoffice-help-LANG)")
    p.add_argument("--documentation", nargs="*", default=list(DOCUMENTATION_PACKAGES),
                   help="packages of translated documentation (documentation.tsv)")
    p.add_argument("--desktop", nargs="*", default=list(DESKTOP_PACKAGES),
                   help="packages with the desktop's gettext catalogues (desktop.tsv)")
    p.add_argument("--manpages", nargs="*", default=list(MANPAGE_TRANSLATIONS),
                   help="packages of translated manual pages (manpages.tsv)")
    p.add_argument("--manpages-english", nargs="*", default=list(MANPAGE_ENGLISH),
                   help="packages whose English manual pages those translate")
    p.add_argument("--only", choices=["messages", "documentation", "desktop", "manpages"],
                   help="write one of the files (debian.tsv, documentation.tsv, desktop.tsv, manpages.tsv)")
    p.add_argument("--max-sources", type=int, default=8000, help="English sources kept in debian.tsv (0: all)")
    p.add_argument("--max-documentation-sources", type=int, default=0,
                   help="English paragraphs kept in documentation.tsv (0: all, about 2,400)")
    p.add_argument("--max-desktop-sources", type=int, default=6000,
                   help="English messages kept in desktop.tsv (0: all, about 11,800)")
    p.add_argument("--max-manpage-sources", type=int, default=6000,
                   help="English paragraphs kept in manpages.tsv (0: all, about 29,000)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.only in (None, "messages"):
        rows = sample_sources(collect(args.folder, args.packages, args.help_languages), args.max_sources, args.seed)
        # English variants leave after the draw, so it stays the one of the rows v5 and v6 trained
        # on (and whose teacher vectors a cache holds): before it, 8,000 sources would be redrawn.
        report([r for r in rows if not english_variant(r[2])], args.folder / "debian.tsv")
    if args.only in (None, "documentation"):
        rows = sample_sources(collect_documentation(args.folder, args.documentation),
                              args.max_documentation_sources, args.seed)
        report(rows, args.folder / "documentation.tsv")
    if args.only in (None, "desktop"):
        rows = sample_sources(collect_desktop(args.folder, args.desktop), args.max_desktop_sources, args.seed)
        report(rows, args.folder / "desktop.tsv")
    if args.only in (None, "manpages"):
        rows = sample_sources(collect_manpages(args.folder, args.manpages_english, args.manpages),
                              args.max_manpage_sources, args.seed)
        report(rows, args.folder / "manpages.tsv")


def report(rows: list, out: Path) -> None:
    write_tsv(rows, out)
    languages = {r[2] for r in rows}
    print(f"{len(rows)} rows, {len({r[0] for r in rows})} English sources, {len(languages)} languages -> {out}")


if __name__ == "__main__":
    main()
