"""Security properties, checked on the code path and on a real server:

- a presented key is checked by comparing SHA-256 digests with hmac.compare_digest (constant
  time), and nothing of the secret is stored (the whole database file is searched);
- `territory keys revoke` takes effect on the very next request of a running server (the key
  is looked up on every request, nothing is cached);
- neither a key nor uploaded or submitted data reach the logs, even at DEBUG;
- the route table is classified completely: every /v1 route needs a tenant's key (a
  structural check of its dependencies), id routes are walked in test_tenants, every list
  route is walked here, and a route nobody classified fails the test.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastapi.routing
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import text
from starlette.routing import Mount

from api import auth
from api.config import Settings
from api.deps import get_tenant
from api.main import create_app
from api.store.db import Database
from api.store.migrate import upgrade
from tests.api.conftest import LocalService, local_env
from tests.api.harness import (
    QUICK_SCENARIO,
    REPO,
    ApiServer,
    make_key,
    regional_file,
    service_env,
    wait_for_job,
)
from tests.api.test_tenants import ID_PARAMETERS, PUBLIC_PARAMETERS, path_parameters


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'keys.db'}")
    upgrade(database)
    yield database
    database.dispose()


def test_keys_are_checked_by_digest_in_constant_time(db: Database,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    with db.session() as session:
        issued = auth.create_key(session=session, tenant_name="acme")
    compared: list[tuple[object, object]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    digest = hashlib.sha256(issued.key.encode()).hexdigest()
    forged = f"trk_{issued.prefix}_{'A' * 43}"
    with db.session() as session:
        tenant = auth.tenant_for_key(session=session, key=issued.key)
        assert tenant is not None and tenant.name == "acme"
        assert auth.tenant_for_key(session=session, key=forged) is None
    # Both checks went through compare_digest, on digests only: never the key itself.
    assert compared == [(digest, digest),
                        (digest, hashlib.sha256(forged.encode()).hexdigest())]
    # An unknown prefix never reaches a comparison (nothing to compare with), and a
    # malformed key is refused before any database work.
    with db.session() as session:
        assert auth.tenant_for_key(session=session, key="trk_000000000000_x") is None
        assert auth.tenant_for_key(session=session, key="not-a-key") is None
    assert len(compared) == 2


def test_no_part_of_a_secret_is_stored(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'stored.db'}"
    keys = [make_key(url, tenant) for tenant in ("acme", "acme", "globex")]
    db = Database(url)
    with db.sessions() as session:
        rows = session.execute(text("SELECT prefix, secret_hash FROM api_keys")).all()
    db.dispose()
    assert sorted(r.secret_hash for r in rows) == sorted(
        hashlib.sha256(k.encode()).hexdigest() for k in keys)
    raw = (tmp_path / "stored.db").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("stored.db-*"))  # WAL and shared memory too
    for key in keys:
        secret = key.split("_", 2)[2]
        assert secret.encode() not in raw and key.encode() not in raw


def test_revoking_a_key_refuses_its_very_next_request(local_service: LocalService) -> None:
    key = make_key(local_service.database_url, "initech")
    other = make_key(local_service.database_url, "initech")
    with local_service.server.client(key) as client, \
            local_service.server.client(other) as colleague:
        # A warm keep-alive connection and a run of successful requests: nothing to cache.
        for _ in range(5):
            assert client.get("/v1/jobs").status_code == 200
        revoked = subprocess.run(
            [sys.executable, "-m", "tests.api.cli", "keys", "revoke", key.split("_")[1]],
            cwd=REPO, env=service_env(DATABASE_URL=local_service.database_url),
            capture_output=True, text=True, timeout=120, check=False)
        assert revoked.returncode == 0, revoked.stderr
        refused = client.get("/v1/jobs")
        assert refused.status_code == 401
        assert refused.json()["detail"] == "unknown or revoked API key"
        assert client.post("/v1/jobs", json={}).status_code == 401
        assert colleague.get("/v1/jobs").status_code == 200  # only that key


@pytest.fixture(scope="module")
def debug_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, str]]:
    """A server logging at DEBUG, whose log files the test reads."""
    folder = tmp_path_factory.mktemp("logs")
    url = f"sqlite:///{folder / 'logs.db'}"
    key = make_key(url, "acme")
    server = ApiServer(local_env(url, LOCAL_WORKERS=1, LOG_LEVEL="DEBUG"), folder)
    server.start()
    try:
        yield server, key
    finally:
        server.stop()


def with_marker(path: Path, column: str, marker: str) -> bytes:
    """A CSV file with `marker` written into every cell of one text column."""
    lines = path.read_text().splitlines()
    index = lines[0].split(",").index(column)
    out = [lines[0]]
    for n, line in enumerate(lines[1:]):
        cells = line.split(",")
        cells[index] = f"{marker}{n}"
        out.append(",".join(cells))
    return ("\n".join(out) + "\n").encode()


def test_no_key_and_no_uploaded_data_in_the_logs(debug_server: tuple[ApiServer, str],
                                                 regional: dict[str, Any]) -> None:
    server, key = debug_server
    marker = f"MARK{uuid.uuid4().hex[:10]}"
    forged = f"trk_{key.split('_')[1]}_{marker}forged"
    with server.client(key) as client:
        files = {"accounts": ("accounts.csv", with_marker(regional_file("accounts.csv"),
                                                          "account_id", marker)),
                 "reps": ("reps.csv", regional_file("reps.csv").read_bytes())}
        dataset = client.post("/v1/datasets", files=files, data={"name": marker})
        assert dataset.status_code == 201, dataset.text
        inline = {name: [dict(row) for row in rows] for name, rows in regional.items()}
        for n, row in enumerate(inline["accounts"]):
            row["account_id"] = f"{marker}i{n}"
        jobs = [client.post("/v1/jobs", json={"data": inline, "scenario": QUICK_SCENARIO,
                                              "label": marker}),
                client.post("/v1/jobs", json={"dataset_id": dataset.json()["id"],
                                              "scenario": QUICK_SCENARIO})]
        for job in jobs:
            assert job.status_code == 202, job.text
            assert wait_for_job(client, job.json()["id"])["state"] == "succeeded"
            assert marker in client.get(f"/v1/jobs/{job.json()['id']}/result.csv").text
        # Rejected input (the bad cell is the marker) and a forged key that names a real
        # prefix: the answers may quote the input to its sender, the logs may not.
        bad = [dict(r) for r in inline["accounts"]]
        bad[0]["workload"] = marker
        invalid = client.post("/v1/jobs", json={"data": {"accounts": bad,
                                                         "reps": inline["reps"]}})
        assert invalid.status_code == 422
    with server.client(forged) as intruder:
        assert intruder.get("/v1/jobs").status_code == 401
    logs = server.errors() + server.output()
    assert '"level": "DEBUG"' in logs or '"level": "INFO"' in logs  # the logs were written
    assert marker not in logs
    secret = key.split("_", 2)[2]  # the secret itself may hold "_" (token_urlsafe)
    assert key not in logs and secret not in logs


# Every route of the app is one of these; a new route must be added to one, or this fails.
OPERATIONS_ROUTES = {"/healthz", "/readyz", "/metrics"}  # no key by design: no tenant data
DOCS_ROUTES = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
PAGE_ROUTES = {"/"}  # the web page itself; it calls /v1 with the user's key
STATIC_MOUNTS = {"/static", "/static/leaflet"}


@dataclass(frozen=True)
class RouteInfo:
    path: str
    methods: frozenset[str]
    original: Any  # the route as declared: APIRoute, Route, Mount
    dependant: Any  # FastAPI's dependency tree of an APIRoute (with its routers'), else None


def app_routes() -> list[RouteInfo]:
    """Every route of the app, with the path and dependencies it has once mounted (newer
    FastAPI keeps included routers lazily; iter_route_contexts flattens them)."""
    unused = Path(tempfile.gettempdir()) / "territory-route-walk.db"
    routes = create_app(Settings(DATABASE_URL=f"sqlite:///{unused}")).routes
    walk = getattr(fastapi.routing, "iter_route_contexts", None)
    contexts: list[Any] = list(walk(routes)) if walk is not None else list(routes)
    return [RouteInfo(path=getattr(c, "path", ""), methods=frozenset(c.methods or ()),
                      original=getattr(c, "original_route", c),
                      dependant=getattr(c, "dependant", None)) for c in contexts]


def depends_on(dependant: Any, call: Any) -> bool:
    return any(d.call is call or depends_on(d, call) for d in dependant.dependencies)


def test_every_route_is_classified_and_every_v1_route_needs_a_tenant_key() -> None:
    unclassified = []
    for route in app_routes():
        if isinstance(route.original, Mount):
            if route.path not in STATIC_MOUNTS:
                unclassified.append(route.path)
        elif route.path.startswith("/v1/"):
            assert isinstance(route.original, APIRoute), route.path
            assert depends_on(route.dependant, get_tenant), f"{route.path} takes no tenant key"
            unknown = path_parameters(route.path) - ID_PARAMETERS.keys() - PUBLIC_PARAMETERS
            assert not unknown, f"{route.path}: parameter(s) {unknown} not in the tenant walk"
        elif route.path in OPERATIONS_ROUTES | DOCS_ROUTES | PAGE_ROUTES:
            assert not path_parameters(route.path)
        else:
            unclassified.append(route.path)
    assert not unclassified, f"routes nobody classified for tenant isolation: {unclassified}"
    # The walk saw the whole table, not just what the first level of app.routes shows.
    assert sum(r.path.startswith("/v1/") for r in app_routes()) >= 15


def list_routes() -> list[str]:
    return sorted({route.path for route in app_routes()
                   if route.path.startswith("/v1/") and "GET" in route.methods
                   and not path_parameters(route.path)})


def test_no_list_route_shows_another_tenants_resources(local_service: LocalService) -> None:
    with local_service.client("acme") as acme, local_service.client("globex") as globex:
        files = {"accounts": ("accounts.csv", regional_file("accounts.csv").read_bytes()),
                 "reps": ("reps.csv", regional_file("reps.csv").read_bytes())}
        dataset = acme.post("/v1/datasets", files=files).json()["id"]
        batch = acme.post("/v1/batches", json={"dataset_id": dataset,
                                               "scenarios": [{"scenario": QUICK_SCENARIO}]})
        assert batch.status_code == 202, batch.text
        theirs = {dataset, batch.json()["id"],
                  *(j["id"] for j in batch.json().get("jobs", []))}
        theirs |= {j["id"] for j in acme.get("/v1/jobs", params={"limit": 500}).json()["data"]}
        routes = list_routes()
        assert {"/v1/jobs", "/v1/batches", "/v1/datasets", "/v1/bundled"} <= set(routes)
        for path in routes:
            answer = globex.get(path, params={"limit": 500})
            assert answer.status_code == 200, (path, answer.text)
            leaked = {i for i in theirs if i in answer.text}
            assert not leaked, (path, leaked)
            # The same listing for acme does show them (the walk is not vacuous).
            if path != "/v1/bundled":
                assert re.search("|".join(theirs), acme.get(path, params={"limit": 500}).text)
