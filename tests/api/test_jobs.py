"""Jobs over real HTTP against a running server (SQLite, local executor)."""

from __future__ import annotations

import copy
import io
import uuid
from typing import Any

import httpx
import pandas as pd

from tests.api.harness import QUICK_SCENARIO, wait_for_job

PROBLEM = "application/problem+json"


def submit(client: httpx.Client, body: dict[str, Any], **headers: str) -> httpx.Response:
    return client.post("/v1/jobs", json=body, headers=headers)


def test_job_lifecycle_on_the_regional_data(acme: httpx.Client,
                                            regional: dict[str, Any]) -> None:
    r = submit(acme, {"kind": "align", "scenario": QUICK_SCENARIO, "data": regional,
                      "label": "regional"})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["state"] in ("queued", "running")
    assert r.headers["location"] == f"/v1/jobs/{job['id']}"

    done = wait_for_job(acme, job["id"])
    assert done["state"] == "succeeded", done
    assert done["result_available"] and done["result_status"] in ("optimal", "feasible")
    assert done["attempts"] == 1 and done["started_at"] and done["finished_at"]
    assert done["progress"]["phase"] == "done"
    assert done["progress"]["incumbent"] is not None and done["progress"]["bound"] is not None

    result = acme.get(f"/v1/jobs/{job['id']}/result").json()
    summary = result["summary"]
    assert list(summary)[:5] == ["status", "objective", "bound", "gap", "seconds"]
    assert summary["bound"] <= summary["objective"] + 1e-9
    assert len(result["assignments"]) == 372
    assigned = {a["account_id"] for a in result["assignments"]}
    assert assigned == {a["account_id"] for a in regional["accounts"]}
    reps = {r["rep_id"] for r in regional["reps"]}
    assert {a["rep_id"] for a in result["assignments"]} <= reps
    assert sum(t["accounts"] for t in result["territories"]) == 372
    # Hard workload band of ±10 % around the fair share (equal capacities: the mean).
    workloads = [t["workload"] for t in result["territories"]]
    mean = sum(workloads) / len(workloads)
    assert all(0.9 * mean - 1e-6 <= w <= 1.1 * mean + 1e-6 for w in workloads)

    csv = acme.get(f"/v1/jobs/{job['id']}/result.csv")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    table = pd.read_csv(io.StringIO(csv.text))
    assert list(table.columns[:5]) == ["account_id", "territory_id", "rep_id", "previous_rep",
                                       "moved"]
    assert len(table) == 372

    geojson = acme.get(f"/v1/jobs/{job['id']}/result.geojson")
    assert geojson.status_code == 200
    assert geojson.headers["content-type"].startswith("application/geo+json")
    assert len(geojson.json()["features"]) == 6
    xlsx = acme.get(f"/v1/jobs/{job['id']}/result.xlsx")
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"  # a zip container
    sheets = pd.read_excel(io.BytesIO(xlsx.content), sheet_name=None)
    assert len(next(iter(sheets.values()))) >= 372 or any(len(s) == 372
                                                           for s in sheets.values())
    assert 0 < summary["kpis"]["after"]["geography"]["compactness_mean"] <= 1


def test_list_pages_through_the_tenants_jobs(acme: httpx.Client,
                                             regional: dict[str, Any]) -> None:
    ids = [submit(acme, {"scenario": QUICK_SCENARIO, "data": regional}).json()["id"]
           for _ in range(3)]
    first = acme.get("/v1/jobs", params={"limit": 2}).json()
    second = acme.get("/v1/jobs", params={"limit": 2, "offset": 2}).json()
    assert first["count"] == second["count"] >= 3
    assert len(first["data"]) == 2
    listed = [j["id"] for j in first["data"] + second["data"]]
    assert listed[:3] == ids[::-1]  # newest first
    assert acme.get("/v1/jobs", params={"limit": 0}).status_code == 422
    for job_id in ids:
        assert wait_for_job(acme, job_id)["state"] == "succeeded"


