"""Fixtures of the service tests: one API server on SQLite with the local executor, shared
by the tests of a session, and two tenants with their keys."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.harness import ApiServer, make_key, regional_records, service_env

# Small limits, so the limit tests need no big payloads; us-regional (372 accounts) fits.
LIMITS = {"MAX_ACCOUNTS": 1_000, "MAX_REQUEST_BYTES": 3_000_000, "MAX_BATCH_SCENARIOS": 5,
          "MAX_TIME_LIMIT": 600}
# Fast durability clocks: heartbeats every 0.5 s, silent for 5 s means dead.
CLOCKS = {"JOB_HEARTBEAT_SECONDS": 0.5, "JOB_STALE_SECONDS": 5, "RECOVERY_INTERVAL_SECONDS": 1}


@dataclass
class LocalService:
    server: ApiServer
    database_url: str
    keys: dict[str, str]

    def client(self, tenant: str) -> httpx.Client:
        return self.server.client(self.keys[tenant])


def local_env(database_url: str, **extra: object) -> dict[str, str]:
    settings = {"DATABASE_URL": database_url, "EXECUTOR": "local", "LOCAL_WORKERS": 2,
                **LIMITS, **CLOCKS, **extra}
    return service_env(**settings)


@pytest.fixture(scope="session")
def regional() -> dict[str, list[dict[str, Any]]]:
    return regional_records()


@pytest.fixture(scope="session")
def local_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalService]:
    folder: Path = tmp_path_factory.mktemp("local-service")
    url = f"sqlite:///{folder / 'territory.db'}"
    keys = {tenant: make_key(url, tenant) for tenant in ("acme", "globex")}
    server = ApiServer(local_env(url), folder)
    server.start()
    try:
        yield LocalService(server, url, keys)
    finally:
        server.stop()


@pytest.fixture
def acme(local_service: LocalService) -> Iterator[httpx.Client]:
    with local_service.client("acme") as client:
        yield client


@pytest.fixture
def globex(local_service: LocalService) -> Iterator[httpx.Client]:
    with local_service.client("globex") as client:
        yield client
