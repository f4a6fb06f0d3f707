"""Tenant isolation on every route: another tenant's id answers 404, exactly like an unknown
id; no key (or a revoked one) answers 401. The routes are walked from the OpenAPI schema, so
a route added later is covered without touching this test."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.auth import revoke_key
from api.config import Settings
from api.main import create_app
from api.store.db import Database
from tests.api.conftest import LocalService
from tests.api.harness import QUICK_SCENARIO, make_key, regional_file, wait_for_job

ID_PARAMETERS = {"job_id": "job", "batch_id": "batch", "dataset_id": "dataset"}
# Path parameters naming public things (the bundled data set catalogue), not a tenant's
# resources: there is no other tenant's id to try; the key check still walks those routes.
PUBLIC_PARAMETERS = {"name"}


def versioned_operations() -> list[tuple[str, str]]:
    # The app is only built to read its schema; the database is never opened.
    unused = Path(tempfile.gettempdir()) / "territory-schema-walk.db"
    app = create_app(Settings(DATABASE_URL=f"sqlite:///{unused}"))
    paths: dict[str, Any] = app.openapi()["paths"]
    return [(method.upper(), path) for path, operations in paths.items()
            for method in operations if path.startswith("/v1/")]


OPERATIONS = versioned_operations()


def path_parameters(path: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", path))


@pytest.fixture(scope="module")
def acme_resources(local_service: LocalService) -> dict[str, str]:
    """One dataset, job and batch of tenant acme."""
    with local_service.client("acme") as acme:
        files = {"accounts": ("accounts.csv", regional_file("accounts.csv").read_bytes()),
                 "reps": ("reps.csv", regional_file("reps.csv").read_bytes())}
        dataset = acme.post("/v1/datasets", files=files).json()["id"]
        job = acme.post("/v1/jobs", json={"dataset_id": dataset,
                                          "scenario": QUICK_SCENARIO}).json()["id"]
        batch = acme.post("/v1/batches", json={"dataset_id": dataset,
                                               "scenarios": [{"scenario": QUICK_SCENARIO}]})
        assert wait_for_job(acme, job)["state"] == "succeeded"
        return {"dataset": dataset, "job": job, "batch": batch.json()["id"]}


def test_the_walk_finds_every_resource_route() -> None:
    with_ids = {path for _, path in OPERATIONS if "{" in path}
    assert {"/v1/jobs/{job_id}", "/v1/jobs/{job_id}/result", "/v1/jobs/{job_id}/result.csv",
            "/v1/jobs/{job_id}/cancel", "/v1/batches/{batch_id}",
            "/v1/datasets/{dataset_id}"} <= with_ids
    # A new kind of id must be added to ID_PARAMETERS, or it would escape the walk below.
    for path in with_ids:
        assert path_parameters(path) <= ID_PARAMETERS.keys() | PUBLIC_PARAMETERS, path


@pytest.mark.parametrize(("method", "path"), [
    op for op in OPERATIONS if path_parameters(op[1]) - PUBLIC_PARAMETERS])
def test_other_tenants_ids_are_not_found(method: str, path: str, acme: httpx.Client,
                                         globex: httpx.Client,
                                         acme_resources: dict[str, str]) -> None:
    url = re.sub(r"\{(\w+)\}", lambda m: acme_resources[ID_PARAMETERS[m.group(1)]], path)
    theirs = globex.request(method, url)
    assert theirs.status_code == 404, (url, theirs.text)
    assert theirs.headers["content-type"] == "application/problem+json"
    unknown = globex.request(method, re.sub(r"/[0-9a-f]{32}", "/" + "0" * 32, url))
    assert unknown.status_code == 404
    assert theirs.json()["title"] == unknown.json()["title"]  # indistinguishable
    if method == "DELETE":
        return  # the owner's deletes are tested in test_delete.py, on resources of their own
    mine = acme.request(method, url)
    produced_nothing = mine.status_code == 404 and "not produced" in mine.json()["detail"]
    assert mine.status_code in (200, 202, 409) or produced_nothing, (url, mine.text)


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_every_route_needs_a_key(method: str, path: str,
                                 local_service: LocalService) -> None:
    url = re.sub(r"\{\w+\}", "0" * 32, path)
    for key in (None, "trk_000000000000_forged", "not-a-key"):
        with local_service.server.client(key) as client:
            r = client.request(method, url)
        assert r.status_code == 401, (method, url, key, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["www-authenticate"] == "Bearer"


def test_lists_and_references_stay_within_the_tenant(
        globex: httpx.Client, acme_resources: dict[str, str]) -> None:
    for listing in ("/v1/jobs", "/v1/batches", "/v1/datasets"):
        ids = {item["id"] for item in globex.get(listing, params={"limit": 500}).json()["data"]}
        assert not ids & set(acme_resources.values()), listing
    job = globex.post("/v1/jobs", json={"dataset_id": acme_resources["dataset"]})
    assert job.status_code == 404
    batch = globex.post("/v1/batches", json={"dataset_id": acme_resources["dataset"],
                                             "scenarios": [{"scenario": {}}]})
    assert batch.status_code == 404
    by_batch = globex.get("/v1/jobs", params={"batch_id": acme_resources["batch"]}).json()
    assert by_batch["count"] == 0


def test_a_bundled_import_belongs_to_the_importer(acme: httpx.Client,
                                                   globex: httpx.Client) -> None:
    imported = acme.post("/v1/bundled/us-regional")
    assert imported.status_code == 201, imported.text
    dataset = imported.json()
    assert (dataset["name"], dataset["accounts"], dataset["reps"]) == ("us-regional", 372, 6)
    assert acme.get(f"/v1/datasets/{dataset['id']}").status_code == 200
    assert globex.get(f"/v1/datasets/{dataset['id']}").status_code == 404
    ids = {item["id"] for item in globex.get("/v1/datasets", params={"limit": 500}).json()["data"]}
    assert dataset["id"] not in ids
    unknown = acme.post("/v1/bundled/no-such-data")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    names = {d["name"]: d["importable"] for d in globex.get("/v1/bundled").json()["data"]}
    assert names["us-regional"] is True


def test_a_revoked_key_is_refused(local_service: LocalService) -> None:
    key = make_key(local_service.database_url, "initech")
    with local_service.server.client(key) as client:
        assert client.get("/v1/jobs").status_code == 200
        db = Database(local_service.database_url)
        with db.session() as session:
            assert revoke_key(session=session, key_or_prefix=key.split("_")[1])
        db.dispose()
        assert client.get("/v1/jobs").status_code == 401
