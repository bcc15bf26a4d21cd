"""`lfm2-search index`: files and folders into an index, again only what changed."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .app import app
from .common import (
    ANALYSIS_HELP,
    INDEX_HELP,
    TITLE_WEIGHT_HELP,
    analysis_of,
    MODEL_HELP,
    RAY_ADDRESS_HELP,
    console,
    display_source,
    err,
    errors_are_answers,
    fail,
    open_engine,
    ray_connected,
    ray_guard,
    table_of,
)


@app.command("index")
@errors_are_answers
def index_command(
    paths: list[Path] = typer.Argument(..., help="Files and folders to index (folders recursively)."),
    index: str = typer.Option(None, "--index", "-i", help=INDEX_HELP),
    model: str = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    include: list[str] = typer.Option([], "--include", help="Only paths matching this glob (relative to "
                                                            "the folder; '*' crosses '/'). Repeatable."),
    exclude: list[str] = typer.Option([], "--exclude", help="Skip paths matching this glob. Repeatable."),
    chunk_tokens: int = typer.Option(200, help="Chunk size in model tokens (capped by the model's document length)."),
    overlap: int = typer.Option(20, help="Tokens shared by consecutive chunks."),
    text_field: str = typer.Option("text", help="Text field of JSON/JSONL/CSV/Parquet records."),
    id_field: str = typer.Option("id", help="Id field of records (row number when absent)."),
    title_field: str = typer.Option("title", help="Title field of records."),
    metadata_field: list[str] = typer.Option(None, "--metadata-field", help="Record fields kept as metadata "
                                                                           "(default: all other fields). Repeatable."),
    nbits: int = typer.Option(4, help="Bits per dimension of compressed residuals (1, 2 or 4) for a new index."),
    shards: int = typer.Option(1, min=1, max=1024, help="A new index as this many shards (one codec; search fans "
                               "out to all). An existing index keeps its shards: see `lfm2-search shard`."),
    ray: bool = typer.Option(False, "--ray", help="Encode on Ray: a local Ray instance, or the cluster of "
                             "--ray-address. Needs pip install -e .[distributed]."),
    ray_address: str = typer.Option(None, "--ray-address", metavar="ADDRESS", help=RAY_ADDRESS_HELP),
    ray_workers: int = typer.Option(2, min=1, help="With --ray: encoder actors (each loads the model once)."),
    ray_cpus: float = typer.Option(1.0, min=0.1, help="With --ray: CPUs per encoder actor (its torch threads)."),
    ray_gpus: float = typer.Option(None, min=0.0, help="With --ray: GPUs per encoder actor (0: CPU only). Default: "
                                   "the cluster's GPUs when it has some, one a worker."),
    ray_group: int = typer.Option(256, min=1, help="With --ray: chunks an actor encodes in one call (256: as a "
                                  "local run, so the index is the same to the bit; more for GPUs)."),
    dense: str = typer.Option(None, "--dense", metavar="ENCODER", help="A new index also keeps one dense vector "
                              "per chunk, for three-signal search (MaxSim, dense, BM25): 'e5' (multilingual-e5-small, "
                              "strong across languages; a second model to run), 'model' (the model's own dense "
                              "head, if it has one: nearly free) or a sentence-transformers folder."),
    analysis: str = typer.Option(None, "--analysis", metavar="language|plain", help=ANALYSIS_HELP + " For a new "
                                 "index (default: language); change an existing one with `lfm2-search optimize`."),
    title_weight: int = typer.Option(None, "--title-weight", min=0, max=10, help=TITLE_WEIGHT_HELP + " Default: 3."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Index files: .txt .md .rst .html .json .jsonl .csv .tsv .parquet .pdf.

    Run it again to update: only new and changed files are re-indexed, and chunks of deleted
    files are removed. An interrupted run (Ctrl-C, a crash) leaves a consistent index; the next
    run finishes the job. With --ray, chunks are encoded by actors on a Ray cluster; reading,
    chunking and commits stay on this machine, so all of the above holds as well.

    Example: lfm2-search index ./docs --exclude 'drafts/*' --index notes
    Example: lfm2-search index ./docs --dense e5 --index multilingual
    Example: lfm2-search index ./corpus --index big --shards 4 --ray --ray-address auto --ray-workers 16
    """
    from lfm2_retrieval.engine.chunking import ChunkingOptions
    from lfm2_retrieval.ingest import IngestOptions, Ingestor, RecordFields

    try:
        chunking = ChunkingOptions(chunk_tokens, overlap)
    except ValueError as exc:
        fail(str(exc))
    for p in paths:
        if not p.exists():
            fail(f"{p} does not exist")
    engine = open_engine(index, model, create=True, nbits=nbits, chunking=chunking, shards=shards, dense=dense,
                         analysis=analysis_of(analysis, title_weight))
    encoding = None
    if ray and engine.dense_slot is not None:
        fail("--ray encodes token vectors only: index this collection without --ray, or with --ray and without a "
             "dense slot, then fill it with `lfm2-search add-dense`")
    if ray:
        from lfm2_retrieval.distributed.encoding import RayEncoding

        if ray_address is None and not ray_connected():  # a local instance starts: say what it opens
            err.print("note: the local Ray instance started for encoding listens on every interface while it runs "
                      f"(GCS, raylet, workers); {ray_guard()}. Firewall its ports on a shared network, or pass "
                      "--ray-address to encode on a cluster you run (docs/distributed.md#rays-own-ports).")
        encoding = RayEncoding(engine, address=ray_address, workers=ray_workers,
                               group_chunks=ray_group, cpus_per_worker=ray_cpus, gpus_per_worker=ray_gpus)
    options = IngestOptions(include=include, exclude=exclude,
                            fields=RecordFields(text_field, id_field, title_field, metadata_field or None))
    progress = Progress(TextColumn("[bold]indexing"), BarColumn(), MofNCompleteColumn(), TextColumn("files"),
                        TextColumn("{task.fields[chunks]} chunks"), TextColumn("{task.fields[rate]}"),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=err, disable=as_json)
    task = progress.add_task("index", total=None, chunks=0, rate="")
    tokens = [0]

    def on_progress(event: str, info: dict) -> None:
        if event == "start":
            progress.update(task, total=info["files"])
        elif event == "files":
            tokens[0] += info["tokens"]
            elapsed = progress.tasks[0].elapsed or 1e-9
            done = progress.tasks[0].completed + info["files"]
            progress.update(task, completed=done, chunks=progress.tasks[0].fields["chunks"] + info["chunks"],
                            rate=f"{done / elapsed:.1f} docs/s, {tokens[0] / elapsed:,.0f} tok/s")

    ingestor = Ingestor(engine, options, on_progress, encoding=encoding)
    with progress:
        report = ingestor.run(paths)
        # The bar's last word is the run's own rate, the summary's: the whole run, commits included.
        if report.seconds:
            progress.update(task, rate=f"{report.files_indexed / report.seconds:.1f} docs/s, "
                                       f"{report.tokens / report.seconds:,.0f} tok/s")
    _print_report(report, engine, as_json)
    if report.interrupted:
        raise typer.Exit(code=130)


