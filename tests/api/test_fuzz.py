"""Schema-driven fuzzing of the HTTP API with schemathesis.

A real server (its own SQLite file, the local executor) is started once; schemathesis reads
its OpenAPI document and sends generated requests (valid and invalid) to every operation,
authenticated with a real key. Every answer must be free of 5xx, conform to the documented
status codes, content types and schemas, and every error must be application/problem+json.

Bounded: a fixed number of examples per operation, derandomized (the same cases on every run),
no example database, and a server whose MAX_TIME_LIMIT is a few seconds so no generated job
can ask for a long solve.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case

from api.config import Settings
from api.main import create_app
from tests.api.conftest import local_env
from tests.api.harness import ApiServer, make_key
from tests.api.services import fresh_postgres_database

PROBLEM = "application/problem+json"
EXAMPLES = 10  # per operation and generation mode


@contextlib.contextmanager
def _database(kind: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'territory.db'}"
    else:
        with fresh_postgres_database("territory_fuzz") as url:
            yield url


@pytest.fixture(scope="module", params=[
    "sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def fuzz_server(request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, str]]:
    """A server of its own (the fuzzer's jobs and datasets touch no other test's tenant) on
    SQLite, and with `services` on PostgreSQL too (it refuses text SQLite takes, e.g. NUL)."""
    folder: Path = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    with _database(request.param, folder) as url:
        key = make_key(url, "fuzz")
        # One worker and a 5 s cap on solves: whatever job the fuzzer submits is short.
        server = ApiServer(local_env(url, LOCAL_WORKERS=1, MAX_TIME_LIMIT=5), folder)
        server.start()
        try:
            yield server, key
        finally:
            server.stop()


def _openapi() -> dict[str, Any]:
    """The app's own OpenAPI document, as the server under test will serve it (generating it
    touches no database: the engine connects lazily)."""
    db = Path(tempfile.gettempdir()) / "territory-openapi-unused.db"
    document: dict[str, Any] = create_app(Settings(DATABASE_URL=f"sqlite:///{db}")).openapi()
    return document


schema = schemathesis.openapi.from_dict(_openapi())
# The key is sent with every request (below), so the fuzzer must not think it is testing
# requests without one; unknown query parameters are ignored, as HTTP APIs commonly do.
schema.config.generation.update(max_examples=EXAMPLES, deterministic=True, database="none",
                                with_security_parameters=False, allow_extra_parameters=False)
# "Schema-valid means accepted" does not hold here by design: a job's rows are free-form
# records (the CSV columns) that are validated row by row after the schema, and a 422 with
# field-level issues is the documented answer to bad rows. Every other check stays on.
schema.config.checks.update(excluded_check_names=["positive_data_acceptance"])


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_and_never_fails(case: Case, fuzz_server: tuple[ApiServer, str]) -> None:
    server, key = fuzz_server
    response = case.call_and_validate(base_url=server.url,
                                      headers={"Authorization": f"Bearer {key}"}, timeout=60)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers.get("content-type", [""])[0] == PROBLEM, (
            response.status_code, response.headers, response.text)
