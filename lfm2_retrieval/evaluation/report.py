"""Leaderboards: terminal tables, Markdown, JSON, cross-lingual heatmaps, published references.

Monolingual: one row per system, one column per task and language, then the average.
Cross-lingual: per system and task, a grid laid out as the LFM2-ColBERT-350M model card lays
it: rows are document languages, columns query languages, with row and column averages.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from .harness import Result

METRIC = "ndcg_at_10"


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def monolingual_table(results: list[Result], metric: str = METRIC) -> tuple[list[str], dict[str, dict[str, float]]]:
    """(column names, {system: {column: value, 'avg': mean}})."""
    mono = [r for r in results if r.query_language == r.document_language]
    columns = sorted({f"{r.task}_{r.query_language}" for r in mono})
    rows: dict[str, dict[str, float]] = defaultdict(dict)
    for r in mono:
        rows[r.system][f"{r.task}_{r.query_language}"] = getattr(r, metric)
    for values in rows.values():
        values["avg"] = _mean(v for k, v in values.items() if k != "avg")
    return columns, dict(rows)


def cross_lingual_grids(results: list[Result], metric: str = METRIC) -> dict[tuple[str, str], dict]:
    """{(system, task): {"languages": [...], "grid": {doc_lang: {query_lang: value}}, averages}}."""
    cross = [r for r in results if r.query_language != r.document_language]
    out: dict[tuple[str, str], dict] = {}
    for key in sorted({(r.system, r.task) for r in cross}):
        cells = [r for r in cross if (r.system, r.task) == key]
        langs = sorted({r.query_language for r in cells} | {r.document_language for r in cells})
        grid: dict[str, dict[str, float]] = defaultdict(dict)
        for r in cells:
            grid[r.document_language][r.query_language] = getattr(r, metric)
        row_avg = {d: _mean(grid[d].values()) for d in langs}
        col_avg = {q: _mean(grid[d][q] for d in langs if q in grid[d]) for q in langs}
        out[key] = {"languages": langs, "grid": dict(grid), "row_avg": row_avg, "col_avg": col_avg,
                    "avg": _mean(v for row in grid.values() for v in row.values())}
    return out


def _fmt(v: float | None) -> str:
    return "—" if v is None or v != v else f"{v:.3f}"


def markdown(results: list[Result], references: dict[str, dict] | None = None) -> str:
    lines = ["# NanoBEIR-style leaderboard (NDCG@10)", ""]
    columns, rows = monolingual_table(results)
    if rows:  # tasks down, systems across
        systems = sorted(rows, key=lambda s: -rows[s]["avg"])
        lines += ["## Monolingual", "", "| task | " + " | ".join(systems) + " |", "|---|" + "---:|" * len(systems)]
        for c in columns:
            lines.append(f"| {c} | " + " | ".join(_fmt(rows[s].get(c)) for s in systems) + " |")
        lines.append("| **avg** | " + " | ".join(f"**{_fmt(rows[s]['avg'])}**" for s in systems) + " |")
        lines.append("")
    for (system, task), g in cross_lingual_grids(results).items():
        langs = g["languages"]
        lines += [f"## Cross-lingual: {task}, {system}", "", "rows: document language; columns: query language; "
                  "the diagonal (queries and documents in one language) is left out", "",
                  "| docs \\ queries | " + " | ".join(langs) + " | avg |", "|---|" + "---:|" * (len(langs) + 1)]
        for d in langs:
            lines.append(f"| {d} | " + " | ".join(_fmt(g["grid"].get(d, {}).get(q)) for q in langs)
                         + f" | {_fmt(g['row_avg'][d])} |")
        lines.append("| avg | " + " | ".join(_fmt(g["col_avg"][q]) for q in langs) + f" | {_fmt(g['avg'])} |")
        lines.append("")
    deltas = reference_deltas(results, references or {})
    if deltas:
        lines += ["## Against published numbers", "", "| system | reference | task | ours | published | delta |",
                  "|---|---|---|---:|---:|---:|"]
        lines += [f"| {d['system']} | {d['reference']} | {d['task']} | {d['ours']:.3f} | {d['published']:.3f} | "
                  f"{d['delta']:+.3f} |" for d in deltas]
        lines.append("")
    return "\n".join(lines)


def load_references(folder: Path) -> dict[str, dict]:
    """eval/reference/*.json: published per-task NDCG@10 (see the README there)."""
    refs = {}
    for path in sorted(Path(folder).glob("*.json")):
        refs[path.stem] = json.loads(path.read_text(encoding="utf-8"))
    return refs


def reference_deltas(results: list[Result], references: dict[str, dict]) -> list[dict]:
    """Our NDCG@10 minus the published one, wherever a task, language pair is in both."""
    out = []
    for name, ref in references.items():
        mono = ref.get("monolingual", {})
        cross = ref.get("cross_lingual", {})
        for r in results:
            if r.query_language == r.document_language:
                published = mono.get(
                    f"{r.task}_{r.query_language}", mono.get(r.task) if r.query_language == "en" else None
                )
            else:
                published = cross.get(r.task, {}).get(r.document_language, {}).get(r.query_language)
            if published is not None:
                out.append({"system": r.system, "reference": ref.get("model", name),
                            "task": f"{r.task} {r.query_language}->{r.document_language}", "ours": r.ndcg_at_10,
                            "published": published, "delta": r.ndcg_at_10 - published})
    return out


def heatmap(grid: dict, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    langs = grid["languages"]
    values = np.array([[grid["grid"].get(d, {}).get(q, np.nan) for q in langs] for d in langs])
    fig, ax = plt.subplots(figsize=(1 + 0.7 * len(langs), 0.8 + 0.6 * len(langs)))
    im = ax.imshow(values, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(langs)), langs)
    ax.set_yticks(range(len(langs)), langs)
    ax.set_xlabel("query language")
    ax.set_ylabel("document language")
    for i in range(len(langs)):
        for j in range(len(langs)):
            if values[i, j] == values[i, j]:
                ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if values[i, j] < 0.6 else "black")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="NDCG@10")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