def _issues(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == 422 and body["title"] and body["detail"]
    issues: list[dict[str, Any]] = body["issues"]
    return issues


def test_bad_rows_are_reported_with_row_and_field(acme: httpx.Client,
                                                  regional: dict[str, Any]) -> None:
    data = copy.deepcopy(regional)
    data["accounts"][4]["lat"] = "north"
    data["accounts"][9]["workload"] = "-3"
    data["accounts"][11]["current_rep"] = "R999"
    data["reps"][0]["capacity"] = ""
    issues = _issues(submit(acme, {"scenario": {}, "data": data}))
    found = {(i["source"], i["row"], i["field"]) for i in issues}
    assert {("accounts", 5, "lat"), ("accounts", 10, "workload"),
            ("accounts", 12, "current_rep"), ("reps", 1, "capacity")} <= found
    assert any("not a number" in i["message"] for i in issues if i["field"] == "lat")


def test_eligibility_to_a_role_no_rep_has_is_refused_at_submission(
        acme: httpx.Client, regional: dict[str, Any]) -> None:
    n_a = sum(a["segment"] == "A" for a in regional["accounts"])
    body = {"scenario": {"eligibility": {"A": ["Enterprise"]}}, "data": regional}
    issues = _issues(submit(acme, body))
    assert [(i["source"], i["field"]) for i in issues] == [("scenario", "eligibility.A")]
    assert issues[0]["message"].startswith(
        f"no rep has role 'Enterprise', so the {n_a:,} accounts of segment 'A' could go to "
        "no one (the reps' roles: ")


def test_bad_scenario_and_bad_data_are_reported_together(acme: httpx.Client,
                                                         regional: dict[str, Any]) -> None:
    data = copy.deepcopy(regional)
    del data["accounts"][0]["account_id"]
    body = {"scenario": {"balance": {"workload": {"tolerance": -1}}, "speed": "max"},
            "data": data}
    found = {(i["source"], i["row"], i["field"]) for i in _issues(submit(acme, body))}
    assert ("scenario", None, "speed") in found
    assert ("scenario", None, "balance.workload.tolerance") in found
    assert ("accounts", 1, "account_id") in found


def test_malformed_bodies_are_problems(acme: httpx.Client, regional: dict[str, Any]) -> None:
    missing_column = {"data": {"accounts": [{"account_id": "A"}], "reps": regional["reps"]}}
    issues = _issues(submit(acme, missing_column))
    assert any(i["field"] == "workload" and "missing" in i["message"] for i in issues)

    both = _issues(submit(acme, {"data": regional, "dataset_id": "x"}))
    assert any("exactly one" in i["message"] for i in both)
    nested = copy.deepcopy(regional)
    nested["accounts"][2]["lat"] = {"deg": 1}
    assert _issues(submit(acme, {"data": nested})) == [
        {"source": "accounts", "row": 3, "field": "lat",
         "message": "a cell must be text, a number, true/false or null"}]
    not_json = acme.post("/v1/jobs", content=b"{nope", headers={"content-type":
                                                                   "application/json"})
    assert not_json.status_code == 422 and not_json.headers["content-type"] == PROBLEM


def test_unknown_kind_and_incomplete_bodies(acme: httpx.Client, regional: dict[str, Any]) -> None:
    unknown = _issues(submit(acme, {"kind": "forecast", "data": regional}))
    assert unknown[0]["field"] == "kind"
    # Capacity and quota jobs name what they are missing rather than guessing.
    for kind, says in (("capacity", "nothing to plan"), ("quota", "needs a goal")):
        r = submit(acme, {"kind": kind, "data": regional})
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
        assert any(says in i["message"] for i in r.json()["issues"])
    # A design names its own problems: the mode and the number of territories.
    fields = {i["field"] for i in _issues(submit(acme, {"kind": "design", "data": regional}))}
    assert {"mode", "territories"} <= fields
    wrong_mode = _issues(submit(acme, {"kind": "align", "scenario": {"mode": "design"},
                                       "data": regional}))
    assert wrong_mode[0]["field"] == "mode"
    # A soft band, which design cannot take, is refused at submission, not in the worker;
    # and a scenario with another error is not also said to lack its territories.
    design = {"mode": "design", "territories": 3}
    soft = _issues(submit(acme, {"kind": "design", "data": regional, "scenario": {
        **design, "balance": {"workload": {"tolerance": 0.1, "hard": False}}}}))
    assert [i["field"] for i in soft] == ["balance.workload.hard"]
    broken = _issues(submit(acme, {"kind": "design", "data": regional,
                                   "scenario": {**design, "bogus": 1}}))
    assert [i["field"] for i in broken] == ["bogus"]


def test_limits(acme: httpx.Client, regional: dict[str, Any]) -> None:
    many = {"accounts": [dict(regional["accounts"][0], account_id=f"A{i}")
                         for i in range(1_001)], "reps": regional["reps"]}
    r = submit(acme, {"data": many})
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    assert "1,001 accounts exceed this server's limit of 1,000" in r.json()["detail"]

    too_long = submit(acme, {"scenario": {"solver": {"time_limit": 10_000}}, "data": regional})
    assert too_long.status_code == 422 and "MAX_TIME_LIMIT" in too_long.json()["detail"]

    huge = b'{"data": {"accounts": [' + b'{"account_id": "x"},' * 200_000 + b"]}}"
    r = acme.post("/v1/jobs", content=huge, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.headers["content-type"] == PROBLEM
    assert "MAX_REQUEST_BYTES" in r.json()["detail"]

    def chunks() -> Any:  # no Content-Length: the limit must hold on the stream too
        yield b'{"data": {"accounts": ['
        for _ in range(100):
            yield b'{"account_id": "x"},' * 2_000
        yield b"]}}"

    r = acme.post("/v1/jobs", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.headers["content-type"] == PROBLEM


def test_idempotency_key(acme: httpx.Client, globex: httpx.Client,
                         regional: dict[str, Any]) -> None:
    key = f"test-{uuid.uuid4()}"
    body = {"scenario": QUICK_SCENARIO, "data": regional}
    first = submit(acme, body, **{"Idempotency-Key": key})
    again = submit(acme, body, **{"Idempotency-Key": key})
    assert first.status_code == 202 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"]

    changed = submit(acme, {**body, "label": "other"}, **{"Idempotency-Key": key})
    assert changed.status_code == 422 and changed.headers["content-type"] == PROBLEM
    assert "Idempotency-Key" in changed.json()["detail"]

    # Keys are per tenant: the same key elsewhere is a new job.
    other = submit(globex, body, **{"Idempotency-Key": key})
    assert other.status_code == 202 and other.json()["id"] != first.json()["id"]
    for client, job_id in ((acme, first.json()["id"]), (globex, other.json()["id"])):
        assert wait_for_job(client, job_id)["state"] == "succeeded"
    assert submit(acme, body, **{"Idempotency-Key": key}).json()["state"] == "succeeded"


def test_result_of_an_unfinished_or_failed_job(acme: httpx.Client,
                                               regional: dict[str, Any]) -> None:
    # Six reps of 100 h cannot serve thousands of hours: infeasible, said in business terms.
    data = copy.deepcopy(regional)
    for rep in data["reps"]:
        rep["capacity"] = "100"
    job = submit(acme, {"scenario": {"balance": {"workload": {"tolerance": None}}},
                        "data": data}).json()
    done = wait_for_job(acme, job["id"])
    assert done["state"] == "failed", done
    assert done["error"]["type"] == "infeasible"
    assert done["error"]["message"].startswith("infeasible: ")
    assert "capacity add up to only 600 h" in done["error"]["reasons"][0]
    assert not done["result_available"]
    r = acme.get(f"/v1/jobs/{job['id']}/result")
    assert r.status_code == 409 and r.headers["content-type"] == PROBLEM
    assert "without a plan" in r.json()["detail"]


def test_design_job(acme: httpx.Client, regional: dict[str, Any]) -> None:
    """A greenfield design over HTTP: no reps needed; every account in one of N territories."""
    accounts = regional["accounts"][:60]
    r = submit(acme, {"kind": "design", "data": {"accounts": accounts},
                      "scenario": {"mode": "design", "territories": 3,
                                   "balance": {"workload": {"tolerance": 0.2}},
                                   "solver": {"time_limit": 60, "mip_gap": 0.01}}})
    assert r.status_code == 202, r.text
    done = wait_for_job(acme, r.json()["id"])
    assert done["state"] == "succeeded", done
    result = acme.get(f"/v1/jobs/{done['id']}/result").json()
    assert result["summary"]["status"] in ("optimal", "feasible")
    assert len(result["territories"]) == 3
    assert {a["account_id"] for a in result["assignments"]} == {a["account_id"]
                                                                for a in accounts}
    assert all(t["centre"] in {a["account_id"] for a in accounts}
               for t in result["territories"])


def test_a_jobs_scenario_is_served_as_submitted(acme: httpx.Client,
                                                regional: dict[str, Any]) -> None:
    """What a job was asked to run comes back as submitted (defaults not filled in), so a
    planner can run it again with changes; a deleted job's is gone with it."""
    scenario = {**QUICK_SCENARIO, "circuity": 1.3,
                "balance": {"potential": {"tolerance": 0.4, "hard": False}}}
    job = submit(acme, {"kind": "align", "scenario": scenario, "data": regional,
                        "label": "run me again"}).json()
    answer = acme.get(f"/v1/jobs/{job['id']}/scenario")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"id": job["id"], "kind": "align", "label": "run me again",
                             "dataset_id": None, "scenario": scenario}
    assert wait_for_job(acme, job["id"])["state"] == "succeeded"
    assert acme.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert acme.get(f"/v1/jobs/{job['id']}/scenario").status_code == 404
