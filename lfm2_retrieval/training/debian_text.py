"""Parallel text from Debian packages, for the dense head's distillation: English source ->
translation rows, fetched with `apt-get download` (package registries are reachable where the
hub is not) and written as TSV (training/dense_distillation.py tsv_targets reads it).

    python -m lfm2_retrieval.training.debian_text                    # ~/.cache/lfm2-search/parallel
    python -m lfm2_retrieval.training.debian_text --max-sources 8000 --help-languages de fr ja

Two kinds of text:
- gettext catalogues (.mo files under /usr/share/locale/LANG/LC_MESSAGES of GNU and Debian tools:
  coreutils, tar, grep, apt, dpkg, util-linux, glibc...): msgid -> msgstr, whole messages of at
  least MIN_WORDS words (usage lines and error messages: short, everyday, in 80+ languages).
- LibreOffice's help pages (libreoffice-help-LANG, about 35 languages): HTML pages at the same
  path in every language whose paragraphs carry the same `id`, so paragraphs align exactly.

Rows: source, translation, language, origin (package). The six languages kept unseen by the
dense head (dense_distillation.UNSEEN: uk, fa, he, sw, hu, ta) are left out, and so is any row
whose source sentence is an NTREX-128 sentence (none is expected; evaluation text stays out).
`--max-sources` draws that many English sources (seeded) so the teacher cache stays affordable
on a CPU: every source is embedded by the teacher twice (query and passage roles).

Licences (the model card lists them): LibreOffice help MPL-2.0; coreutils, tar, grep, sed,
findutils, diffutils, wget, gettext GPL-3.0-or-later; apt, dpkg, util-linux, e2fsprogs
GPL-2.0-or-later; glibc LGPL-2.1-or-later; gnupg GPL-3.0-or-later.
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
from collections.abc import Iterator
from pathlib import Path

GETTEXT_PACKAGES = ("coreutils", "tar", "grep", "sed", "findutils", "diffutils", "wget", "gettext", "apt", "dpkg",
                    "util-linux-locales", "libc-l10n", "e2fsprogs-l10n", "gnupg-l10n")
HELP_LANGUAGES = ("ar", "bg", "bn", "ca", "cs", "da", "de", "el", "es", "et", "fi", "fr", "hi", "id", "it", "ja",
                  "km", "ko", "lt", "lv", "mk", "nb", "nl", "pl", "pt", "pt-br", "ro", "ru", "sk", "sl", "sv",
                  "tr", "vi", "zh-cn", "zh-tw")
UNSEEN_LOCALES = ("uk", "fa", "he", "sw", "hu", "ta")
MIN_WORDS = 4
LICENSES = {"libreoffice-help": "MPL-2.0", "coreutils": "GPL-3.0-or-later", "tar": "GPL-3.0-or-later",
            "grep": "GPL-3.0-or-later", "sed": "GPL-3.0-or-later", "findutils": "GPL-3.0-or-later",
            "diffutils": "GPL-3.0-or-later", "wget": "GPL-3.0-or-later", "gettext": "GPL-3.0-or-later",
            "apt": "GPL-2.0-or-later", "dpkg": "GPL-2.0-or-later", "util-linux-locales": "GPL-2.0-or-later",
            "libc-l10n": "LGPL-2.1-or-later", "e2fsprogs-l10n": "GPL-2.0-or-later",
            "gnupg-l10n": "GPL-3.0-or-later"}


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
        except (OSError, ValueError, struct.error):  # a damaged catalogue (bad magic, bad offsets, bad UTF-8)
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


# ---------------------------------------------------------------------- the rows
def usable(source: str, translation: str) -> bool:
    return (len(source.split()) >= MIN_WORDS and translation != source and len(source) <= 1000
            and "\t" not in source + translation and "\n" not in source + translation)


def collect(folder: Path, gettext_packages: list[str], help_languages: list[str],
            log=print) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    debs = download(list(gettext_packages) + ["libreoffice-help-en-us"] +
                    [f"libreoffice-help-{lang}" for lang in help_languages], folder / "debs")
    with tempfile.TemporaryDirectory() as scratch:
        for package in gettext_packages:
            if package not in debs:
                log(f"{package}: not downloadable here, skipped")
                continue
            root = unpack(debs[package], Path(scratch) / package)
            before = len(rows)
            for source, translation, locale in mo_pairs(root):
                source, translation = clean_message(source), clean_message(translation)
                if locale.split("_")[0] not in UNSEEN_LOCALES and usable(source, translation):
                    rows.append((source, translation, locale, package))
            log(f"{package}: {len(rows) - before} rows")
        if "libreoffice-help-en-us" in debs:
            english = help_paragraphs(unpack(debs["libreoffice-help-en-us"], Path(scratch) / "help-en"), "en-US")
            for lang in help_languages:
                package = f"libreoffice-help-{lang}"
                if package not in debs:
                    log(f"{package}: not downloadable here, skipped")
                    continue
                root = unpack(debs[package], Path(scratch) / package)
                found = help_paragraphs(root, lang if (root / "usr/share/libreoffice/help" / lang).exists()
                                        else _help_dir(root))
                before = len(rows)
                rows += [(english[key], text, lang, "libreoffice-help") for key, text in found.items()
                         if key in english and usable(english[key], text)]
                log(f"{package}: {len(rows) - before} rows")
    return rows


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
    p.add_argument("--max-sources", type=int, default=8000, help="English sources kept (0: all)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    rows = sample_sources(collect(args.folder, args.packages, args.help_languages), args.max_sources, args.seed)
    out = args.folder / "debian.tsv"
    write_tsv(rows, out)
    languages = {r[2] for r in rows}
    print(f"{len(rows)} rows, {len({r[0] for r in rows})} English sources, {len(languages)} languages -> {out}")


if __name__ == "__main__":
    main()
