"""The user's install: the wheel built from this tree, installed into a virtual environment of
its own, runs from a folder outside the repository with the model embedded in it: indexing,
lexical and semantic search, the HTTP page. A file left out of the package data (the model, the
page) fails here, not on a user's machine.

The new environment reads the dependencies from this one's site-packages (a path in a .pth
file, which does not run this environment's editable-install hook), so the test needs no
network and installs only the wheel itself."""

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_built_wheel_indexes_and_searches_outside_the_repository(tmp_path):
    # Built from the files the Dockerfile copies, and only those (setuptools writes build/ beside
    # them: a copy keeps the checkout clean).
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("lfm2_core", "lfm2_retrieval"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels)], check=True, capture_output=True)
    wheel = next(wheels.glob("lfm2_search-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    own = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              check=True, capture_output=True, text=True).stdout.strip())
    (own / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True)

    work = tmp_path / "work"  # no checkout here: only the installed package can answer
    (work / "docs").mkdir(parents=True)
    (work / "docs" / "ops.md").write_text("# Operations\n\nRotate the signing keys every month.\n")
    (work / "docs" / "faq.md").write_text("# FAQ\n\nThe router is reset by holding its button.\n")
    command = str(venv / "bin" / "lfm2-search")

    def run(*args: str) -> str:
        done = subprocess.run([command, *args], cwd=work, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    where = subprocess.run([python, "-c", "import lfm2_retrieval; print(lfm2_retrieval.__file__)"], cwd=work,
                           check=True, capture_output=True, text=True).stdout
    assert where.startswith(str(venv)), where  # the wheel's copy, not the checkout's
    run("index", "docs", "--index", "idx")
    for mode in ("lexical", "semantic", "hybrid"):
        hits = json.loads(run("search", "signing keys", "--index", "idx", "--mode", mode, "--json"))
        assert hits["results"][0]["hits"][0]["id"] == "docs/ops.md#0", mode
    page = subprocess.run([python, "-c", "from lfm2_retrieval.api.routes.search import _page; print(len(_page()))"],
                          cwd=work, check=True, capture_output=True, text=True).stdout
    assert int(page) > 1000
