"""Managing an index: info, list, delete, shard, optimize, check."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from .app import app
from .common import (
    ANALYSIS_HELP,
    INDEX_HELP,
    MODEL_HELP,
    TITLE_WEIGHT_HELP,
    analysis_of,
    console,
    display_source,
    errors_are_answers,
    fail,
    open_engine,
    read_only,
    snippet,
    table_of,
)


@app.command("info")
@errors_are_answers
@read_only
def info_command(
    index: str = typer.Option(None, "--index", "-i", help=INDEX_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show an index: counts, model, codec, size on disk.

    Example: lfm2-search info --index notes
    """
    from lfm2_retrieval.index.analysis import Analysis

    engine = open_engine(index)
    stats = engine.stats()
    if as_json:
        print(json.dumps(stats, indent=2))
    else:
        dense = stats.get("dense")
        stats["dense"] = (f"{dense['encoder']} ({dense['dim']}-d, {dense['dtype']}): three-signal search" if dense
                          else "none: two signals (MaxSim, BM25); `lfm2-search add-dense` adds the third")
        stats["lexical"] = Analysis.from_json(stats.get("lexical")).describe()
        console.print(table_of(f"index {engine.path}", stats))


@app.command("add-dense")
@errors_are_answers
def add_dense_command(
    dense: str = typer.Option("e5", "--dense", metavar="ENCODER", help="Where the dense vectors come from: 'e5' "
                              "(multilingual-e5-small), 'model' (the model's own dense head) or a "
                              "sentence-transformers folder."),
    index: str = typer.Option(None, "--index", "-i", help=INDEX_HELP),
) -> None:
    """Give every chunk of an index a dense vector, for three-signal search (MaxSim, dense, BM25).

    One commit: searches see the old index until the new vectors are all written. An index that
    has dense vectors gets them replaced by the new encoder's. New chunks get theirs as they
    are indexed.

    Example: lfm2-search add-dense --dense e5 --index notes
    """
    engine = open_engine(index)
    with console.status(f"embedding {len(engine)} chunks with {dense}"):
        started = time.perf_counter()
        n = engine.add_dense(dense)
    took = time.perf_counter() - started
    console.print(f"dense vectors ({dense}, {engine.dense_slot.dim}-d) for {n} chunks in {took:.1f} s "
                  f"({n / max(took, 1e-9):.1f} chunks/s); commit {engine.commit}")


