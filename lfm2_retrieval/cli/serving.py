"""Serving an index: the HTTP API (`serve`, also on Ray Serve) and MCP for AI agents (`mcp`)."""

from __future__ import annotations

import os

import typer

from .app import app
from .common import (ABSOLUTE_PATHS_HELP, INDEX_HELP, MODEL_HELP, RAY_ADDRESS_HELP, ROOT_HELP, cannot_listen, err,
                     errors_are_answers, fail, open_engine, ray_guard)


@app.command("serve")
@errors_are_answers
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
    ray_address: str = typer.Option(None, "--ray-address", metavar="ADDRESS", help=RAY_ADDRESS_HELP),
    replicas: int = typer.Option(1, min=1, help="With --ray: replicas of each shard's deployment."),
    ray_open_ports: bool = typer.Option(False, "--ray-open-ports", help="With --ray, a loopback --host and no "
                                        "--ray-address: start the local Ray instance anyway, although Ray opens its "
                                        "control ports on every interface (its token authentication guards them)."),
    cors_origin: list[str] = typer.Option([], "--cors-origin", metavar="ORIGIN", help="A browser origin allowed "
                                          "to call the API (e.g. https://app.example.com). Repeatable."),
    rate_limit: float = typer.Option(None, "--rate-limit", min=0.01, metavar="PER_SECOND", help="Requests a second "
                                     "per caller (its API key, else its address), in bursts of twice that; "
                                     "over it: 429 with Retry-After. Default: no limit."),
    root: str = typer.Option(".", "--root", metavar="DIR", help=ROOT_HELP),
    absolute_paths: bool = typer.Option(False, "--absolute-paths", help=ABSOLUTE_PATHS_HELP),
    otel: bool = typer.Option(False, "--otel", help="OpenTelemetry traces (a span per request, and per search stage) "
                              "over OTLP/HTTP to $OTEL_EXPORTER_OTLP_ENDPOINT (default localhost:4318); needs "
                              "pip install 'lfm2-search[otel]'."),
) -> None:
    """Serve the HTTP API: POST /search, POST /documents, DELETE /documents/{id}, GET /health; docs at /docs.

    Set LFM2_SEARCH_API_KEY to require `Authorization: Bearer <key>` on every endpoint but /health;
    LFM2_SEARCH_READ_KEY adds a key that may search but not write.

    Example: lfm2-search serve --index notes --port 8080
    Example: lfm2-search serve --index big-4 --ray --ray-address auto --replicas 2 --host 0.0.0.0
    """
    from lfm2_retrieval.api import API_KEY_ENV, ApiSettings, create_app
    from lfm2_retrieval.api.server import limit_malloc_arenas, serve

    if ray:
        if ray_address is None and host in LOOPBACK_HOSTS and not ray_open_ports:
            fail(LOCAL_RAY_REFUSED.format(host=host))
        return _serve_on_ray(index, model, host, port, ray_address, replicas, max_body_mb, shard_timeout)

    limit_malloc_arenas()  # before the model and the worker threads allocate

    if (problem := cannot_listen(host, port)) is not None:
        fail(f"cannot listen on {host}:{port} ({problem}); is another server running there? Pick one with --port")
    engine = open_engine(index, model, create=create)
    engine.encoder  # noqa: B018 - load the model now: a bad one fails here, not on the first request
    settings = ApiSettings(max_body_bytes=int(max_body_mb * (1 << 20)), shard_timeout_s=shard_timeout,
                           cors_origins=list(cors_origin), rate_limit=rate_limit,
                           root=None if absolute_paths else root, otel=otel)
    auth = ("on" + (" (and a read-only key)" if settings.read_key else "") if settings.api_key or settings.read_key
            else f"off (set {API_KEY_ENV} to require a key)")
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
        fail(f"{path} is not a sharded index; serve --ray serves sharded indexes (split one with "
              f"`lfm2-search shard --shards N --index {index or 'default'}`), or drop --ray")
    api = {"max_body_bytes": int(max_body_mb * (1 << 20)), "shard_timeout_s": shard_timeout}
    if os.environ.get(API_KEY_ENV):
        api["api_key"] = os.environ[API_KEY_ENV]  # the replicas' environment is the cluster's, not ours
    serving.run(path, host, port, address, replicas, model, api)
    err.print(f"serving {path} on Ray Serve at http://{host}:{port} (one deployment per shard, {replicas} "
              f"replica(s) each; /health lists them)")
    if notice := ray_ports_notice(host, address):
        err.print(notice)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    from ray import serve

    serve.shutdown()


LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
# --host on loopback asks for a server this machine alone reaches; a local Ray instance would break
# that silently (ray_ports_notice), so it starts only when the user says so.
LOCAL_RAY_REFUSED = (
    "--host {host} asks for a server only this machine reaches, but a local Ray instance opens its control "
    "ports (GCS, raylet, workers) on every interface whatever it is told (Ray 2.60; "
    "docs/distributed.md#rays-own-ports). Pass --ray-open-ports to start it anyway (Ray's token authentication "
    "guards those ports), --ray-address ADDRESS to use a Ray cluster you run and secure, or --host 0.0.0.0 if "
    "every interface is meant.")


def ray_ports_notice(host: str, address: str | None) -> str | None:
    """What a user who asked for a loopback-only server must know of the local Ray instance it
    starts: Ray (2.60, the newest) binds its GCS, raylet and worker ports to every interface
    whatever node address it is given (measured: `_node_ip_address="127.0.0.1"` changes nothing;
    upstream PR ray-project/ray#59852), so only the API port follows --host. Ray's token
    authentication, on by default, is what guards them; a joined cluster is its owner's to secure."""
    if address is not None or host not in LOOPBACK_HOSTS:
        return None
    return (f"note: the API listens on {host} only, but the local Ray instance's own ports (GCS, raylet, workers) "
            f"listen on every interface; {ray_guard()}. Firewall them on a shared network "
            "(docs/distributed.md#rays-own-ports).")


@app.command("mcp")
@errors_are_answers
def mcp_command(
    index: str = typer.Option(None, "--index", "-i", help=INDEX_HELP),
    model: str = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    http: bool = typer.Option(False, "--http", help="Serve over streamable HTTP (at /mcp) instead of stdio."),
    host: str = typer.Option("127.0.0.1", help="With --http: interface to listen on."),
    port: int = typer.Option(8001, help="With --http: TCP port."),
    create: bool = typer.Option(False, "--create", help="Create the index if it does not exist."),
    root: str = typer.Option(".", "--root", metavar="DIR", help=ROOT_HELP),
    absolute_paths: bool = typer.Option(False, "--absolute-paths", help=ABSOLUTE_PATHS_HELP),
) -> None:
    """Serve an index to AI agents over MCP: tools search, add_documents, delete_documents, index_info.

    Over stdio by default (what an agent launches: give it this command line); --http serves
    streamable HTTP at http://HOST:PORT/mcp, behind LFM2_SEARCH_API_KEY when it is set.

    Example (an agent's config): {"command": "lfm2-search", "args": ["mcp", "--index", "notes"]}
    """
    from lfm2_retrieval.api import API_KEY_ENV
    from lfm2_retrieval.client import LocalClient
    from lfm2_retrieval.mcp_server import build_server, serve_http

    server = build_server(LocalClient(open_engine(index, model, create=create),
                                      root=None if absolute_paths else root))
    if http:
        if (problem := cannot_listen(host, port)) is not None:
            fail(f"cannot listen on {host}:{port} ({problem}); pick another with --port")
        api_key = os.environ.get(API_KEY_ENV) or None
        auth = "on" if api_key else f"off (set {API_KEY_ENV} to require a key)"
        err.print(f"MCP over streamable HTTP on http://{host}:{port}/mcp  auth: {auth}")
        serve_http(server, host, port, api_key)
    else:
        server.run("stdio")
