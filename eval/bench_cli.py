"""How long `lfm2-search` takes from the shell: each command a fresh process, as a user types it.

    python -m eval.bench_cli                           # this tree, on an index of the repo's docs
    python -m eval.bench_cli --baseline 6e9cae6        # and the same commands from another commit

Commands: `--help`, `info`, and `search` in lexical, semantic and hybrid modes (one query, k=10),
each run `--repeats` times after one untimed run (numba's compiled kernels are cached on disk on
a process's first search; a user pays that once per install). The median wall-clock time of the
whole process is printed per command, with issue 37's goals: under 1 s for `--help` and a lexical
search, under 2 s for a semantic one. `--baseline REF` checks REF out into a git worktree in
the temporary folder and runs the same commands from it (same virtual environment, same index),
side by side.
Run it on a quiet machine: a training run or the test suite on the other core moves these numbers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
console = Console()
QUERY = "how is the index compressed?"
COMMANDS = {  # label -> (arguments after `lfm2-search`, goal in seconds)
    "--help": (["--help"], 1.0),
    "info": (["info", "-i", "{index}"], 1.0),
    "search, lexical": (["search", QUERY, "-i", "{index}", "--mode", "lexical"], 1.0),
    "search, semantic": (["search", QUERY, "-i", "{index}", "--mode", "semantic"], 2.0),
    "search, hybrid (default)": (["search", QUERY, "-i", "{index}"], 2.0),
}


def build_index(docs: Path, index: Path, model: str | None) -> None:
    if (index / "manifest.json").exists():
        return
    command = [sys.executable, "-m", "lfm2_retrieval.cli", "index", str(docs), "-i", str(index)]
    subprocess.run(command + (["--model", model] if model else []), check=True, capture_output=True)


def worktree(ref: str) -> Path:
    """REF's tree, checked out once in the system's temporary folder (a git worktree: no copy of
    the history; outside eval/, whose modules the tests discover)."""
    folder = Path(tempfile.gettempdir()) / f"lfm2-search-baseline-{ref}"
    if not folder.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder), ref], check=True,
                       capture_output=True)
    return folder


def timed(args: list[str], tree: Path | None) -> float:
    """Seconds one `lfm2-search ARGS` process takes, start to exit, run from `tree` (None: here)."""
    env = dict(os.environ)
    if tree is not None:  # the tree's package before the installed (editable) one
        env["PYTHONPATH"] = os.pathsep.join([str(tree), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "lfm2_retrieval.cli", *args], env=env, cwd=tree or ROOT,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"lfm2-search {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return seconds


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", type=Path, default=ROOT / "docs", help="the folder indexed (default: the repo's docs)")
    p.add_argument("--model", default=None, help="model to index with (default: the embedded one)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--baseline", default=None, help="a git ref whose code runs the same commands beside this tree's")
    p.add_argument("--out", type=Path, default=ROOT / "eval" / "out" / "cli-bench")
    args = p.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    index = args.out / "index"
    build_index(args.docs.resolve(), index, args.model)
    trees = {"this tree": None}
    if args.baseline:
        trees[args.baseline] = worktree(args.baseline)

    table = Table(title=f"lfm2-search from the shell: one process a command, median of {args.repeats} "
                        f"(after one untimed run), seconds", title_justify="left")
    table.add_column("command")
    for label in trees:
        table.add_column(label, justify="right")
    table.add_column("goal", justify="right")
    for label, (template, goal) in COMMANDS.items():
        command = [a.format(index=index) for a in template]
        cells = []
        for tree in trees.values():
            timed(command, tree)  # numba's cache, the page cache
            cells.append(statistics.median(timed(command, tree) for _ in range(args.repeats)))
        table.add_row(label, *(f"{s:.2f}" for s in cells), f"< {goal:g}")
    console.print(table)
    if args.baseline:
        console.print(f"baseline tree: {trees[args.baseline]} (`git worktree remove` it when done)")


if __name__ == "__main__":
    if shutil.which("git") is None and "--baseline" in sys.argv:
        raise SystemExit("--baseline needs git")
    main()
