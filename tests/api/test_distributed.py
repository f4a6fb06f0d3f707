"""The celery executor against the REAL PostgreSQL and Redis on 127.0.0.1 and real
`territory worker` processes: throughput, workers killed mid-solve, API restarts.

The session creates its own PostgreSQL database (dropped at the end) from
TEST_POSTGRES_URL, and uses the Redis database of TEST_REDIS_URL (emptied before and after).
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest

from tests.api.conftest import CLOCKS
from tests.api.harness import (
    MEDIUM_SCENARIO,
    QUICK_SCENARIO,
    ServiceProcess,
    free_port,
    make_key,
    regional_file,
    service_env,
    wait_for,
    wait_for_job,
)
from tests.api.services import Cluster, empty_redis_database, fresh_postgres_database

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A fresh database on the real server, dropped afterwards."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with empty_redis_database() as url:
        yield url


@pytest.fixture(scope="module")
def cluster(postgres_url: str, redis_url: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    env = service_env(DATABASE_URL=postgres_url, EXECUTOR="celery", BROKER_URL=redis_url,
                      CELERY_QUEUE=f"territory-test-{uuid.uuid4().hex[:8]}", **CLOCKS)
    cluster = Cluster(postgres_url, env, make_key(postgres_url, "acme"),
                      tmp_path_factory.mktemp("distributed"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def api(cluster: Cluster) -> Iterator[httpx.Client]:
    cluster.ensure_workers(2)
    server = cluster.start_api()
    try:
        with server.client(cluster.key) as client:
            yield client
    finally:
        server.stop()


def test_twenty_jobs_all_complete(cluster: Cluster, api: httpx.Client,
                                  regional: dict[str, Any]) -> None:
    assert api.get("/readyz").json()["checks"]["executor"] == "ok (celery)"
    files = {"accounts": ("accounts.csv", regional_file("accounts.csv").read_bytes()),
             "reps": ("reps.csv", regional_file("reps.csv").read_bytes())}
    dataset = api.post("/v1/datasets", files=files).json()["id"]
    ids = []
    for i in range(20):
        body = {"dataset_id": dataset} if i % 2 else {"data": regional}
        r = api.post("/v1/jobs", json={**body, "scenario": QUICK_SCENARIO, "label": str(i)})
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    for job_id in ids:
        done = wait_for_job(api, job_id, timeout=240)
        assert done["state"] == "succeeded" and done["attempts"] == 1, done
    workers = {cluster.job(job_id).worker for job_id in ids}
    assert len(workers) >= 2  # both worker processes took jobs
    assert api.get("/v1/jobs", params={"limit": 1}).json()["count"] >= 20


def _running_worker_pid(cluster: Cluster, api: httpx.Client, job_id: str) -> int:
    wait_for_job(api, job_id, states=("running",), timeout=90)
    worker = cluster.job(job_id).worker or ""
    return int(worker.rpartition(":")[2])


def test_a_pool_process_killed_mid_solve_is_rerun(cluster: Cluster, api: httpx.Client,
                                                        regional: dict[str, Any]) -> None:
    job = api.post("/v1/jobs", json={"data": regional, "scenario": MEDIUM_SCENARIO}).json()
    os.kill(_running_worker_pid(cluster, api, job["id"]), signal.SIGKILL)
    done = wait_for_job(api, job["id"], timeout=180)
    assert done["state"] == "succeeded", done
    assert done["attempts"] == 2


def _worker_running(cluster: Cluster, pool_pid: int) -> ServiceProcess:
    return next(w for w in cluster.workers
                if w.alive() and pool_pid in {c.pid for c in
                                              psutil.Process(w.pid).children(recursive=True)})


def test_a_whole_worker_killed_mid_solve_is_recovered(cluster: Cluster, api: httpx.Client,
                                                      regional: dict[str, Any]) -> None:
    job = api.post("/v1/jobs", json={"data": regional, "scenario": MEDIUM_SCENARIO}).json()
    pool_pid = _running_worker_pid(cluster, api, job["id"])
    owner = _worker_running(cluster, pool_pid)
    # The worker and its pool go at once; the message stays unacknowledged in Redis.
    os.killpg(owner.pid, signal.SIGKILL)
    assert owner.process is not None
    owner.process.wait(10)
    done = wait_for_job(api, job["id"], timeout=180)
    assert done["state"] == "succeeded", done
    assert done["attempts"] == 2


def test_a_frozen_worker_loses_its_job_and_cannot_overwrite_it(
        cluster: Cluster, api: httpx.Client, regional: dict[str, Any]) -> None:
    job = api.post("/v1/jobs", json={"data": regional, "scenario": MEDIUM_SCENARIO}).json()
    pool_pid = _running_worker_pid(cluster, api, job["id"])
    frozen = _worker_running(cluster, pool_pid)
    # Alive but silent (a partitioned or stalled machine): only the heartbeat tells.
    os.killpg(frozen.pid, signal.SIGSTOP)
    try:
        done = wait_for_job(api, job["id"], timeout=180)
        assert done["state"] == "succeeded", done
        assert done["attempts"] == 2
        rerun_by = cluster.job(job["id"]).worker
        assert rerun_by is not None and not rerun_by.endswith(f":{pool_pid}")
    finally:
        os.killpg(frozen.pid, signal.SIGCONT)
    # The thawed first attempt finds the job taken over: it stops and its outcome is dropped.
    wait_for(lambda: "the job was given to another attempt" in frozen.errors(), timeout=60,
             what="the frozen attempt to give up")
    again = api.get(f"/v1/jobs/{job['id']}").json()
    assert again["state"] == "succeeded" and again["attempts"] == 2
    assert cluster.job(job["id"]).worker == rerun_by


def test_jobs_accepted_during_a_broker_outage_run_after_an_api_restart(
        cluster: Cluster, regional: dict[str, Any]) -> None:
    cluster.ensure_workers(2)
    dead_broker = f"redis://127.0.0.1:{free_port()}/0"
    outage = cluster.start_api(BROKER_URL=dead_broker)
    try:
        with outage.client(cluster.key) as client:
            ready = client.get("/readyz")
            assert ready.status_code == 503 and "broker unreachable" in ready.json()["detail"]
            ids = [client.post("/v1/jobs", json={"data": regional,
                                                 "scenario": QUICK_SCENARIO}).json()["id"]
                   for _ in range(3)]
            assert all(client.get(f"/v1/jobs/{i}").json()["state"] == "queued" for i in ids)
    finally:
        outage.stop()
    assert all(cluster.job(i).dispatched_at is None for i in ids)

    restarted = cluster.start_api()
    try:
        with restarted.client(cluster.key) as client:
            for job_id in ids:
                assert wait_for_job(client, job_id, timeout=120)["state"] == "succeeded"
    finally:
        restarted.stop()
