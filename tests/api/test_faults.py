"""Faults against the REAL PostgreSQL and Redis on 127.0.0.1 and real `territory serve` /
`territory worker` processes (celery executor): a worker SIGKILLed mid-solve, the API killed
between storing a job and dispatching it, PostgreSQL and Redis restarted under load, and a
solve that runs out of time.

After each fault the same audit runs on the database itself: every accepted job reached an
end state (succeeded, or failed with a reason; none lost, none left queued or running) and
every succeeded job's plan downloads complete.

The restart test restarts the machine's servers (we are root here and in CI) and always
leaves both running. The module has its own PostgreSQL database and Redis database.
"""

from __future__ import annotations

import copy
import os
import random
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest
from sqlalchemy import select

from api.store.db import Database
from api.store.tables import Job
from tests.api.conftest import CLOCKS
from tests.api.harness import (
    FINISHED,
    MEDIUM_SCENARIO,
    QUICK_SCENARIO,
    SLOW_SCENARIO,
    ApiServer,
    make_key,
    service_env,
    wait_for,
    wait_for_job,
)
from tests.api.services import (
    Cluster,
    empty_redis_database,
    ensure_postgres,
    ensure_redis,
    fresh_postgres_database,
    restart_postgres,
    restart_redis,
)

pytestmark = pytest.mark.services

# Not test_distributed's Redis database: the two modules never empty each other's queue.
REDIS_URL = os.environ.get("TEST_FAULTS_REDIS_URL", "redis://127.0.0.1:6379/12")
# A message the broker lost (Redis restarted without persistence) is sent again this soon.
REDISPATCH = {"JOB_REDISPATCH_SECONDS": 5}
SMALL_SCENARIO = {"balance": {"workload": {"tolerance": 0.3}}}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with fresh_postgres_database("territory_faults") as url, \
            empty_redis_database(REDIS_URL) as broker:
        env = service_env(DATABASE_URL=url, EXECUTOR="celery", BROKER_URL=broker,
                          CELERY_QUEUE=f"territory-faults-{uuid.uuid4().hex[:8]}",
                          **CLOCKS, **REDISPATCH)
        cluster = Cluster(url, env, make_key(url, "acme"), tmp_path_factory.mktemp("faults"))
        try:
            yield cluster
        finally:
            cluster.stop()


def all_jobs(cluster: Cluster) -> list[Job]:
    db = Database(cluster.database_url)
    try:
        with db.sessions() as session:
            return list(session.scalars(select(Job)).all())
    finally:
        db.dispose()


def audit(cluster: Cluster, accepted: list[str], *, timeout: float = 150) -> dict[str, Job]:
    """Wait until no job of the database is queued or running; then every accepted job is
    there, in an end state, and a failed one says why."""
    def settled() -> list[Job] | None:
        try:
            jobs = all_jobs(cluster)
        except Exception:  # the server restarting under us: look again
            return None
        return jobs if all(j.state in FINISHED for j in jobs) else None

    try:
        jobs = {j.id: j for j in wait_for(settled, timeout=timeout, what="every job to end",
                                          interval=0.5)}
    except AssertionError:
        stuck = {j.id: j.state for j in all_jobs(cluster) if j.state not in FINISHED}
        raise AssertionError(f"jobs left unfinished (lost): {stuck}") from None
    missing = set(accepted) - jobs.keys()
    assert not missing, f"accepted jobs missing from the store: {missing}"
    for job in jobs.values():
        if job.state == "failed":
            assert job.error and job.error.get("message"), job.id
    return jobs


