"""The `lfm2-search` command line.

    lfm2-search index ./docs                 index a folder (again: only what changed)
    lfm2-search search "a question" -k 5     ranked chunks with their sources
    lfm2-search info | list | delete | optimize | check
    lfm2-search serve                        the HTTP API on 127.0.0.1:8000
    lfm2-search mcp                          the index as MCP tools for AI agents (stdio)
    lfm2-search model-info MODEL             what a ColBERT model folder holds
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

app = typer.Typer(
    help="Multilingual late-interaction search on the LFM2 backbone.\n\n"
         "Start with:  lfm2-search index ./docs  then  lfm2-search search \"your question\".\n"
         "Indexes live under ./indexes (a bare --index name) unless LFM2_SEARCH_INDEXES says otherwise.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
console = Console()
err = Console(stderr=True)

INDEX_HELP = "Index name (a folder under ./indexes) or path."
MODEL_HELP = ("Model: a PyLate ColBERT folder or a hub id (needs internet). Default: the model the index "
              "was built with, else $LFM2_SEARCH_MODEL, else the embedded default model.")


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code=code)


def _errors_are_answers(command):
    """Expected failures end a command with one line and their exit code (errors.py: 2 for a
    damaged index, 1 otherwise), never a traceback: a damaged file names itself and what to run,
    a full disk says which commit is intact."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from lfm2_retrieval.errors import as_search_error

        try:
            return command(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a real bug is re-raised below
            path = commit = None
            if "index" in kwargs:
                path, commit = _index_and_commit(kwargs["index"])
            known = as_search_error(exc, path, commit)
            if known is None:
                raise
            _fail(str(known), code=known.exit_code)
    return wrapper


def _index_and_commit(index: str | None):
    """(path, commit) of an index named on the command line; commit None if it has none yet."""
    from lfm2_retrieval.engine import SearchEngine
    from lfm2_retrieval.engine.locations import resolve_index_path

    from lfm2_retrieval.errors import SearchError

    try:
        path = resolve_index_path(index)
    except SearchError:  # not a folder: the error being answered says so
        return None, None
    return path, SearchEngine.commit_of(path)


def _cannot_listen(host: str, port: int) -> str | None:
    """Why the server could not bind host:port, checked before the model loads (None: it can)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(infos[0][4])
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _table(title: str, rows: dict) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows.items():
        table.add_row(key, escape(str(value)))
    return table


def _open_engine(index: str | None, model: str | None = None, create: bool = False, **kwargs):
    """The engine of an index (the model loads when first needed, so reading and deleting
    commands never pay for it); failures are answered by _errors_are_answers."""
    from lfm2_retrieval.engine import SearchEngine
    from lfm2_retrieval.engine.locations import resolve_index_path
    from lfm2_retrieval.errors import IndexFolderError

    from lfm2_retrieval.shards import is_sharded

    path = resolve_index_path(index)
    if not create and not (path / "manifest.json").exists() and not is_sharded(path):
        raise IndexFolderError(f"no index at {path}; build one with `lfm2-search index PATH --index {index or 'default'}`")
    try:
        return SearchEngine.open(path, model=model, create=create, **kwargs)
    except ValueError as exc:  # a model folder that is not a ColBERT model
        _fail(str(exc))


def _display_source(source: str | None) -> str:
    if not source:
        return ""
    try:
        return os.path.relpath(source)
    except ValueError:
        return source


# ---------------------------------------------------------------------- index
@app.command("index")
@_errors_are_answers
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
    ray_address: str = typer.Option(None, "--ray-address", metavar="ADDRESS", help="With --ray: the cluster to "
                                    "join (auto, host:6379, ray://host:10001); default: start a local instance."),
    ray_workers: int = typer.Option(2, min=1, help="With --ray: encoder actors (each loads the model once)."),
    ray_cpus: float = typer.Option(1.0, min=0.1, help="With --ray: CPUs per encoder actor (its torch threads)."),
    ray_gpus: float = typer.Option(None, min=0.0, help="With --ray: GPUs per encoder actor (0: CPU only). Default: "
                                   "the cluster's GPUs when it has some, one a worker."),
    ray_group: int = typer.Option(256, min=1, help="With --ray: chunks an actor encodes in one call (256: as a "
                                  "local run, so the index is the same to the bit; more for GPUs)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Index files: .txt .md .rst .html .json .jsonl .csv .tsv .parquet .pdf.

    Run it again to update: only new and changed files are re-indexed, and chunks of deleted
    files are removed. An interrupted run (Ctrl-C, a crash) leaves a consistent index; the next
    run finishes the job. With --ray, chunks are encoded by actors on a Ray cluster; reading,
    chunking and commits stay on this machine, so all of the above holds as well.

    Example: lfm2-search index ./docs --exclude 'drafts/*' --index notes
    Example: lfm2-search index ./corpus --index big --shards 4 --ray --ray-address auto --ray-workers 16
    """
    from lfm2_retrieval.engine.chunking import ChunkingOptions
    from lfm2_retrieval.ingest import IngestOptions, Ingestor, RecordFields

    try:
        chunking = ChunkingOptions(chunk_tokens, overlap)
    except ValueError as exc:
        _fail(str(exc))
    for p in paths:
        if not p.exists():
            _fail(f"{p} does not exist")
    engine = _open_engine(index, model, create=True, nbits=nbits, chunking=chunking, shards=shards)
    encoding = None
    if ray:
        from lfm2_retrieval.distributed.encoding import RayEncoding

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
    _print_report(report, engine, as_json)
    if report.interrupted:
        raise typer.Exit(code=130)


def _print_report(report, engine, as_json: bool) -> None:
    if as_json:
        print(json.dumps({**report.as_dict(), "index": str(engine.path), "index_chunks": len(engine)}, indent=2))
        return
    for path, reason in report.skipped:
        err.print(f"[yellow]skipped[/yellow] {escape(_display_source(path))}: {escape(reason)}", soft_wrap=True)
    for path, warning in report.warnings:
        err.print(f"[yellow]warning[/yellow] {escape(_display_source(path))}: {escape(warning)}", soft_wrap=True)
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
    console.print(_table("interrupted: run again to finish" if report.interrupted else "done", summary))
    if engine.segment_count > 16:
        console.print("[dim]many segments: `lfm2-search optimize` merges them and speeds up search[/dim]")


# ---------------------------------------------------------------------- search
def _absolute_id(value: str) -> str:
    """An id as the tables show it (a file's path relative to here, maybe with '#record' or
    '#chunk' after it) made into the id the index holds (the absolute path). Anything else as is."""
    from lfm2_retrieval.ingest import source_name

    cut = [len(value)] + [i for i, c in enumerate(value) if c == "#"]
    for i in cut:
        if value[:i] and Path(value[:i]).is_file():
            return source_name(Path(value[:i])) + value[i:]
    return value


def _absolute_sources(filter_: Any) -> Any:
    """A filter whose "source" values name files by relative paths, with absolute ones instead
    (what the index holds), so `--filter '{"source": "docs/a.md"}'` works from where you are;
    a relative $prefix or $glob ("docs/ja/", "docs/*.md") is taken from here as well."""
    from lfm2_retrieval.ingest import source_name

    def fix(v, op="$eq"):
        if isinstance(v, list):
            return [fix(x) for x in v]
        if not isinstance(v, str):
            return v
        if op in ("$prefix", "$glob"):
            if v.startswith(("/", "*")):
                return v
            here = Path.cwd().as_posix().rstrip("/") + "/"
            return here + v.removeprefix("./")
        return source_name(Path(v)) if Path(v).is_file() else v

    if isinstance(filter_, list):
        return [_absolute_sources(f) for f in filter_]
    if not isinstance(filter_, dict):
        return filter_
    out = {}
    for key, cond in filter_.items():
        if key == "source":
            cond = {op: fix(v, op) for op, v in cond.items()} if isinstance(cond, dict) else fix(cond)
        elif key == "$or":
            cond = _absolute_sources(cond)
        out[key] = cond
    return out


def _parse_filter(value: str | None) -> dict | None:
    from lfm2_retrieval.engine import validate_filter as validate
    from lfm2_retrieval.errors import FilterError

    if not value:
        return None
    try:
        parsed = json.loads(value)
        validate(parsed)
    except json.JSONDecodeError as exc:
        _fail(f"--filter is not valid JSON ({exc.msg}); example: --filter '{{\"lang\": \"en\"}}'")
    except FilterError as exc:
        _fail(f"--filter: {exc}")
    return _absolute_sources(parsed)


def _snippet(text: str, width: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


@app.command("search")
@_errors_are_answers
def search_command(
    query: str = typer.Argument(..., help="What to look for, in any language the model knows."),
    k: int = typer.Option(10, "-k", min=1, max=1000, help="How many chunks to return."),
    filter: str = typer.Option(None, "--filter", "-f", help='Metadata filter as JSON, e.g. \'{"lang": "en"}\', '
                               '\'{"year": {"$gte": 2020}}\', \'{"source": {"$prefix": "docs/ja/"}}\', '
                               '\'{"source": {"$glob": "docs/*.md"}}\' (paths relative to here or absolute).'),
    index: str = typer.Option(None, "--index", "-i", help=INDEX_HELP),
    model: str = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    mode: str = typer.Option("hybrid", "--mode", help="hybrid (MaxSim and BM25, fused; the best on every task "
                             "measured), semantic (MaxSim only) or lexical (BM25 only)."),
    fusion: str = typer.Option(None, "--fusion", help="Hybrid: rrf (reciprocal rank fusion) or interpolation "
                               "(normalised scores weighted by --alpha). Omitted: the default, chosen on dev data."),
    alpha: float = typer.Option(None, "--alpha", min=0.0, max=1.0, help="Hybrid: weight of the semantic side in "
                                "score interpolation (1: semantic only, 0: lexical only)."),
    per_document: bool = typer.Option(False, "--per-document", help="One result per document (its best chunk, "
                                      "with how many of its chunks matched); -k counts documents."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list of {id, score, text, metadata}."),
) -> None:
    """Search an index: a table of score, source and snippet, or JSON.

    The default, hybrid, fuses the model's MaxSim with BM25: it ranks best on every task we
    measure, exact names, codes and numbers included. --mode semantic or lexical for one side.

    Example: lfm2-search search "how is the index compressed?" -k 5 --filter '{"source": {"$in": ["/abs/a.md"]}}'
    """
    if not query.strip():
        _fail("the query is empty")
    from lfm2_retrieval.engine.fusion import MODES, resolve

    if mode not in MODES:
        _fail(f"--mode must be one of {', '.join(MODES)}")
    if (alpha is not None or fusion is not None) and mode != "hybrid":
        _fail("--alpha and --fusion only apply to --mode hybrid")
    try:
        resolve(fusion, alpha)
    except ValueError as exc:
        _fail(str(exc))
    parsed = _parse_filter(filter)
    engine = _open_engine(index, model)
    hits = engine.search([query], k=k, filter=parsed, mode=mode, alpha=alpha, fusion=fusion, per_document=per_document)[0]
    if as_json:
        print(json.dumps([{"id": h.id, "score": h.score, "text": h.text, "metadata": h.metadata} for h in hits],
                         ensure_ascii=False, indent=2))
        return
    if not hits:
        console.print("no results" + (" (nothing matches the filter)" if parsed else ""))
        return
    table = Table(title=f"{len(hits)} results for {escape(query)!r}", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("source")
    table.add_column("text")
    for rank, h in enumerate(hits, start=1):
        meta = h.metadata
        where = _display_source(meta.get("source")) or meta.get("doc_id", h.id)
        if meta.get("page") is not None:
            where += f" p.{meta['page']}"
        elif meta.get("chunk"):
            where += f" #{meta['chunk']}"
        if meta.get("matched_chunks", 1) > 1:
            where += f" ({meta['matched_chunks']} chunks)"
        table.add_row(str(rank), f"{h.score:.2f}", escape(str(where)), escape(_snippet(h.text)))
    console.print(table)


# ---------------------------------------------------------------------- management
@app.command("info")
@_errors_are_answers
def info_command(
    index: str = typer.Option(None, "--index", "-i", help=INDEX_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show an index: counts, model, codec, size on disk.

    Example: lfm2-search info --index notes
    """
    engine = _open_engine(index)
    stats = engine.stats()
    if as_json:
        print(json.dumps(stats, indent=2))
    else:
        console.print(_table(f"index {engine.path}", stats))


@app.command("list")
@_errors_are_answers
def list_command(
    index: str = typer.Option(None, "--index", "-i", help=INDEX_HELP),
    limit: int = typer.Option(50, min=0, help="How many documents to show (0: all)."),
    offset: int = typer.Option(0, min=0, help="Skip this many documents first."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON lines: {doc_id, chunks, source, title}."),
) -> None:
    """List indexed documents (a file, a record, or a text added through the API) and their chunk counts.

    Example: lfm2-search list --limit 20
    """
    engine = _open_engine(index)
    docs = engine.documents()
    rows = [vars(d) for d in docs[offset: offset + limit if limit else None]]
    if as_json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return
    table = Table(title=f"{len(docs)} documents in {engine.path} (showing {len(rows)})", title_justify="left")
    for column in ("document", "chunks", "title"):
        table.add_column(column)
    for row in rows:
        name = row["doc_id"]
        if row["source"] and name.startswith(row["source"]):  # a file, or a record of one
            name = _display_source(row["source"]) + name[len(row["source"]):]
        table.add_row(escape(name), str(row["chunks"]), escape(_snippet(str(row["title"] or ""), 60)))
    console.print(table)


@app.command("delete")
@_errors_are_answers
def delete_command(
    ids: list[str] = typer.Argument(..., help="Document ids, chunk ids, or paths of indexed files."),
    index: str = typer.Option(None, "--index", "-i", help=INDEX_HELP),
) -> None:
    """Delete documents in one commit: a file path removes every chunk of that file.

    Example: lfm2-search delete docs/old.md faq-17
    """
    from lfm2_retrieval.ingest import source_name

    engine = _open_engine(index)
    ids = [_absolute_id(value) for value in ids]  # as `list` and `search` show them: relative paths
    files = [source_name(Path(v)) for v in ids if Path(v).exists() or os.sep in v]
    with engine.writing() as session:
        n = session.delete(ids)  # documents, else chunks
        if files:
            n += session.delete_where({"source": {"$in": files}})  # every chunk of those files
    if n == 0:
        _fail("nothing matched: no document, chunk or indexed file with those ids")
    console.print(f"deleted {n} chunk(s); commit {engine.commit}")


@app.command("shard")
@_errors_are_answers
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
        console.print(_table(f"sharded {source} into {target}", summary))


@app.command("optimize")
@_errors_are_answers
def optimize_command(
    index: str = typer.Option(None, "--index", "-i", help=INDEX_HELP),
    reencode: bool = typer.Option(False, "--reencode", help="Encode every chunk again with the model (best "
                                  "quality, slow) instead of reusing the stored vectors."),
    model: str = typer.Option(None, "--model", "-m", help=MODEL_HELP + " Only used with --reencode."),
    nbits: int = typer.Option(None, help="Change the residual bits (1, 2 or 4)."),
) -> None:
    """Merge segments, drop deleted chunks for good, and retrain the compression codec.

    Example: lfm2-search optimize --index notes
    """
    if nbits is not None and nbits not in (1, 2, 4):
        _fail("--nbits must be 1, 2 or 4")
    engine = _open_engine(index, model)
    before = engine.stats()
    with console.status("optimizing"):
        engine.optimize(reencode=reencode, nbits=nbits)
    after = engine.stats()
    console.print(f"optimized: {before['segments']} -> {after['segments']} segment(s), "
                  f"{before['deleted']} deleted chunk(s) dropped, {before['bytes_on_disk'] / 1e6:.1f} -> "
                  f"{after['bytes_on_disk'] / 1e6:.1f} MB; commit {after['commit']}")


@app.command("check")
@_errors_are_answers
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
        _fail(f"no index at {path}")
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
                console.print(f"repaired: commit {repaired['commit']} without {', '.join(repaired['dropped_segments']) or 'nothing'}"
                              f"; {repaired['chunks']} chunks remain. Run `lfm2-search index` on your folders to "
                              "index again " + (f"{len(sources)} file(s) that were in them." if sources is not None
                                                else "the files that were in them (their table is unreadable)."))
            else:
                console.print("run `lfm2-search check --repair` to drop the damaged parts by a new commit")
    if report.problems:
        raise typer.Exit(code=1)


@app.command("serve")
@_errors_are_answers
def serve_command(
    index: str = typer.Option(None, "--index", "-i", help=INDEX_HELP),
    model: str = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 exposes it to the network)."),
    port: int = typer.Option(8000, help="TCP port."),
    create: bool = typer.Option(False, "--create", help="Create the index if it does not exist (then fill it "
                                "through POST /documents)."),
    max_body_mb: float = typer.Option(16.0, help="Largest request body accepted (MB)."),
    shutdown_timeout: float = typer.Option(10.0, help="On SIGTERM or Ctrl-C, seconds to let requests in flight "
                                           "finish before the server stops anyway."),
    shard_timeout: float = typer.Option(10.0, min=0.001, help="Sharded indexes: seconds a shard has to answer; "
                                        "then 503 shard_unavailable (or partial results, if the request allows)."),
    ray: bool = typer.Option(False, "--ray", help="Serve a sharded index on Ray Serve: one deployment per shard "
                             "and an ingress with this same API (a local Ray instance, or --ray-address)."),
    ray_address: str = typer.Option(None, "--ray-address", metavar="ADDRESS", help="With --ray: the cluster to "
                                    "join (auto, host:6379, ray://host:10001); default: start a local instance."),
    replicas: int = typer.Option(1, min=1, help="With --ray: replicas of each shard's deployment."),
) -> None:
    """Serve the HTTP API: POST /search, POST /documents, DELETE /documents/{id}, GET /health; docs at /docs.

    Set LFM2_SEARCH_API_KEY to require `Authorization: Bearer <key>` on every endpoint but /health.

    Example: lfm2-search serve --index notes --port 8080
    Example: lfm2-search serve --index big-4 --ray --ray-address auto --replicas 2 --host 0.0.0.0
    """
    from lfm2_retrieval.api import API_KEY_ENV, ApiSettings, create_app
    from lfm2_retrieval.api.server import limit_malloc_arenas, serve

    if ray:
        return _serve_on_ray(index, model, host, port, ray_address, replicas, max_body_mb, shard_timeout)

    limit_malloc_arenas()  # before the model and the worker threads allocate

    if (problem := _cannot_listen(host, port)) is not None:
        _fail(f"cannot listen on {host}:{port} ({problem}); is another server running there? Pick one with --port")
    engine = _open_engine(index, model, create=create)
    engine.encoder  # noqa: B018 - load the model now: a bad one fails here, not on the first request
    settings = ApiSettings(max_body_bytes=int(max_body_mb * (1 << 20)), shard_timeout_s=shard_timeout)
    auth = "on" if settings.api_key else f"off (set {API_KEY_ENV} to require a key)"
    err.print(f"serving {engine.path} ({len(engine)} chunks) on http://{host}:{port}  "
              f"docs: http://{host}:{port}/docs  auth: {auth}")
    serve(create_app(engine, settings), host, port, shutdown_timeout)  # ends the process when stopped


def _serve_on_ray(index, model, host, port, address, replicas, max_body_mb, shard_timeout) -> None:
    """`serve --ray`: deploy the Serve application, then wait for SIGTERM or Ctrl-C and take it down."""
    import signal
    import threading

    from lfm2_retrieval.api import API_KEY_ENV
    from lfm2_retrieval.distributed import serving
    from lfm2_retrieval.engine.locations import resolve_index_path
    from lfm2_retrieval.shards import is_sharded

    path = resolve_index_path(index)
    if not is_sharded(path):
        _fail(f"{path} is not a sharded index; serve --ray serves sharded indexes (split one with "
              f"`lfm2-search shard --shards N --index {index or 'default'}`), or drop --ray")
    api = {"max_body_bytes": int(max_body_mb * (1 << 20)), "shard_timeout_s": shard_timeout}
    if os.environ.get(API_KEY_ENV):
        api["api_key"] = os.environ[API_KEY_ENV]  # the replicas' environment is the cluster's, not ours
    serving.run(path, host, port, address, replicas, model, api)
    err.print(f"serving {path} on Ray Serve at http://{host}:{port} (one deployment per shard, {replicas} "
              f"replica(s) each; /health lists them)")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    from ray import serve

    serve.shutdown()


@app.command("mcp")
@_errors_are_answers
def mcp_command(
    index: str = typer.Option(None, "--index", "-i", help=INDEX_HELP),
    model: str = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    http: bool = typer.Option(False, "--http", help="Serve over streamable HTTP (at /mcp) instead of stdio."),
    host: str = typer.Option("127.0.0.1", help="With --http: interface to listen on."),
    port: int = typer.Option(8001, help="With --http: TCP port."),
    create: bool = typer.Option(False, "--create", help="Create the index if it does not exist."),
) -> None:
    """Serve an index to AI agents over MCP: tools search, add_documents, delete_documents, index_info.

    Over stdio by default (what an agent launches: give it this command line); --http serves
    streamable HTTP at http://HOST:PORT/mcp.

    Example (an agent's config): {"command": "lfm2-search", "args": ["mcp", "--index", "notes"]}
    """
    from lfm2_retrieval.client import LocalClient
    from lfm2_retrieval.mcp_server import build_server

    server = build_server(LocalClient(_open_engine(index, model, create=create)))
    if http:
        if (problem := _cannot_listen(host, port)) is not None:
            _fail(f"cannot listen on {host}:{port} ({problem}); pick another with --port")
        err.print(f"MCP over streamable HTTP on http://{host}:{port}/mcp")
        server.run("streamable-http", host=host, port=port)
    else:
        server.run("stdio")


@app.command("train")
@_errors_are_answers
def train_command(
    config: Path = typer.Argument(None, help="A .toml or .json file of training settings (see configs/)."),
    set_: list[str] = typer.Option([], "--set", help="Override a setting: --set steps=500. Repeatable."),
    cache_only: bool = typer.Option(False, "--cache-only", help="Only fill the teacher cache (the dense "
                                    "teacher's vectors of every training text; resumable) and stop: start it early, "
                                    "it is slow."),
) -> None:
    """Train an LFM2 backbone into a ColBERT encoder (contrastive, MaxSim).

    Settings: lfm2_retrieval/training/config.py. The main ones:
    init_from: a ColBERT folder or a plain LFM2 checkpoint (empty: scratch);
    hard_negatives, negatives_from; teacher (e5, a sentence-transformers or a
    ColBERT folder) and distill_teacher, distill_bm25, distill_minilm;
    parallel_languages; query_expansion.

    Resumes from the latest checkpoint in output_dir. Writes log.jsonl
    (loss, dev NDCG@10), checkpoints/ and model/ (a folder for --model).

    lfm2-search train configs/default-model.toml --set steps=100

    lfm2-search train configs/default-model-hn.toml --set init_from=./LFM2-350M

    lfm2-search train configs/default-model-e5.toml --cache-only   # E5 vectors first
    """
    from lfm2_retrieval.training import TrainConfig
    from lfm2_retrieval.training.trainer import Trainer, prepare_data

    try:
        cfg = TrainConfig.load(config, set_)
        if cache_only:
            pairs, teacher = prepare_data(cfg, lambda record: console.print(record))
            if teacher is None or not hasattr(teacher, "cache"):
                _fail("this config has no dense teacher to cache (set distill_teacher or negatives_from=\"teacher\", "
                      "with teacher = \"e5\" or a sentence-transformers folder)")
            console.print(f"teacher cache complete for {len(pairs)} pairs: {teacher.cache.folder}")
            return
        final = Trainer(cfg).train()
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    console.print(f"model written to {final}")


@app.command("model-info")
@_errors_are_answers
def model_info(
    model: str = typer.Argument(..., help="A PyLate ColBERT folder, or a Hugging Face hub id (needs internet)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show a ColBERT model's backbone, projection and ColBERT settings.

    Example: lfm2-search model-info ./models/my-colbert
    """
    from lfm2_retrieval import ColBERTEncoder

    try:
        encoder = ColBERTEncoder.from_pretrained(model)
    except (FileNotFoundError, ValueError) as exc:
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


def main() -> None:  # pragma: no cover - console entry point
    app(prog_name="lfm2-search")


if __name__ == "__main__":
    sys.exit(main())