def _print_report(report, engine, as_json: bool) -> None:
    if as_json:
        print(json.dumps({**report.as_dict(), "index": str(engine.path), "index_chunks": len(engine)}, indent=2))
        return
    for path, reason in report.skipped:
        err.print(f"[yellow]skipped[/yellow] {escape(display_source(path))}: {escape(reason)}", soft_wrap=True)
    for path, warning in report.warnings:
        err.print(f"[yellow]warning[/yellow] {escape(display_source(path))}: {escape(warning)}", soft_wrap=True)
    if report.unsupported:
        kinds = ", ".join(f"{suffix} x{n}" for suffix, n in report.unsupported.most_common())
        err.print(f"[yellow]ignored[/yellow] {sum(report.unsupported.values())} file(s) of unsupported types ({kinds})")
    rate = report.tokens / report.seconds if report.seconds else 0.0
    summary = {
        "index": str(engine.path),
        "files found": report.files_found,
        "indexed (new or changed)": report.files_indexed,
        "unchanged": report.files_unchanged,
        "removed (deleted files)": report.files_removed,
        "skipped": len(report.skipped),
        "chunks added / removed": f"{report.chunks_added} / {report.chunks_removed}",
        "tokens encoded": f"{report.tokens:,} ({rate:,.0f} tokens/s)",
        "time": f"{report.seconds:.1f} s",
        "chunks in index": len(engine),
    }
    console.print(table_of("interrupted: run again to finish" if report.interrupted else "done", summary))
    if engine.segment_count > 16:
        console.print("[dim]many segments: `lfm2-search optimize` merges them and speeds up search[/dim]")
