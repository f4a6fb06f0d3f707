"""Durability with the local executor: a job whose process dies is run again; jobs queued
(or running) when the API stops are finished by the next start."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from api.store.db import Database
from api.store.tables import Job
from tests.api.conftest import LocalService, local_env
from tests.api.harness import (
    MEDIUM_SCENARIO,
    QUICK_SCENARIO,
    ApiServer,
    make_key,
    wait_for,
    wait_for_job,
)


def worker_of(database_url: str, job_id: str) -> str:
    db = Database(database_url)
    try:
        with db.sessions() as session:
            job = session.get_one(Job, job_id)
            return job.worker or ""
    finally:
        db.dispose()


def test_a_killed_job_process_is_replaced_and_the_job_rerun(
        local_service: LocalService, regional: dict[str, Any]) -> None:
    with local_service.client("acme") as acme:
        job = acme.post("/v1/jobs", json={"data": regional, "scenario": MEDIUM_SCENARIO}).json()
        wait_for_job(acme, job["id"], states=("running",), timeout=60)
        worker = worker_of(local_service.database_url, job["id"])
        os.kill(int(worker.rpartition(":")[2]), signal.SIGKILL)
        done = wait_for_job(acme, job["id"], timeout=120)
        assert done["state"] == "succeeded", done
        assert done["attempts"] == 2
        assert worker_of(local_service.database_url, job["id"]) != worker
        # The pool is whole again.
        wait_for(lambda: acme.get("/readyz").status_code == 200, timeout=30,
                 what="all local worker processes alive")


@pytest.fixture
def restartable(tmp_path: Path) -> tuple[str, dict[str, str], Path]:
    """A key, the environment of a one-process local service, and a folder for logs."""
    url = f"sqlite:///{tmp_path / 'restart.db'}"
    return make_key(url, "acme"), local_env(url, LOCAL_WORKERS=1), tmp_path


def test_api_restarts_finish_queued_and_interrupted_jobs(
        restartable: tuple[str, dict[str, str], Path], regional: dict[str, Any]) -> None:
    key, env, folder = restartable
    first = ApiServer(env, folder, name="api-1")
    second = ApiServer(env, folder, name="api-2")
    third = ApiServer(env, folder, name="api-3")
    try:
        first.start()
        with first.client(key) as client:
            slow = client.post("/v1/jobs", json={"data": regional,
                                                 "scenario": MEDIUM_SCENARIO}).json()["id"]
            wait_for_job(client, slow, states=("running",), timeout=60)
            quick = [client.post("/v1/jobs", json={"data": regional, "scenario":
                                                   QUICK_SCENARIO}).json()["id"]
                     for _ in range(2)]
        # Killed outright: the queued jobs were only in its memory queue; the running one's
        # process notices its parent is gone after finishing.
        first.kill_hard()

        second.start()
        with second.client(key) as client:
            for job_id in (slow, *quick):
                assert wait_for_job(client, job_id, timeout=120)["state"] == "succeeded"
            # A graceful stop in the middle of a solve puts the job back in the queue
            # without using up an attempt; the next start runs it.
            interrupted = client.post("/v1/jobs", json={"data": regional,
                                                        "scenario": MEDIUM_SCENARIO}).json()
            wait_for_job(client, interrupted["id"], states=("running",), timeout=60)
        second.stop()

        third.start()
        with third.client(key) as client:
            done = wait_for_job(client, interrupted["id"], timeout=120)
            assert done["state"] == "succeeded" and done["attempts"] == 1, done
    finally:
        for server in (first, second, third):
            server.stop()
