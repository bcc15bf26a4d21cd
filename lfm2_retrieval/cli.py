"""The `lfm2-search` command line.

    lfm2-search model-info PATH_OR_HUB_ID   what a ColBERT model folder holds
    lfm2-search index-info INDEX_FOLDER     what an index holds
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Multilingual late-interaction search on the LFM2 backbone.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


def _table(title: str, rows: dict) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows.items():
        table.add_row(key, str(value))
    return table


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}", soft_wrap=True)
    raise typer.Exit(code=1)


@app.command("model-info")
def model_info(
    model: str = typer.Argument(..., help="A PyLate ColBERT folder, or a Hugging Face hub id (needs internet)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show a ColBERT model's backbone, projection and ColBERT settings.

    Example: lfm2-search model-info ./models/my-colbert
    """
    from lfm2_core import ModelNotFoundError
    from lfm2_retrieval import ColBERTEncoder

    try:
        encoder = ColBERTEncoder.from_pretrained(model)
    except (ModelNotFoundError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    cfg, bb = encoder.config, encoder.backbone.config
    info = {
        "folder": str(encoder.source_dir),
        "layers": f"{bb.num_hidden_layers} ({bb.layer_types.count('full_attention')} attention, "
                  f"{bb.layer_types.count('conv')} conv)",
        "mode": "bidirectional" if bb.bidirectional else "causal",
        "hidden size": bb.hidden_size,
        "heads (query/key-value)": f"{bb.num_attention_heads}/{bb.num_key_value_heads}",
        "vocabulary": bb.vocab_size,
        "parameters": sum(p.numel() for p in encoder.backbone.parameters()) +
                      sum(p.numel() for p in encoder.dense.parameters()),
        "embedding dim": encoder.dim,
        "query / document prefix": f"{cfg.query_prefix!r} / {cfg.document_prefix!r}",
        "query / document length": f"{cfg.query_length} / {cfg.document_length}",
        "query expansion": f"{cfg.do_query_expansion} (attend to expansion: {cfg.attend_to_expansion_tokens})",
        "skiplist tokens": len(encoder.tokenizer.skiplist_ids),
        "fingerprint": encoder.fingerprint,
    }
    if as_json:
        print(json.dumps(info, indent=2))
    else:
        console.print(_table(f"model {model}", info))


@app.command("index-info")
def index_info(
    index: Path = typer.Argument(..., help="An index folder (one holding manifest.json)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show an index's counts, codec and size on disk.

    Example: lfm2-search index-info indexes/default
    """
    from lfm2_retrieval.index import IndexFolderError, MultiVectorIndex

    try:
        stats = MultiVectorIndex(index).stats()
    except IndexFolderError as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps(stats, indent=2))
    else:
        console.print(_table(f"index {index}", stats))


if __name__ == "__main__":
    app()