def assert_plan_intact(client: httpx.Client, job_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """The result downloads and is a whole plan: every account once, to a known rep, and the
    territories add up to the input's totals; the CSV has one row per account."""
    r = client.get(f"/v1/jobs/{job_id}/result")
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    assert result["summary"]["status"] in ("optimal", "feasible")
    accounts = sorted(a["account_id"] for a in data["accounts"])
    assert sorted(a["account_id"] for a in result["assignments"]) == accounts
    assert {a["rep_id"] for a in result["assignments"]} <= {r["rep_id"] for r in data["reps"]}
    assert sum(t["accounts"] for t in result["territories"]) == len(accounts)
    workload = sum(float(a["workload"]) for a in data["accounts"])
    assert sum(t["workload"] for t in result["territories"]) == pytest.approx(workload)
    csv = client.get(f"/v1/jobs/{job_id}/result.csv")
    assert csv.status_code == 200
    assert len(csv.text.strip().splitlines()) == len(accounts) + 1
    return result


def small_instance(seed: int) -> dict[str, Any]:
    """30 accounts, 3 reps: solves in a fraction of a second."""
    rng = random.Random(seed)
    return {"accounts": [{"account_id": f"A{i}", "lat": round(rng.uniform(31, 34.5), 4),
                          "lon": round(rng.uniform(-85, -81.5), 4),
                          "workload": rng.randint(10, 100)} for i in range(30)],
            "reps": [{"rep_id": f"R{j}", "lat": round(rng.uniform(31, 34.5), 4),
                      "lon": round(rng.uniform(-85, -81.5), 4), "capacity": 2_000}
                     for j in range(3)]}


def test_a_worker_sigkilled_mid_solve_loses_nothing(cluster: Cluster,
                                                    regional: dict[str, Any]) -> None:
    cluster.ensure_workers(2)
    api = cluster.start_api()
    try:
        with api.client(cluster.key) as client:
            # Bounded, so a busy machine cannot stretch the re-run: optimal or feasible.
            scenario = copy.deepcopy(MEDIUM_SCENARIO)
            scenario["solver"]["time_limit"] = 20
            slow = client.post("/v1/jobs", json={"data": regional,
                                                 "scenario": scenario}).json()["id"]
            wait_for_job(client, slow, states=("running",), timeout=90)
            behind = [client.post("/v1/jobs", json={"data": regional,
                                                    "scenario": QUICK_SCENARIO}).json()["id"]
                      for _ in range(3)]
            pool_pid = int((cluster.job(slow).worker or "").rpartition(":")[2])
            owner = next(w for w in cluster.workers if w.alive() and pool_pid in
                         {c.pid for c in psutil.Process(w.pid).children(recursive=True)})
            # The worker and its pool process go at once, mid-solve.
            os.killpg(owner.pid, signal.SIGKILL)
            assert owner.process is not None
            owner.process.wait(10)

            jobs = audit(cluster, [slow, *behind])
            assert all(jobs[i].state == "succeeded" for i in [slow, *behind])
            assert jobs[slow].attempts == 2  # the killed attempt, then the re-run
            for job_id in [slow, *behind]:
                assert_plan_intact(client, job_id, regional)
    finally:
        api.stop()


class HungBroker:
    """A TCP port that accepts connections and never answers: a Redis that hangs (a failover
    or a dropped route) rather than refusing."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self._server.getsockname()[1]}/0"
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            self._held.append(connection)

    def close(self) -> None:
        self._server.close()
        for connection in self._held:
            connection.close()


def test_the_api_killed_between_storing_and_dispatching_a_job(
        cluster: Cluster, regional: dict[str, Any]) -> None:
    cluster.ensure_workers(2)
    broker = HungBroker()
    first = cluster.start_api(BROKER_URL=broker.url)
    second: ApiServer | None = None
    idempotency_key = f"fault-{uuid.uuid4().hex}"
    body = {"data": regional, "scenario": QUICK_SCENARIO, "label": "interrupted"}
    headers = {"Authorization": f"Bearer {cluster.key}", "Idempotency-Key": idempotency_key}
    heard: list[object] = []

    def submit() -> None:
        try:
            heard.append(httpx.post(first.url + "/v1/jobs", json=body, headers=headers,
                                    timeout=60))
        except httpx.HTTPError as exc:
            heard.append(exc)

    def stored() -> str | None:
        return next((j.id for j in all_jobs(cluster) if j.idempotency_key == idempotency_key),
                    None)

    try:
        client_thread = threading.Thread(target=submit)
        client_thread.start()
        job_id = wait_for(stored, timeout=30, what="the job to be stored", interval=0.05)
        # Committed, and its dispatch is stuck on the broker: kill the API in that window.
        assert cluster.job(job_id).dispatched_at is None
        first.kill_hard()
        client_thread.join(30)
        assert len(heard) == 1 and isinstance(heard[0], httpx.HTTPError)  # no answer came

        second = cluster.start_api()
        with second.client(cluster.key) as client:
            # The restarted API's recovery sends it; the client need not do anything.
            done = wait_for_job(client, job_id, timeout=120)
            assert done["state"] == "succeeded" and done["attempts"] == 1, done
            # A client that retries with its Idempotency-Key gets that job, not a second one.
            again = client.post("/v1/jobs", json=body, headers=headers)
            assert again.status_code == 200 and again.json()["id"] == job_id
            audit(cluster, [job_id])
            assert sum(j.idempotency_key == idempotency_key for j in all_jobs(cluster)) == 1
            assert_plan_intact(client, job_id, regional)
    finally:
        first.stop()
        if second is not None:
            second.stop()
        broker.close()


class Submitters:
    """Clients submitting small jobs in a loop; a failed submission is retried with the same
    Idempotency-Key (as a careful client would), so an answer lost in a restart never makes a
    second job. Records the ids the API accepted and the data of each."""

    def __init__(self, url: str, key: str, clients: int, pause: float) -> None:
        self.url, self.key, self.pause = url, key, pause
        self.accepted: dict[str, dict[str, Any]] = {}
        self.refused = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._loop, args=(n,), daemon=True)
                         for n in range(clients)]

    def _loop(self, n: int) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=30) as client:
            for seq in range(10_000):
                if self._stop.is_set():
                    return
                data = small_instance(n * 10_000 + seq)
                key = f"load-{n}-{seq}-{uuid.uuid4().hex[:8]}"
                while not self._stop.is_set():
                    try:
                        r = client.post("/v1/jobs", headers={"Idempotency-Key": key},
                                        json={"data": data, "scenario": SMALL_SCENARIO})
                    except httpx.HTTPError:
                        r = None
                    if r is not None and r.status_code in (200, 202):
                        with self._lock:
                            self.accepted[r.json()["id"]] = data
                        break
                    with self._lock:
                        self.refused += 1
                    time.sleep(0.5)
                self._stop.wait(self.pause)

    def count(self) -> int:
        with self._lock:
            return len(self.accepted)

    def __enter__(self) -> Submitters:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)


def test_postgres_and_redis_restarted_under_load(cluster: Cluster) -> None:
    cluster.ensure_workers(2)
    api = cluster.start_api()
    try:
        with Submitters(api.url, cluster.key, clients=3, pause=0.7) as load:
            wait_for(lambda: load.count() >= 6, timeout=60, what="jobs before the restarts")
            wait_for(lambda: any(j.state == "running" for j in all_jobs(cluster)) or None,
                     timeout=60, what="a job running", interval=0.05)
            restart_postgres()
            before = load.count()
            wait_for(lambda: load.count() >= before + 4, timeout=90,
                     what="jobs accepted after the PostgreSQL restart")
            restart_redis()
            before = load.count()
            wait_for(lambda: load.count() >= before + 4, timeout=90,
                     what="jobs accepted after the Redis restart")
        jobs = audit(cluster, list(load.accepted))
        assert [j.state for j in jobs.values()].count("succeeded") == len(jobs), \
            {j.id: (j.state, j.error) for j in jobs.values() if j.state != "succeeded"}
        with api.client(cluster.key) as client:
            for job_id, data in load.accepted.items():
                assert_plan_intact(client, job_id, data)
    finally:
        ensure_postgres()
        ensure_redis()
        api.stop()


def test_a_solve_out_of_time_returns_its_incumbent_and_gap(
        cluster: Cluster, regional: dict[str, Any]) -> None:
    cluster.ensure_workers(1)
    scenario = copy.deepcopy(SLOW_SCENARIO)
    # The optimum takes tens of seconds; a first plan about two (more on a busy machine).
    scenario["solver"]["time_limit"] = 8
    hopeless = copy.deepcopy(SLOW_SCENARIO)
    # Not even the LP relaxation fits: its first pricing round alone takes longer. (At 0.05 s
    # a warm worker could finish the LP in time, and a finished LP's rounding gets half a
    # second whatever the limit: a plan, not the failure this checks.)
    hopeless["solver"]["time_limit"] = 0.001
    api = cluster.start_api()
    try:
        with api.client(cluster.key) as client:
            job_id = client.post("/v1/jobs", json={"data": regional,
                                                   "scenario": scenario}).json()["id"]
            done = wait_for_job(client, job_id, timeout=120)
            assert done["state"] == "succeeded" and done["result_status"] == "feasible", \
                done["error"]
            summary = assert_plan_intact(client, job_id, regional)["summary"]
            assert summary["termination"] == "time_limit"
            assert summary["status"] == "feasible"
            assert summary["bound"] < summary["objective"]
            assert summary["gap"] == pytest.approx(
                (summary["objective"] - summary["bound"]) / abs(summary["objective"]))
            assert summary["gap"] > 0
            assert done["progress"]["incumbent"] is not None
            # Out of time before any plan: failed, saying so (never left running).
            none = client.post("/v1/jobs", json={"data": regional,
                                                 "scenario": hopeless}).json()["id"]
            failed = wait_for_job(client, none, timeout=120)
            assert failed["state"] == "failed" and not failed["result_available"]
            assert failed["error"]["type"] == "solver-error"
            assert "time limit" in failed["error"]["message"]
            audit(cluster, [job_id, none])
    finally:
        api.stop()
