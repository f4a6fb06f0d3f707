"""The API under more concurrent requests than it has threads and database connections:
every request is answered (no pool deadlock), and a request that finds no connection is a
503 problem with Retry-After, never a 500."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api import deps
from api.config import Settings
from api.main import create_app
from api.store.db import BACKGROUND_CONNECTIONS, DEFAULT_REQUEST_SESSIONS, Database
from tests.api.conftest import LocalService
from tests.api.harness import make_key

# More requests at once than the API's worker threads (40) and its pool (25).
CONCURRENT = 100


async def _flood(base_url: str, key: str, paths: list[str]) -> list[int]:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=CONCURRENT)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=120,
                                 limits=limits) as client:
        answers = await asyncio.gather(*(client.get(p) for p in paths))
    return [a.status_code for a in answers]


def test_more_concurrent_requests_than_threads_and_connections_are_all_answered(
        local_service: LocalService) -> None:
    assert CONCURRENT > 40 and CONCURRENT > DEFAULT_REQUEST_SESSIONS + BACKGROUND_CONNECTIONS
    # Each request reads the tenant in one worker thread and the job list in another: the
    # sessions of waiting requests must not hold every connection.
    paths = ["/v1/jobs", "/v1/jobs/no-such-job"] * (CONCURRENT // 2)
    statuses = asyncio.run(_flood(local_service.server.url, local_service.keys["acme"], paths))
    assert statuses == [200, 404] * (CONCURRENT // 2)


def test_no_free_database_connection_is_a_503_problem_with_retry_after(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'territory.db'}"
    key = make_key(url, "acme")
    app = create_app(Settings(DATABASE_URL=url))
    app.state.db.dispose()
    app.state.db = db = Database(url, request_sessions=1, pool_timeout=0.2)
    headers = {"Authorization": f"Bearer {key}"}
    client = TestClient(app)  # no lifespan: listing jobs needs no executor
    held = [db.engine.connect() for _ in range(1 + BACKGROUND_CONNECTIONS)]  # the whole pool
    try:
        answer = client.get("/v1/jobs", headers=headers)
    finally:
        for connection in held:
            connection.close()
    assert answer.status_code == 503
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.headers["retry-after"] == "2"
    assert answer.json()["status"] == 503 and "busy" in answer.json()["detail"]
    assert answer.json()["type"].endswith("/unavailable")
    # With its connections back, the same server answers the same request.
    again = client.get("/v1/jobs", headers=headers)
    assert again.status_code == 200 and again.json()["count"] == 0
    db.dispose()


def test_a_request_that_waits_too_long_for_its_turn_is_a_503(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deps, "SESSION_WAIT_SECONDS", 0.3)
    url = f"sqlite:///{tmp_path / 'territory.db'}"
    key = make_key(url, "acme")
    app = create_app(Settings(DATABASE_URL=url))
    app.state.db.dispose()
    app.state.db = db = Database(url, request_sessions=1, pool_timeout=3)

    async def two_requests() -> tuple[httpx.Response, httpx.Response]:
        # One event loop, as in the server (no lifespan: listing jobs needs no executor).
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api",
                                     headers={"Authorization": f"Bearer {key}"}) as client:
            first = asyncio.create_task(client.get("/v1/jobs"))
            await asyncio.sleep(0.5)  # ordering only: the first request is in before
            second = await client.get("/v1/jobs")
            return await first, second

    held = [db.engine.connect() for _ in range(1 + BACKGROUND_CONNECTIONS)]  # the whole pool
    try:
        # The first request takes the only turn and waits for a connection; the second
        # waits for the turn, on the event loop, and gives up first.
        first, second = asyncio.run(two_requests())
    finally:
        for connection in held:
            connection.close()
    assert second.status_code == 503 and second.headers["retry-after"] == "2"
    assert "no database session free" in second.json()["detail"]
    assert first.status_code == 503
    assert "no database connection free" in first.json()["detail"]
    assert TestClient(app).get("/v1/jobs", headers={"Authorization": f"Bearer {key}"}
                               ).status_code == 200
    db.dispose()
