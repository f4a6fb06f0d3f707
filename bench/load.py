"""Loopback load test of the job service: N concurrent clients submit small jobs and poll
them to the end, for a bounded number of jobs and time. Reports submission latency (p50,
p95) and jobs lost, which must be 0: a job is lost when the API accepted it (202) but it
never reached an end state, or is missing from the tenant's job list.

    python bench/load.py                       # own server: SQLite, local executor
    python bench/load.py --clients 50 --jobs 300 --duration 60
    python bench/load.py --executor celery --workers 2 --clients 100 --duration 60
                        # own server and 2 `territory worker` processes on the real PostgreSQL
                        # (a database of its own, dropped after) and Redis on 127.0.0.1
    python bench/load.py --url http://127.0.0.1:8000 --key trk_...   # an existing server

Writes bench/load.json and prints a Markdown snippet. Not a test: it measures; the service
tests assert behaviour.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FINISHED = {"succeeded", "failed", "cancelled"}
POLL_SECONDS = 0.5
POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL",
                                    "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("LOAD_REDIS_URL", "redis://127.0.0.1:6379/11")


def small_instance(seed: int, accounts: int = 30, reps: int = 3) -> dict[str, Any]:
    """A tiny realignment (Georgia-sized box) that solves in well under a second."""
    rng = random.Random(seed)
    return {
        "accounts": [{"account_id": f"A{i}", "lat": round(rng.uniform(31.0, 34.5), 4),
                      "lon": round(rng.uniform(-85.0, -81.5), 4),
                      "workload": rng.randint(10, 100)} for i in range(accounts)],
        "reps": [{"rep_id": f"R{j}", "lat": round(rng.uniform(31.0, 34.5), 4),
                  "lon": round(rng.uniform(-85.0, -81.5), 4), "capacity": 2_000}
                 for j in range(reps)],
    }


SCENARIO = {"balance": {"workload": {"tolerance": 0.3}}, "solver": {"time_limit": 30}}


@dataclass
class Tally:
    submit_ms: list[float] = field(default_factory=list)
    poll_ms: list[float] = field(default_factory=list)
    end_to_end_s: list[float] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    errors: int = 0


async def client_loop(base_url: str, key: str, budget: list[int], deadline: float,
                      tally: Tally, seed: int) -> None:
    """One client: submit, poll to the end, repeat while jobs and time are left."""
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as client:
        n = 0
        while budget[0] > 0 and time.monotonic() < deadline:
            budget[0] -= 1
            n += 1
            body = {"scenario": SCENARIO, "data": small_instance(seed * 1_000 + n)}
            started = time.perf_counter()
            try:
                r = await client.post("/v1/jobs", json=body)
            except httpx.HTTPError:
                tally.errors += 1
                continue
            tally.submit_ms.append((time.perf_counter() - started) * 1000)
            if r.status_code != 202:
                tally.refused[str(r.status_code)] = tally.refused.get(str(r.status_code), 0) + 1
                continue
            job_id = r.json()["id"]
            tally.accepted.append(job_id)
            while time.monotonic() < deadline + 60:
                await asyncio.sleep(POLL_SECONDS)
                polled = time.perf_counter()
                try:
                    answer = await client.get(f"/v1/jobs/{job_id}")
                    state = answer.json()["state"]
                except (httpx.HTTPError, KeyError, ValueError):
                    tally.errors += 1
                    continue
                tally.poll_ms.append((time.perf_counter() - polled) * 1000)
                tally.states[job_id] = state
                if state in FINISHED:
                    tally.end_to_end_s.append(time.perf_counter() - started)
                    break


async def audit(base_url: str, key: str, tally: Tally, grace: float) -> list[str]:
    """Wait up to `grace` seconds for accepted jobs to finish; return the ones that did not
    (or that the job list does not know): the lost jobs."""
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as client:
        deadline = time.monotonic() + grace
        while True:
            known: dict[str, str] = {}
            offset = 0
            while True:
                page = (await client.get("/v1/jobs", params={"limit": 500,
                                                             "offset": offset})).json()
                known.update({j["id"]: j["state"] for j in page["data"]})
                offset += len(page["data"])
                if not page["data"] or offset >= page["count"]:
                    break
            tally.states.update({i: known[i] for i in tally.accepted if i in known})
            unfinished = [i for i in tally.accepted if known.get(i) not in FINISHED]
            if not unfinished or time.monotonic() > deadline:
                return unfinished
            await asyncio.sleep(1)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnServer:
    """A server for the run. `local`: SQLite in a temporary folder and the local executor's
    processes. `celery`: a PostgreSQL database of its own on the real server (dropped after),
    a Redis database (emptied before and after) and `workers` real `territory worker`
    processes."""

    def __init__(self, workers: int, executor: str = "local") -> None:
        self.folder = tempfile.TemporaryDirectory(prefix="territory-load-")
        self.executor = executor
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None
        self.worker_processes: list[subprocess.Popen[bytes]] = []
        self.database_name: str | None = None
        if executor == "celery":
            self.database_name = f"territory_load_{uuid.uuid4().hex[:12]}"
            self.url_db = self._postgres_url(self.database_name)
        else:
            self.url_db = f"sqlite:///{Path(self.folder.name) / 'load.db'}"

    @staticmethod
    def _postgres_url(name: str) -> str:
        from sqlalchemy.engine import make_url

        return make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(
            hide_password=False)

    def _admin(self, statement: str) -> None:
        from sqlalchemy import create_engine, text

        admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(statement))
        finally:
            admin.dispose()

    def _flush_redis(self) -> None:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        try:
            client.flushdb()
        finally:
            client.close()

    def _spawn(self, args: list[str], env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
        log = (Path(self.folder.name) / f"{name}.log").open("wb")
        return subprocess.Popen(
            [sys.executable, "-c", "from optimizer.cli import app; app()", *args],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self, name: str) -> str:
        path = Path(self.folder.name) / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> str:
        sys.path.insert(0, str(REPO))
        from api.auth import create_key
        from api.store.db import Database
        from api.store.migrate import upgrade

        if self.database_name is not None:
            self._admin(f'CREATE DATABASE "{self.database_name}"')
            self._flush_redis()
        db = Database(self.url_db)
        upgrade(db)
        with db.session() as session:
            key = create_key(session=session, tenant_name="load").key
        db.dispose()
        env = {**os.environ, "DATABASE_URL": self.url_db, "EXECUTOR": self.executor,
               "LOCAL_WORKERS": str(self.workers), "LOG_LEVEL": "WARNING",
               "PYTHONPATH": str(REPO)}
        if self.executor == "celery":
            env.update({"BROKER_URL": REDIS_URL,
                        "CELERY_QUEUE": f"territory-load-{uuid.uuid4().hex[:8]}",
                        # celery says "ready." at INFO: the start-up check reads it.
                        "LOG_LEVEL": "INFO"})
            self.worker_processes = [self._spawn(["worker"], env, f"worker-{n}")
                                     for n in range(self.workers)]
            self._wait(lambda: all("ready." in self.log(f"worker-{n}")
                                   for n in range(self.workers)), "the workers")
            env["LOG_LEVEL"] = "WARNING"
        self.process = self._spawn(["serve", "--port", str(self.port)], env, "server")
        self._wait(self._ready, "the server")
        return key

    def _ready(self) -> bool:
        try:
            return httpx.get(self.url + "/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _wait(self, check: Any, what: str) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if check():
                return
            if any(p.poll() is not None for p in [*self.worker_processes,
                                                   *([self.process] if self.process else [])]):
                break
            time.sleep(0.25)
        raise RuntimeError(f"{what} did not start; logs in {self.folder.name}")

    def stop(self) -> None:
        for process in [*([self.process] if self.process else []), *self.worker_processes]:
            if process.poll() is None:
                process.terminate()
        for process in [*([self.process] if self.process else []), *self.worker_processes]:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.database_name is not None:
            self._admin(f'DROP DATABASE IF EXISTS "{self.database_name}" WITH (FORCE)')
            self._flush_redis()
        self.folder.cleanup()


def report(args: argparse.Namespace, tally: Tally, lost: list[str],
           seconds: float) -> dict[str, Any]:
    def rounded(value: float | None, digits: int = 1) -> float | None:
        return None if value is None else round(value, digits)

    states = [tally.states.get(i) for i in tally.accepted]
    return {
        "clients": args.clients,
        "job_budget": args.jobs,
        "duration_limit_s": args.duration,
        "executor": args.executor if args.url is None else None,
        "workers": args.workers if args.url is None else None,
        "jobs_accepted": len(tally.accepted),
        "jobs_succeeded": states.count("succeeded"),
        "jobs_failed": states.count("failed"),
        "jobs_lost": len(lost),
        "lost_ids": lost[:20],
        "submissions_refused": tally.refused,
        "transport_errors": tally.errors,
        "errors": tally.errors + sum(tally.refused.values()),
        "submit_latency_ms": {"p50": rounded(percentile(tally.submit_ms, 50)),
                              "p95": rounded(percentile(tally.submit_ms, 95)),
                              "max": rounded(max(tally.submit_ms, default=0.0))},
        "poll_latency_ms": {"p50": rounded(percentile(tally.poll_ms, 50)),
                            "p95": rounded(percentile(tally.poll_ms, 95)),
                            "max": rounded(max(tally.poll_ms, default=0.0))},
        "requests": len(tally.submit_ms) + len(tally.poll_ms),
        "end_to_end_s": {"p50": rounded(percentile(tally.end_to_end_s, 50), 2),
                         "p95": rounded(percentile(tally.end_to_end_s, 95), 2)},
        "throughput_jobs_per_s": round(len(tally.end_to_end_s) / seconds, 2) if seconds else None,
        "seconds": round(seconds, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }


def markdown(r: dict[str, Any]) -> str:
    lat, e2e, poll = r["submit_latency_ms"], r["end_to_end_s"], r["poll_latency_ms"]
    where = (f"{r['executor']} executor, {r['workers']} worker processes"
             if r["executor"] else "an existing server")
    return "\n".join([
        "### Job service under load (loopback)",
        "",
        f"{r['clients']} concurrent clients submitting and polling for {r['duration_limit_s']:g} s "
        f"({where}): {r['jobs_accepted']} small jobs accepted, all settled after "
        f"{r['seconds']} s ({r['machine']['cpus']} CPUs, shared).",
        "",
        "| metric | value |",
        "|---|---|",
        f"| submission latency p50 / p95 / max | {lat['p50']} / {lat['p95']} / {lat['max']} ms |",
        f"| status poll latency p50 / p95 / max | {poll['p50']} / {poll['p95']} / "
        f"{poll['max']} ms |",
        f"| HTTP requests | {r['requests']} |",
        f"| submit → finished p50 / p95 | {e2e['p50']} / {e2e['p95']} s |",
        f"| throughput | {r['throughput_jobs_per_s']} jobs/s |",
        f"| succeeded / failed | {r['jobs_succeeded']} / {r['jobs_failed']} |",
        f"| **jobs lost** | **{r['jobs_lost']}** |",
        f"| **errors** (refused submissions + transport errors) | **{r['errors']}** "
        f"({sum(r['submissions_refused'].values())} + {r['transport_errors']}) |",
    ])


async def run(args: argparse.Namespace, base_url: str, key: str) -> dict[str, Any]:
    tally = Tally()
    budget = [args.jobs]
    started = time.monotonic()
    deadline = started + args.duration
    await asyncio.gather(*(client_loop(base_url, key, budget, deadline, tally, seed)
                           for seed in range(args.clients)))
    lost = await audit(base_url, key, tally, args.grace)
    return report(args, tally, lost, time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=250, help="jobs to submit in all")
    parser.add_argument("--duration", type=float, default=60.0,
                        help="stop submitting after this many seconds")
    parser.add_argument("--grace", type=float, default=120.0,
                        help="then wait this long for accepted jobs to finish")
    parser.add_argument("--executor", choices=("local", "celery"), default="local",
                        help="local: SQLite and a process pool; celery: the real PostgreSQL "
                             "and Redis on 127.0.0.1 with `territory worker` processes")
    parser.add_argument("--workers", type=int, default=2,
                        help="worker processes (local pool size, or celery workers)")
    parser.add_argument("--url", help="an existing server instead of starting one")
    parser.add_argument("--key", help="API key for --url")
    parser.add_argument("--out", type=Path, default=HERE / "load.json")
    args = parser.parse_args()
    if args.url and not args.key:
        parser.error("--url needs --key")

    server = None if args.url else OwnServer(args.workers, args.executor)
    try:
        key = args.key if server is None else server.start()
        base_url = args.url if server is None else server.url
        result = asyncio.run(run(args, base_url, key))
    finally:
        if server is not None:
            server.stop()
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(markdown(result))
    print(f"\n(written to {args.out})")
    if result["jobs_lost"] or result["errors"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
