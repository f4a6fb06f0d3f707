"""Cancellation: a queued job ends at once; a running solve stops at the solver's next check
and the job ends cancelled, keeping the incumbent plan when the solver had one."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.harness import SLOW_SCENARIO, job_state, wait_for, wait_for_job


def test_cancel_running_and_queued_jobs(acme: httpx.Client, regional: dict[str, Any]) -> None:
    def submit(label: str) -> str:
        r = acme.post("/v1/jobs", json={"scenario": SLOW_SCENARIO, "data": regional,
                                        "label": label})
        assert r.status_code == 202, r.text
        job_id: str = r.json()["id"]
        return job_id

    # Two local worker processes: two slow solves run, the third waits.
    first, second = submit("first"), submit("second")
    for job_id in (first, second):
        wait_for_job(acme, job_id, states=("running",), timeout=90)
    third = submit("third")
    assert job_state(acme, third)["state"] == "queued"

    r = acme.post(f"/v1/jobs/{third}/cancel")
    assert r.status_code == 202
    assert r.json()["state"] == "cancelled" and r.json()["error"]["type"] == "cancelled"
    assert acme.post(f"/v1/jobs/{third}/cancel").json()["state"] == "cancelled"  # idempotent
    assert acme.get(f"/v1/jobs/{third}/result").status_code == 409

    # Once the solver has a plan, cancelling keeps it.
    wait_for(lambda: (job_state(acme, first)["progress"] or {}).get("incumbent") is not None,
             timeout=90, what="an incumbent in the first job's progress")
    r = acme.post(f"/v1/jobs/{first}/cancel")
    assert r.status_code == 202 and r.json()["cancel_requested"]
    acme.post(f"/v1/jobs/{second}/cancel")

    done = wait_for_job(acme, first, timeout=90)
    assert done["state"] == "cancelled" and done["result_available"], done
    result = acme.get(f"/v1/jobs/{first}/result").json()
    assert result["summary"]["termination"] == "cancelled"
    assert result["summary"]["status"] == "feasible"
    assert len(result["assignments"]) == len(regional["accounts"])

    other = wait_for_job(acme, second, timeout=90)
    assert other["state"] == "cancelled"
    # Cancelled before any plan: no result, and the reason says so.
    assert other["result_available"] or other["error"]["type"] == "cancelled"

    finished = acme.post(f"/v1/jobs/{third}/cancel")
    assert finished.status_code == 202


def test_cancel_a_finished_job_is_a_conflict(acme: httpx.Client,
                                             regional: dict[str, Any]) -> None:
    job = acme.post("/v1/jobs", json={"data": regional, "scenario": {"circuity": 1.2}}).json()
    assert wait_for_job(acme, job["id"])["state"] == "succeeded"
    r = acme.post(f"/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    assert "already succeeded" in r.json()["detail"]
