"""Schemathesis: requests generated from the OpenAPI schema, valid and invalid, never get a 5xx,
and every response matches the documented status codes, content type and schema.

Schemathesis' own pytest plugin does not run under pytest 9, so the test drives its Hypothesis
strategies directly, one operation and generation mode at a time.
"""

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is a test extra: run scripts/setup.sh")
from hypothesis import HealthCheck, given, settings  # noqa: E402 - after importorskip: a clear skip without the test extra
from schemathesis import GenerationMode  # noqa: E402 - after importorskip: a clear skip without the test extra
from schemathesis.checks import (content_type_conformance, not_a_server_error,  # noqa: E402 - after importorskip: a clear skip without the test extra
                                 response_schema_conformance, status_code_conformance)

from lfm2_retrieval.api import ApiSettings, create_app  # noqa: E402 - after importorskip: a clear skip without the test extra
from lfm2_retrieval.engine import SearchEngine, TextDocument  # noqa: E402 - after importorskip: a clear skip without the test extra

pytestmark = pytest.mark.slow  # generates requests from the OpenAPI schema (schemathesis)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = int(__import__("os").environ.get("SCHEMATHESIS_EXAMPLES", 40))


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory, pylate_tiny_dir):
    engine = SearchEngine.open(tmp_path_factory.mktemp("schema") / "idx", model=str(pylate_tiny_dir), create=True)
    engine.upsert([TextDocument("seed", "A document so that searches have something to find.", {"lang": "en"})])
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(engine, ApiSettings(api_key=None)))


OPERATIONS = [("POST", "/search"), ("POST", "/documents"), ("DELETE", "/documents/{doc_id}"), ("GET", "/health")]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
@pytest.mark.parametrize("method, path", OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_api_conforms_to_its_schema(api_schema, method, path, mode):
    if path == "/health" and mode is GenerationMode.NEGATIVE:
        pytest.skip("GET /health takes no input, so there is no invalid request to generate")
    operation = api_schema[path][method]
    seen = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case):
        response = case.call_and_validate(checks=CHECKS)
        seen.append(response.status_code)

    run()
    assert seen and all(code < 500 for code in seen)
    if mode is GenerationMode.POSITIVE and path != "/documents/{doc_id}":
        assert 200 in seen  # valid requests are accepted, not just refused
