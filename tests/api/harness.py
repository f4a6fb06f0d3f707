"""Real processes for the service tests: `territory serve` and `territory worker` started as
subprocesses (each in its own process group, so stopping one never leaves orphans), talked
to over HTTP with httpx, and bounded polling instead of sleeps."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pandas as pd

from api import auth
from api.store.db import Database
from api.store.migrate import upgrade
from optimizer.datasets import get_dataset_or_raise

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")
FINISHED = ("succeeded", "failed", "cancelled")

# About 1 s on the regional data.
QUICK_SCENARIO: dict[str, Any] = {"circuity": 1.2}
# Several seconds: soft potential balance with a zero MIP gap.
MEDIUM_SCENARIO: dict[str, Any] = {
    "objective": {"travel": 1, "balance": 1},
    "balance": {"workload": {"tolerance": 0.1}, "potential": {"tolerance": 0.02, "hard": False}},
    "solver": {"mip_gap": 0, "time_limit": 120}}
# Tens of seconds (an incumbent within about two): for cancelling a solve under way.
SLOW_SCENARIO: dict[str, Any] = {
    "objective": {"travel": 1, "balance": 1},
    "balance": {"workload": {"tolerance": 0.03}, "potential": {"tolerance": 0.01, "hard": False},
                "accounts": {"tolerance": 0.05, "hard": False}},
    "solver": {"mip_gap": 0, "time_limit": 120}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], T | None], *, timeout: float, what: str,
             interval: float = 0.2) -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def regional_records() -> dict[str, list[dict[str, Any]]]:
    """The bundled us-regional tables (372 accounts, 6 reps) as JSON records (text cells,
    as a client reading the CSV files would send them)."""
    tables = {}
    for name in ("accounts", "reps"):
        frame = pd.read_csv(regional_file(f"{name}.csv"), dtype=str)
        tables[name] = [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]
    return tables


def regional_file(name: str) -> Path:
    path = get_dataset_or_raise("us-regional").file(name)
    assert path is not None
    return path


def make_key(database_url: str, tenant: str) -> str:
    db = Database(database_url)
    try:
        upgrade(db)
        with db.session() as session:
            return auth.create_key(session=session, tenant_name=tenant).key
    finally:
        db.dispose()


def service_env(**settings: object) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "EXECUTOR", "BROKER_URL", "CELERY_QUEUE")}
    env["PYTHONPATH"] = str(REPO)
    env.update({k: str(v) for k, v in settings.items()})
    return env


class ServiceProcess:
    """`python -m tests.api.cli ARGS` in its own session, output to files in `log_dir`."""

    def __init__(self, args: list[str], env: dict[str, str], log_dir: Path, name: str) -> None:
        self.args = args
        self.env = env
        self.log_dir = log_dir
        self.name = name
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"{self.name}.out").open("ab") as out, \
                (self.log_dir / f"{self.name}.err").open("ab") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.api.cli", *self.args], cwd=REPO, env=self.env,
                stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        return (self.log_dir / f"{self.name}.out").read_text(errors="replace")

    def errors(self) -> str:
        return (self.log_dir / f"{self.name}.err").read_text(errors="replace")

    def kill_hard(self) -> None:
        """SIGKILL the main process only (its children are left to notice)."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            assert self.process is not None
            self.process.wait(10)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM and wait; then SIGKILL whatever is left of the process group."""
        if self.process is None:
            return
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)


class ApiServer(ServiceProcess):
    def __init__(self, env: dict[str, str], log_dir: Path, name: str = "api") -> None:
        self.port = free_port()
        super().__init__(["serve", "--port", str(self.port)], env, log_dir, name)
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, *, ready: bool = True) -> None:
        super().start()
        wait_for(lambda: self._answers(ready), timeout=90, what=f"{self.name} to answer",
                 interval=0.25)

    def _answers(self, ready: bool) -> bool:
        if not self.alive():
            raise AssertionError(f"{self.name} exited:\n{self.errors()[-4000:]}")
        try:
            r = httpx.get(self.url + ("/readyz" if ready else "/healthz"), timeout=2)
        except httpx.HTTPError:
            return False
        return r.status_code == 200

    def client(self, key: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


def job_state(client: httpx.Client, job_id: str) -> dict[str, Any]:
    r = client.get(f"/v1/jobs/{job_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def wait_for_job(client: httpx.Client, job_id: str, *, states: tuple[str, ...] = FINISHED,
                 timeout: float = 120) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        job = job_state(client, job_id)
        return job if job["state"] in states else None

    return wait_for(reached, timeout=timeout, what=f"job {job_id} to reach {'|'.join(states)}")


def metric_value(text: str, name: str, **labels: str) -> float:
    """A sample's value in a Prometheus text page (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
