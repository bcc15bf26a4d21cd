"""The curve of a training campaign: dev NDCG@10 against steps and CPU-hours, from its log.

    python -m eval.campaign_curve runs/dense-head
    python -m eval.campaign_curve runs/dense-head --markdown >> docs/model.md

Each evaluation the run logged (every `eval_every` steps) is a row: the step, the CPU-hours of
training up to it (core-hours of the logged steps, stops not counted; training/model_card.py),
MaxSim's dev scores and, when the model has a dense head, the head's alone (`dense_*`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from lfm2_retrieval.training.model_card import step_cpu_hours


def curve(run: Path, gap_s: float = 600.0) -> list[dict]:
    """One row per logged evaluation: step, cpu_hours and its scores."""
    return [{"step": record["step"], "cpu_hours": round(hours, 2),
             **{k: round(v, 3) for k, v in record["eval_ndcg@10"].items()}}
            for record, hours in step_cpu_hours(run, gap_s) if "eval_ndcg@10" in record]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a training run folder (config.json, log.jsonl)")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table instead")
    args = p.parse_args(argv)
    rows = curve(args.run)
    if not rows:
        raise SystemExit(f"no evaluation logged in {args.run / 'log.jsonl'} yet")
    columns = ["step", "cpu_hours", *[k for k in rows[-1] if k not in ("step", "cpu_hours")]]
    if args.markdown:
        print("| " + " | ".join(columns) + " |")
        print("|" + "---:|" * len(columns))
        for row in rows:
            print("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
        return
    table = Table(title=f"{args.run}: dev NDCG@10", title_justify="left")
    for c in columns:
        table.add_column(c, justify="right")
    for row in rows:
        table.add_row(*[str(row.get(c, "")) for c in columns])
    Console().print(table)


if __name__ == "__main__":
    main()
