"""Datasets: multipart upload, validation at upload, reuse by jobs."""

from __future__ import annotations

import httpx

from tests.api.harness import QUICK_SCENARIO, regional_file, wait_for_job


def upload(client: httpx.Client, accounts: bytes, reps: bytes,
           **form: str) -> httpx.Response:
    files = {"accounts": ("accounts.csv", accounts, "text/csv"),
             "reps": ("reps.csv", reps, "text/csv")}
    return client.post("/v1/datasets", files=files, data=form)


def test_upload_then_solve_from_the_dataset(acme: httpx.Client) -> None:
    r = upload(acme, regional_file("accounts.csv").read_bytes(),
               regional_file("reps.csv").read_bytes(), name="Georgia")
    assert r.status_code == 201, r.text
    dataset = r.json()
    assert (dataset["accounts"], dataset["reps"], dataset["distances"]) == (372, 6, None)
    assert dataset["name"] == "Georgia" and dataset["metric"] == "haversine"
    assert acme.get(f"/v1/datasets/{dataset['id']}").json() == dataset
    assert dataset["id"] in [d["id"] for d in acme.get("/v1/datasets").json()["data"]]

    job = acme.post("/v1/jobs", json={"dataset_id": dataset["id"], "scenario": QUICK_SCENARIO})
    assert job.status_code == 202, job.text
    assert job.json()["dataset_id"] == dataset["id"]
    done = wait_for_job(acme, job.json()["id"])
    assert done["state"] == "succeeded", done
    result = acme.get(f"/v1/jobs/{done['id']}/result").json()
    assert len(result["assignments"]) == 372

    # The stored tables are checked again against each scenario's metric.
    r = acme.post("/v1/jobs", json={"dataset_id": dataset["id"],
                                    "scenario": {"metric": "euclidean"}})
    assert r.status_code == 422
    assert any(i["field"] == "x" for i in r.json()["issues"])


def test_bad_uploads_are_reported_per_row(acme: httpx.Client) -> None:
    accounts = b"account_id,lat,lon,workload\nA1,33.5,-84.1,10\nA2,95,-84.2,ten\nA1,33,-84,5\n"
    reps = b"rep_id,lat,lon,capacity\nR1,33.7,-84.4,100\n"
    r = upload(acme, accounts, reps)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    found = {(i["source"], i["row"], i["field"]) for i in r.json()["issues"]}
    assert {("accounts", 2, "lat"), ("accounts", 2, "workload"),
            ("accounts", 3, "account_id")} <= found

    missing = acme.post("/v1/datasets", files={"accounts": ("a.csv", accounts, "text/csv")})
    assert missing.status_code == 422
    assert any(i["field"] == "reps" for i in missing.json()["issues"])

    garbage = upload(acme, b"\xff\xfe\x00garbage", reps)
    assert garbage.status_code == 422

    assert acme.get("/v1/datasets/nope").status_code == 404


def test_upload_over_the_account_limit(acme: httpx.Client) -> None:
    rows = "".join(f"A{i},33.5,-84.1,1\n" for i in range(1_001))
    r = upload(acme, ("account_id,lat,lon,workload\n" + rows).encode(),
               b"rep_id,lat,lon,capacity\nR1,33.7,-84.4,100\n")
    assert r.status_code == 422 and "MAX_ACCOUNTS" in r.json()["detail"]
