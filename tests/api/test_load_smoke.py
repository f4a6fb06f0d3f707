"""A small, bounded run of the load test (bench/load.py) on the celery executor: 10 clients
submitting and polling for 10 s against a real API, 2 real workers, PostgreSQL and Redis.
Asserts behaviour only (no timings): every submission accepted, no HTTP error, no job lost,
and every job succeeded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.harness import REPO
from tests.api.services import empty_redis_database, fresh_postgres_database

pytestmark = pytest.mark.services


def test_ten_clients_for_ten_seconds_on_celery(tmp_path: Path) -> None:
    # Only to fail clearly (or skip outside CI) when the services are not there.
    with fresh_postgres_database(), empty_redis_database():
        pass
    out = tmp_path / "load.json"
    run = subprocess.run(
        [sys.executable, "bench/load.py", "--executor", "celery", "--workers", "2",
         "--clients", "10", "--duration", "10", "--jobs", "200", "--grace", "120",
         "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=400, check=False)
    assert out.exists(), run.stdout + run.stderr
    report = json.loads(out.read_text())
    assert run.returncode == 0, (report, run.stderr[-3000:])
    assert report["executor"] == "celery" and report["workers"] == 2
    assert report["jobs_accepted"] >= 10
    assert report["errors"] == 0 and report["submissions_refused"] == {}
    assert report["jobs_lost"] == 0 and report["lost_ids"] == []
    assert report["jobs_succeeded"] == report["jobs_accepted"]
