"""Serving a sharded index on Ray Serve: `lfm2-search serve --ray [--ray-address ADDRESS] --index big`.

    app = build_application("indexes/big", replicas=2)    # one deployment per shard, an ingress
    serve.run(app, name="lfm2-search", route_prefix="/")

Deployments:
- `shard-NNN` (ShardSearcher), one per shard, `replicas` each: the shard's index opened in the
  replica; it runs the semantic and lexical searches of its shard and its BM25 statistics.
  Every call names the shard commit of the sharded commit the ingress reads, and a replica
  behind it refreshes first, so the shards of one answer are those of one sharded commit.
- `ingress`: the same HTTP API as `lfm2-search serve` (api/app.py, built in the replica): it
  encodes queries (concurrent requests share encoder batches), fans out to the shard
  deployments through their handles, merges their top-k and fuses. A shard that does not answer
  within `shard_timeout_s` (a replica that died, a node that is gone) is a 503
  shard_unavailable, or, when the request says allow_partial, the other shards' results flagged
  partial. /health lists the shards, their replicas and commits.

Writes (POST /documents, DELETE) are made by the ingress, through the sharded index's
two-phase commit on the index folder: the shard replicas and the ingress must see the same
folder (one machine, or a shared filesystem), as Lucene's readers share an index directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InvalidRequestError, ShardUnavailableError
from ..index import MultiVectorIndex
from ..index.contract import Capabilities
from .encoding import connect

APP_NAME = "lfm2-search"
INGRESS = "ingress"


class ShardSearcher:
    """One shard, opened in a Ray Serve replica (the body of the `shard-NNN` deployments)."""

    def __init__(self, path: str) -> None:
        self.index = MultiVectorIndex(path)

    def _at(self, commit: int) -> MultiVectorIndex:
        if self.index.commit < commit:
            self.index.refresh()
        return self.index

    def search(self, commit: int, queries, k: int, filter, exhaustive: bool, params):
        return self._at(commit).search(queries, k, filter, exhaustive, params)

    def search_lexical(self, commit: int, texts, k: int, filter, collections):
        return self._at(commit).search_lexical(texts, k, filter, collections)

    def search_dense(self, commit: int, queries, k: int, filter):
        return self._at(commit).search_dense(queries, k, filter)

    def lexical_statistics(self, commit: int, texts) -> list:
        index = self._at(commit)
        return [index.lexical_statistics(t) for t in texts]

    def health(self) -> dict[str, Any]:
        self.index.refresh()
        return {"chunks": len(self.index), "commit": self.index.commit}


class RemoteShard:
    """Where the ingress sends a shard's searches (a ShardSearch, index/contract.py): its
    deployment, through `handle`. The shard's folder stays the ingress's own MultiVectorIndex
    (`local`) for what is cheap and local: the manifest, metadata, writes."""

    capabilities = Capabilities()  # its searches run in its own replicas, which make their own query plans

    def __init__(self, local: MultiVectorIndex, name: str, handle, timeout_s: float) -> None:
        self.local, self.name, self.handle, self.timeout_s = local, name, handle, timeout_s

    def _call(self, method: str, *args):
        try:
            return getattr(self.handle, method).remote(*args).result(timeout_s=self.timeout_s)
        except Exception as exc:
            if _is_unavailable(exc):
                raise ShardUnavailableError([self.name], _why(exc, self.timeout_s)) from None
            raise

    # `snapshot`: the sharded reader's view of this shard; its commit is what the replica must be at.
    def search(self, queries, k=10, filter=None, exhaustive=False, params=None, plans=None, snapshot=None):
        return self._call("search", _commit(self.local, snapshot), queries, k, filter, exhaustive, params)

    def search_lexical(self, queries, k=10, filter=None, collections=None, snapshot=None):
        return self._call("search_lexical", _commit(self.local, snapshot), list(queries), k, filter, collections)

    def search_dense(self, queries, k=10, filter=None, snapshot=None):
        return self._call("search_dense", _commit(self.local, snapshot), queries, k, filter)

    def lexical_statistics(self, query: str, snapshot=None):
        return self._call("lexical_statistics", _commit(self.local, snapshot), [query])[0]

    def health(self) -> dict[str, Any]:
        facts = self._call("health")
        return {**facts, "replicas": _running_replicas(self.name)}


def _commit(shard: MultiVectorIndex, snapshot) -> int:
    return shard.commit if snapshot is None else snapshot.commit


def _is_unavailable(exc: BaseException) -> bool:
    """Errors that say the shard's server is gone or late, not that the request was wrong."""
    import ray.exceptions
    from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

    return isinstance(exc, (TimeoutError, ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError,
                            ray.exceptions.ActorUnavailableError, ray.exceptions.WorkerCrashedError,
                            ray.exceptions.NodeDiedError, DeploymentUnavailableError, BackPressureError))


