"""Deleting jobs, batches and datasets: only what has ended, only the tenant's own, and the
results of ended jobs outlive the data they ran on."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.harness import (
    QUICK_SCENARIO,
    SLOW_SCENARIO,
    metric_value,
    regional_file,
    wait_for_job,
)


def _upload(client: httpx.Client) -> str:
    r = client.post("/v1/datasets", files={
        "accounts": ("accounts.csv", regional_file("accounts.csv").read_bytes(), "text/csv"),
        "reps": ("reps.csv", regional_file("reps.csv").read_bytes(), "text/csv")})
    assert r.status_code == 201, r.text
    dataset_id: str = r.json()["id"]
    return dataset_id


def test_a_dataset_goes_once_no_job_reads_it_and_its_jobs_keep_their_results(
        acme: httpx.Client, globex: httpx.Client) -> None:
    dataset_id = _upload(acme)
    quick = acme.post("/v1/jobs", json={"dataset_id": dataset_id, "scenario": QUICK_SCENARIO})
    assert wait_for_job(acme, quick.json()["id"])["state"] == "succeeded"
    slow = acme.post("/v1/jobs", json={"dataset_id": dataset_id, "scenario": SLOW_SCENARIO})
    slow_id = slow.json()["id"]
    wait_for_job(acme, slow_id, states=("running",), timeout=90)

    # Neither the data nor the job under way can go; another tenant sees neither.
    busy = acme.delete(f"/v1/datasets/{dataset_id}")
    assert busy.status_code == 409, busy.text
    assert busy.headers["content-type"] == "application/problem+json"
    assert "1 job(s) reading dataset" in busy.json()["detail"]
    running = acme.delete(f"/v1/jobs/{slow_id}")
    assert running.status_code == 409 and "cancel it" in running.json()["detail"]
    assert globex.delete(f"/v1/datasets/{dataset_id}").status_code == 404
    assert globex.delete(f"/v1/jobs/{slow_id}").status_code == 404

    acme.post(f"/v1/jobs/{slow_id}/cancel")
    assert wait_for_job(acme, slow_id, timeout=90)["state"] == "cancelled"
    assert acme.delete(f"/v1/datasets/{dataset_id}").status_code == 204
    assert acme.get(f"/v1/datasets/{dataset_id}").status_code == 404
    assert dataset_id not in [d["id"] for d in acme.get("/v1/datasets").json()["data"]]
    assert acme.delete(f"/v1/datasets/{dataset_id}").status_code == 404
    again = acme.post("/v1/jobs", json={"dataset_id": dataset_id, "scenario": QUICK_SCENARIO})
    assert again.status_code == 404, again.text

    # The ended job still has its plan and still says which data it ran on.
    kept = acme.get(f"/v1/jobs/{quick.json()['id']}").json()
    assert kept["dataset_id"] == dataset_id and kept["result_available"]
    assert len(acme.get(f"/v1/jobs/{kept['id']}/result").json()["assignments"]) == 372

    finished = ("territory_jobs_finished_total", {"kind": "align", "state": "succeeded"})
    counted = metric_value(acme.get("/metrics").text, finished[0], **finished[1])
    assert acme.delete(f"/v1/jobs/{kept['id']}").status_code == 204
    # A counter of ended jobs never goes down: the deleted job's row stays, without its data.
    assert metric_value(acme.get("/metrics").text, finished[0], **finished[1]) == counted
    assert acme.get(f"/v1/jobs/{kept['id']}").status_code == 404
    assert acme.get(f"/v1/jobs/{kept['id']}/result").status_code == 404
    assert kept["id"] not in [j["id"] for j in acme.get("/v1/jobs").json()["data"]]
    assert acme.delete(f"/v1/jobs/{kept['id']}").status_code == 404


def test_a_batch_goes_whole_once_all_its_jobs_have_ended(
        acme: httpx.Client, globex: httpx.Client, regional: dict[str, Any]) -> None:
    scenarios = [{"label": "quick", "scenario": QUICK_SCENARIO},
                 {"label": "slow", "scenario": SLOW_SCENARIO}]
    batch = acme.post("/v1/batches", json={"data": regional, "scenarios": scenarios}).json()
    jobs = {j["label"]: j["id"] for j in batch["jobs"]}
    wait_for_job(acme, jobs["slow"], states=("running",), timeout=90)
    assert wait_for_job(acme, jobs["quick"])["state"] == "succeeded"

    # One job of a batch never goes alone; the batch waits for its last job.
    alone = acme.delete(f"/v1/jobs/{jobs['quick']}")
    assert alone.status_code == 409 and f"batch {batch['id']}" in alone.json()["detail"]
    busy = acme.delete(f"/v1/batches/{batch['id']}")
    assert busy.status_code == 409 and "1 of the 2 jobs" in busy.json()["detail"]
    assert globex.delete(f"/v1/batches/{batch['id']}").status_code == 404

    acme.post(f"/v1/jobs/{jobs['slow']}/cancel")
    wait_for_job(acme, jobs["slow"], timeout=90)
    assert acme.delete(f"/v1/batches/{batch['id']}").status_code == 204
    assert acme.get(f"/v1/batches/{batch['id']}").status_code == 404
    for job_id in jobs.values():
        assert acme.get(f"/v1/jobs/{job_id}").status_code == 404
    # The batch's inline data stay a dataset of the tenant's until deleted themselves.
    assert acme.get(f"/v1/datasets/{batch['dataset_id']}").status_code == 200
    assert acme.delete(f"/v1/datasets/{batch['dataset_id']}").status_code == 204
