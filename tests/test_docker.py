"""The Dockerfile and compose.yaml: what they copy exists and passes .dockerignore, the commands
they run are ones the CLI parses, the health check asks an endpoint the API has. Where a Docker
daemon answers, the image is built and serves a search; elsewhere (this machine and CI have no
daemon, and no registry but Debian's and PyPI's) that part is skipped, and the step that could
break, pip installing the package into an environment of its own, is tests/test_wheel.py's."""

import fnmatch
import json
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    lines, current = [], ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        if raw.lstrip().startswith("#") or not raw.strip():
            continue
        current += raw.rstrip("\\").strip() + " "
        if not raw.rstrip().endswith("\\"):
            lines.append(current.strip())
            current = ""
    return [(line.split(" ", 1)[0].upper(), line.split(" ", 1)[1]) for line in lines]


def parses(args: list[str]) -> None:
    """The CLI parses `lfm2-search ARGS` (its options exist, their values convert) without running it."""
    import typer.main

    from lfm2_retrieval.cli import app

    group = typer.main.get_command(app)
    with group.make_context("lfm2-search", list(args), resilient_parsing=False) as ctx:
        command = group.get_command(ctx, args[0])
        assert command is not None, args[0]
        command.make_context(args[0], list(args[1:]), parent=ctx)


def test_what_the_image_copies_exists_and_passes_dockerignore():
    ignore = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    kept = [p[1:] for p in ignore if p.startswith("!")]
    for name, args in instructions():
        if name == "COPY":
            *sources, _ = args.split()
            for source in sources:
                assert (ROOT / source).exists(), source
                assert any(fnmatch.fnmatch(source, k) for k in kept), f"{source} is left out by .dockerignore"
    assert ".venv" not in kept and "runs" not in kept  # the build context stays small


def test_the_commands_it_runs_are_ones_the_cli_knows():
    found = dict(instructions())
    entry, command = json.loads(found["ENTRYPOINT"]), json.loads(found["CMD"])
    assert entry == ["lfm2-search"]
    parses(command)
    assert command[command.index("--host") + 1] == "0.0.0.0"  # reachable through the published port
    health = found["HEALTHCHECK"]
    assert "/health" in health
    from lfm2_retrieval.api.routes.health import router

    assert "/health" in {route.path for route in router.routes}
    # The indexing commands the files' comments give users (the image's name, then its arguments).
    given = [shlex.split(line.split("lfm2-search index", 1)[1]) for name in ("Dockerfile", "compose.yaml")
             for line in (ROOT / name).read_text().splitlines() if "lfm2-search index" in line]
    assert len(given) == 2
    for words in given:
        parses(["index", *words])


def test_compose_serves_the_image_on_the_loopback_with_a_data_volume():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    service = compose["services"]["lfm2-search"]
    assert service["build"] == "."
    assert all(port.startswith("127.0.0.1:") for port in service["ports"])  # not every interface by default
    assert any(v.startswith("data:/data") for v in service["volumes"]) and "data" in compose["volumes"]


@pytest.mark.slow
def test_the_image_builds_and_answers_a_search(tmp_path):
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "info"], capture_output=True).returncode != 0:
        pytest.skip("no Docker daemon here: the Dockerfile's parts are checked above and by tests/test_wheel.py")
    tag = "lfm2-search-test"
    subprocess.run([docker, "build", "-t", tag, str(ROOT)], check=True, capture_output=True, timeout=1800)
    name = f"lfm2-search-test-{int(time.time())}"
    subprocess.run([docker, "run", "-d", "--name", name, "-p", "127.0.0.1:18000:8000", tag], check=True)
    try:
        import httpx

        deadline = time.time() + 120
        while True:
            try:
                if httpx.get("http://127.0.0.1:18000/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline, "the container never answered /health"
            time.sleep(1)
        httpx.post("http://127.0.0.1:18000/documents", json={"documents": [
            {"id": "ops", "text": "Rotate the signing keys every month."}]}, timeout=60).raise_for_status()
        hits = httpx.post("http://127.0.0.1:18000/search", json={"query": "signing keys"}, timeout=60).json()
        assert hits["results"][0]["hits"][0]["id"] == "ops#0"
    finally:
        subprocess.run([docker, "rm", "-f", name], capture_output=True)