@app.command("list")
@errors_are_answers
@read_only
def list_command(
    index: str = typer.Option(None, "--index", "-i", help=INDEX_HELP),
    limit: int = typer.Option(50, min=0, help="How many documents to show (0: all)."),
    offset: int = typer.Option(0, min=0, help="Skip this many documents first."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON lines: {doc_id, chunks, source, title}."),
) -> None:
    """List indexed documents (a file, a record, or a text added through the API) and their chunk counts.

    Example: lfm2-search list --limit 20
    """
    engine = open_engine(index)
    docs = engine.documents()
    rows = [vars(d) for d in docs[offset: offset + limit if limit else None]]
    if as_json:
        from lfm2_retrieval.ingest.sources import PathView

        paths = PathView(".")  # file paths relative to here, as search --json and the server show them
        for row in rows:
            print(json.dumps(paths.shown_metadata(row), ensure_ascii=False))
        return
    table = Table(title=f"{len(docs)} documents in {engine.path} (showing {len(rows)})", title_justify="left")
    for column in ("document", "chunks", "title"):
        table.add_column(column)
    for row in rows:
        name = row["doc_id"]
        if row["source"] and name.startswith(row["source"]):  # a file, or a record of one
            name = display_source(row["source"]) + name[len(row["source"]):]
        table.add_row(escape(name), str(row["chunks"]), escape(snippet(str(row["title"] or ""), 60)))
    console.print(table)


@app.command("delete")
@errors_are_answers
def delete_command(
    ids: list[str] = typer.Argument(..., help="Document ids, chunk ids, or paths of indexed files."),
    index: str = typer.Option(None, "--index", "-i", help=INDEX_HELP),
) -> None:
    """Delete documents in one commit: a file path removes every chunk of that file.

    Example: lfm2-search delete docs/old.md faq-17
    """
    from lfm2_retrieval.ingest import PathView, source_name

    engine = open_engine(index)
    files = [source_name(Path(v)) for v in ids if Path(v).exists() or os.sep in v]
    # As `list` and `search` show them: a relative path names the file's id under here (even once
    # the file is gone), and an id that is no path names itself (ingest/sources.py, as the server).
    ids = [name for value in ids for name in PathView(".").held(value)]
    with engine.writing() as session:
        n = session.delete(ids)  # documents, else chunks
        if files:
            n += session.delete_where({"source": {"$in": files}})  # every chunk of those files
    if n == 0:
        fail("nothing matched: no document, chunk or indexed file with those ids")
    console.print(f"deleted {n} chunk(s); commit {engine.commit}")


@app.command("shard")
@errors_are_answers
def shard_command(
    shards: int = typer.Option(..., "--shards", "-n", min=2, max=1024, help="How many shards to split into."),
    index: str = typer.Option(None, "--index", "-i", help=INDEX_HELP),
    out: str = typer.Option(None, "--out", "-o", help="The sharded index to write (a name under ./indexes or a "
                            "path; it must not exist). Default: the index's name with -sharded."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Split an index into N shards that share its codec: every chunk goes, codes as they are, to
    the shard of its document (a hash of the document id), so search results stay the same.

    The source is only read. Search, index, serve and the API work on the sharded index as on
    any other (point --index at it); search fans out to every shard in parallel.

    Example: lfm2-search shard --shards 4 --index big --out big-4
    """
    from lfm2_retrieval.engine.locations import resolve_index_path
    from lfm2_retrieval.errors import IndexFolderError
    from lfm2_retrieval.shards import split_index

    source = resolve_index_path(index)
    if not (source / "manifest.json").exists():
        raise IndexFolderError(f"no unsharded index at {source}")
    target = resolve_index_path(out) if out else source.with_name(source.name + "-sharded")
    sharded = split_index(source, target, shards)
    summary = {"path": str(target), "shards": sharded.n_shards, "chunks": len(sharded),
               "per shard": [len(s) for s in sharded.shards], "commit": sharded.commit}
    if as_json:
        console.print_json(json.dumps(summary))
    else:
        console.print(table_of(f"sharded {source} into {target}", summary))


@app.command("optimize")
@errors_are_answers
def optimize_command(
    index: str = typer.Option(None, "--index", "-i", help=INDEX_HELP),
    reencode: bool = typer.Option(False, "--reencode", help="Encode every chunk again with the model (best "
                                  "quality, slow) instead of reusing the stored vectors."),
    model: str = typer.Option(None, "--model", "-m", help=MODEL_HELP + " Only used with --reencode."),
    nbits: int = typer.Option(None, help="Change the residual bits (1, 2 or 4)."),
    analysis: str = typer.Option(None, "--analysis", metavar="language|plain", help=ANALYSIS_HELP + " Default: "
                                 "the index's own ('language' for an index made before 0.9)."),
    title_weight: int = typer.Option(None, "--title-weight", min=0, max=10, help=TITLE_WEIGHT_HELP),
    lexical_only: bool = typer.Option(False, "--lexical-only", help="Only make BM25 anew (with --analysis and "
                                      "--title-weight): vectors and codec stay as they are; fast."),
) -> None:
    """Merge segments, drop deleted chunks for good, retrain the compression codec and re-analyse
    BM25 (an index made before per-language analysis gets it here).

    Example: lfm2-search optimize --index notes
    Example: lfm2-search optimize --index notes --lexical-only --analysis plain
    """
    if nbits is not None and nbits not in (1, 2, 4):
        fail("--nbits must be 1, 2 or 4")
    if lexical_only and (reencode or nbits is not None):
        fail("--lexical-only keeps the vectors and the codec: it does not go with --reencode or --nbits")
    wanted = analysis_of(analysis, title_weight)
    engine = open_engine(index, model)
    before = engine.stats()
    if lexical_only:
        from lfm2_retrieval.index.analysis import Analysis

        wanted = wanted or (engine.index.manifest.analysis if engine.index.manifest.lexical else Analysis())
        with console.status("re-analysing"):
            n = engine.reanalyze(wanted)
        console.print(f"BM25 made anew for {n} chunk(s): {wanted.describe()}; commit {engine.stats()['commit']}")
        return
    with console.status("optimizing"):
        engine.optimize(reencode=reencode, nbits=nbits, analysis=wanted)
    after = engine.stats()
    console.print(f"optimized: {before['segments']} -> {after['segments']} segment(s), "
                  f"{before['deleted']} deleted chunk(s) dropped, {before['bytes_on_disk'] / 1e6:.1f} -> "
                  f"{after['bytes_on_disk'] / 1e6:.1f} MB; commit {after['commit']}")


@app.command("check")
@errors_are_answers
def check_command(
    index: str = typer.Option(None, "--index", "-i", help=INDEX_HELP),
    full: bool = typer.Option(False, "--full", help="Also recompute every checksum and read every record, "
                              "inverted-file list and BM25 index (reads the whole index)."),
    repair: bool = typer.Option(False, "--repair", help="Drop what is damaged by a new commit (nothing else is "
                                "touched); the files it held are indexed again by the next `lfm2-search index`."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Verify an index: checksums, the invariants search relies on, the counts.

    Without --full it does what opening does (sizes, offsets, code ranges: fast); --full reads
    everything. Exit code 0: sound; 1: damage found (and repaired, with --repair: run
    `lfm2-search index` again on your folders to restore what was dropped).

    Example: lfm2-search check --index notes --full --repair
    """
    from lfm2_retrieval.engine import SearchEngine
    from lfm2_retrieval.engine.locations import resolve_index_path

    from lfm2_retrieval.shards import is_sharded

    from lfm2_retrieval.index.manifest import commit_points

    path = resolve_index_path(index)
    if not (path / "manifest.json").exists() and not is_sharded(path) and not commit_points(path):
        fail(f"no index at {path}")
    report = SearchEngine.check(path, full=full or repair)  # works on an index too damaged to open
    repaired = SearchEngine.repair(path, report) if repair and report.problems else None
    if as_json:
        print(json.dumps({**report.as_dict(), "repaired": repaired}, indent=2))
    else:
        kind = "full check" if report.full else "quick check"
        if not report.problems:
            console.print(f"[green]ok[/green] {path} (commit {report.commit}, {kind}): "
                          f"{len(report.checked)} parts sound")
        else:
            table = Table(title=f"{path}: damage found (commit {report.commit}, {kind})", title_justify="left")
            table.add_column("part")
            table.add_column("problem")
            for problem in report.problems:
                table.add_row(escape(problem.part), escape(problem.problem))
            console.print(table)
            if repaired and "restored_from" in repaired:
                lost = repaired["lost_commits"]
                console.print(f"repaired: manifest.json restored from commits/{repaired['restored_from']} as commit "
                              f"{repaired['commit']} ({repaired['chunks']} chunks); " + (
                                  "nothing was lost." if not lost else
                                  f"commit(s) {', '.join(map(str, lost))} could not be restored: run `lfm2-search "
                                  "index` on your folders to index again what they added."))
            elif repaired:
                sources = repaired["sources"]
                console.print(
                    f"repaired: commit {repaired['commit']} without "
                    f"{', '.join(repaired['dropped_segments']) or 'nothing'}"
                    f"; {repaired['chunks']} chunks remain. Run `lfm2-search index` on your folders to "
                    "index again "
                    + (
                        f"{len(sources)} file(s) that were in them."
                        if sources is not None
                        else "the files that were in them (their table is unreadable)."
                    )
                )
            else:
                console.print("run `lfm2-search check --repair` to drop the damaged parts by a new commit")
    if report.problems:
        raise typer.Exit(code=1)
