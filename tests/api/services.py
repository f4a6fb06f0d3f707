"""The real PostgreSQL and Redis on 127.0.0.1 for tests marked `services`, and a cluster of
real `territory serve` / `territory worker` processes on them.

Each user gets its own PostgreSQL database (created from TEST_POSTGRES_URL, dropped at the
end) and a Redis database emptied before and after, so modules never see each other's jobs.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from api.store.db import Database
from api.store.tables import Job
from tests.api.harness import ApiServer, ServiceProcess, wait_for

POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL",
                                    "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def unavailable(reason: str) -> None:
    """In CI the services must be there (.ci/run starts them): fail, never skip silently."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@contextlib.contextmanager
def fresh_postgres_database(prefix: str = "territory_test") -> Iterator[str]:
    """A new database on the real server (its URL), dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    # Pre-ping: a test may restart the server between CREATE and DROP.
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        unavailable(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {exc}")
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(
            hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def empty_redis_database(url: str = REDIS_URL) -> Iterator[str]:
    """The Redis database of `url`, emptied before and after."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        unavailable(f"Redis not reachable at {url}: {exc}")
    try:
        yield url
    finally:
        with contextlib.suppress(redis.RedisError):
            client.flushdb()
        client.close()


@dataclass
class Cluster:
    """Shared database, broker and workers; API servers are started per test."""

    database_url: str
    env: dict[str, str]
    key: str
    folder: Path
    workers: list[ServiceProcess] = field(default_factory=list)
    apis: list[ApiServer] = field(default_factory=list)

    def start_worker(self) -> ServiceProcess:
        worker = ServiceProcess(["worker"], self.env, self.folder,
                                f"worker-{len(self.workers) + 1}")
        worker.start()
        wait_for(lambda: "ready." in worker.errors() or exited(worker), timeout=90,
                 what=f"{worker.name} to be ready")
        self.workers.append(worker)
        return worker

    def ensure_workers(self, count: int) -> None:
        while sum(w.alive() for w in self.workers) < count:
            self.start_worker()

    def start_api(self, **overrides: str) -> ApiServer:
        api = ApiServer({**self.env, **overrides}, self.folder, f"api-{len(self.apis) + 1}")
        self.apis.append(api)
        api.start(ready=not overrides)
        return api

    def job(self, job_id: str) -> Job:
        db = Database(self.database_url)
        try:
            with db.sessions() as session:
                return session.get_one(Job, job_id)
        finally:
            db.dispose()

    def stop(self) -> None:
        for process in [*self.apis, *self.workers]:
            process.stop()


def exited(process: ServiceProcess) -> bool:
    if not process.alive():
        raise AssertionError(f"{process.name} exited:\n{process.errors()[-4000:]}")
    return False


# Restarting the machine's servers (we are root on the test machines; CI too).
REDIS_START = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379",
               "--save", "", "--appendonly", "no"]


def postgres_cluster_version() -> str:
    versions = sorted(os.listdir("/etc/postgresql"))
    return versions[0]


def restart_postgres() -> None:
    """Restart the PostgreSQL server (fast mode: every connection is cut)."""
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", postgres_cluster_version(),
                    "main", "restart"], check=True, capture_output=True, timeout=120)


def ensure_postgres() -> None:
    """Start PostgreSQL if it is down (the finally of a test that restarts it)."""
    if subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q"],
                      check=False).returncode != 0:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect",
                        postgres_cluster_version(), "main", "start"], check=False,
                       capture_output=True, timeout=120)
    wait_for(lambda: subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q"],
                                    check=False).returncode == 0,
             timeout=60, what="PostgreSQL to accept connections")


def redis_answers() -> bool:
    client = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1,
                         socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def restart_redis() -> None:
    """Stop Redis without saving (every queued message is gone) and start it again."""
    subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", "6379", "shutdown", "nosave"],
                   check=False, capture_output=True, timeout=30)
    wait_for(lambda: not redis_answers(), timeout=30, what="Redis to stop")
    ensure_redis()


def ensure_redis() -> None:
    """Start Redis if it is down."""
    if not redis_answers():
        subprocess.run(REDIS_START, check=False, capture_output=True, timeout=30)
    wait_for(redis_answers, timeout=30, what="Redis to answer")
