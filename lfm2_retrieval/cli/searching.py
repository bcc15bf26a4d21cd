"""`lfm2-search search`: one query, a table of ranked chunks or JSON."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from .app import app
from .common import (INDEX_HELP, MODEL_HELP, console, display_source, errors_are_answers, fail, open_engine,
                     read_only, snippet)


def _parse_filter(value: str | None) -> dict | None:
    """--filter's JSON, its relative file paths taken from here (ingest/sources.py, as the server
    takes them from its root); the request validates it."""
    from lfm2_retrieval.ingest import PathView

    if not value:
        return None
    try:
        return PathView(".").held_filter(json.loads(value))
    except json.JSONDecodeError as exc:
        fail(f"--filter is not valid JSON ({exc.msg}); example: --filter '{{\"lang\": \"en\"}}'")


@app.command("search")
@errors_are_answers
@read_only
def search_command(
    query: str = typer.Argument(..., help="What to look for, in any language the model knows."),
    k: int = typer.Option(10, "-k", help="How many chunks to return (at most 1000)."),
    filter: str = typer.Option(None, "--filter", "-f", help='Metadata filter as JSON, e.g. \'{"lang": "en"}\', '
                               '\'{"year": {"$gte": 2020}}\', \'{"source": {"$prefix": "docs/ja/"}}\', '
                               '\'{"source": {"$glob": "docs/*.md"}}\' (paths relative to here or absolute).'),
    index: str = typer.Option(None, "--index", "-i", help=INDEX_HELP),
    model: str = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    mode: str = typer.Option("hybrid", "--mode", help="hybrid (MaxSim and BM25 fused, and the dense vectors where "
                             "the index has them; the best on every task measured), semantic (MaxSim only), lexical "
                             "(BM25 only) or dense (the dense vectors only)."),
    fusion: str = typer.Option(None, "--fusion", help="Hybrid: rrf (reciprocal rank fusion) or interpolation "
                               "(normalised scores weighted by --alpha). Omitted: the default, chosen on dev data."),
    alpha: float = typer.Option(None, "--alpha", help="Hybrid: weight of the semantic side in "
                                "score interpolation (1: semantic only, 0: lexical only)."),
    dense_weight: float = typer.Option(None, "--dense-weight", help="Hybrid on an index with dense vectors: the "
                                       "dense leg's weight in score interpolation (the others share the rest by "
                                       "--alpha). Omitted: the default, chosen on dev data."),
    offset: int = typer.Option(0, "--offset", help="Skip this many results first (the next page: "
                               "--offset 10 -k 10 shows results 11 to 20)."),
    per_document: bool = typer.Option(False, "--per-document", help="One result per document (its best chunk, "
                                      "with how many of its chunks matched); -k counts documents."),
    as_json: bool = typer.Option(False, "--json", help="Print POST /search's JSON: {results: [{query, hits: "
                                 "[{id, score, text, metadata}]}], commit, took_ms}."),
) -> None:
    """Search an index: a table of score, source and snippet, or JSON.

    The options are the fields of one search request (lfm2_retrieval/engine/request.py), checked
    there as the HTTP API checks them.

    The default, hybrid, fuses the model's MaxSim with BM25: it ranks best on every task we
    measure, exact names, codes and numbers included; on an index with dense vectors (index
    --dense, add-dense) it fuses all three. --mode semantic, lexical or dense for one signal.

    Example: lfm2-search search "how is the index compressed?" -k 5 --filter '{"source": {"$in": ["/abs/a.md"]}}'
    """
    from lfm2_retrieval.engine import SearchRequest

    request = SearchRequest.of(query=query, k=k, offset=offset, filter=_parse_filter(filter), mode=mode,
                               fusion=fusion, alpha=alpha, per_document=per_document, dense_weight=dense_weight)
    engine = open_engine(index, model)
    engine.queries_without_torch = True  # one query in a fresh process: numpy encodes it in ms, torch loads in 1-2 s
    answer = engine.answer(request)
    hits = answer.results[0].hits
    if as_json:  # the body POST /search answers, so a script reads either the same way
        from lfm2_retrieval.api.schemas import SearchResponse

        from lfm2_retrieval.ingest.sources import PathView

        # Paths relative to here, as the tables show them and as a server shows them from its root.
        print(SearchResponse.of(answer, PathView(".")).model_dump_json(exclude_unset=True, indent=2))
        return
    if not hits:
        console.print("no results" + (" (nothing matches the filter)" if request.filter else ""))
        return
    table = Table(title=f"{len(hits)} results for {escape(query)!r}", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    relevance = answer.results[0].relevance  # calibrated: comparable across queries (None: the model has none)
    if relevance is not None:
        table.add_column("relevance", justify="right")
    table.add_column("source")
    table.add_column("text")
    for rank, h in enumerate(hits, start=offset + 1):
        meta = h.metadata
        where = display_source(meta.get("source")) or meta.get("doc_id", h.id)
        if meta.get("page") is not None:
            where += f" p.{meta['page']}"
        elif meta.get("chunk"):
            where += f" #{meta['chunk']}"
        if meta.get("matched_chunks", 1) > 1:
            where += f" ({meta['matched_chunks']} chunks)"
        cells = [str(rank), f"{h.score:.2f}"] + ([] if relevance is None else [f"{relevance[rank - offset - 1]:.2f}"])
        table.add_row(*cells, escape(str(where)), escape(snippet(h.text)))
    console.print(table)