def _why(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"did not answer within {timeout_s:g} s"
    return f"is not serving ({type(exc).__name__})"


def _running_replicas(deployment: str) -> int | None:
    try:
        from ray import serve

        app = serve.status().applications.get(APP_NAME)
        status = app.deployments.get(deployment) if app else None
        return None if status is None else int(status.replica_states.get("RUNNING", 0))
    except Exception:
        return None


class Ingress:
    """The ingress deployment's body: its ASGI app is the HTTP API, made in the replica (Serve
    calls __serve_build_asgi_app__ after the constructor), over the shards' handles."""

    def __init__(self, index_path: str, shard_names: list[str], model: str | None, api: dict[str, Any],
                 *shard_handles) -> None:
        self.index_path, self.model, self.api = index_path, model, api
        self.handles = dict(zip(shard_names, shard_handles))

    def __serve_build_asgi_app__(self):
        from ..api import ApiSettings, create_app
        from ..engine import SearchEngine
        from ..shards import ShardedIndex

        settings = ApiSettings(**self.api)
        index = ShardedIndex(self.index_path, search_on=lambda shard, name: RemoteShard(
            shard, name, self.handles[name], settings.shard_timeout_s))
        return create_app(SearchEngine(index, model=self.model), settings)


def build_application(index_path: str | Path, replicas: int = 1, model: str | None = None,
                      shard_cpus: float | None = None, ingress_cpus: float | None = None,
                      api: dict[str, Any] | None = None):
    """The Ray Serve application of a sharded index (see the module). shard_cpus, ingress_cpus:
    CPUs reserved per replica; None: 1, or less so that every replica fits the cluster's CPUs
    (Serve would otherwise wait forever for room, e.g. 4 shards x 2 replicas on 2 cores)."""
    import ray
    from ray import serve

    from ..shards import ShardMap, is_sharded

    index_path = Path(index_path).resolve()
    if not is_sharded(index_path):
        raise InvalidRequestError(f"{index_path} is not a sharded index: serve --ray serves sharded indexes "
                                  "(make one with `lfm2-search shard`)")
    shard_map = ShardMap.read(index_path)
    fit = min(1.0, 0.9 * float(ray.cluster_resources().get("CPU", 1.0)) / (shard_map.n_shards * replicas + 1))
    shard_cpus = fit if shard_cpus is None else shard_cpus
    ingress_cpus = fit if ingress_cpus is None else ingress_cpus
    shard_deployment = serve.deployment(ShardSearcher, ray_actor_options={"num_cpus": shard_cpus},
                                        health_check_period_s=2, health_check_timeout_s=10)
    shards = [shard_deployment.options(name=name, num_replicas=replicas).bind(str(index_path / name))
              for name in shard_map.shards]
    ingress = serve.deployment(serve.ingress()(Ingress), name=INGRESS, ray_actor_options={"num_cpus": ingress_cpus})
    return ingress.bind(str(index_path), list(shard_map.shards), model, api or {}, *shards)


def run(index_path: str | Path, host: str = "127.0.0.1", port: int = 8000, address: str | None = None,
        replicas: int = 1, model: str | None = None, api: dict[str, Any] | None = None, **resources):
    """Start (or join) Ray, start Serve's HTTP proxy on host:port, deploy the application;
    returns the ingress handle (serve.shutdown() stops it)."""
    connect(address)
    from ray import serve

    serve.start(http_options={"host": host, "port": port})
    app = build_application(index_path, replicas, model, api=api, **resources)
    return serve.run(app, name=APP_NAME, route_prefix="/")
